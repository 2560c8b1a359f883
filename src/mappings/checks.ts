// What each SMTP stage asks the access tables, with typed facts in and a decision out:
// at connect PORT_ACCESS, at MAIL FROM_ACCESS, at each RCPT the recipient tables in Messaging
// Server's order (ORIG_SEND_ACCESS and ORIG_MAIL_ACCESS with the address as the client gave it,
// SEND_ACCESS and MAIL_ACCESS with it after alias expansion), stopping at the first refusal.
import { checkAccess, type AccessDecision, type AccessTable } from './access.js';
import type { CompiledMappings } from './engine.js';
import { fromAccessProbe, mailAccessProbe, portAccessProbe, sendAccessProbe, type ConnectionFacts, type RecipientFacts, type SenderFacts, type SessionFacts } from './probes.js';

export function checkPortAccess(mappings: CompiledMappings, connection: ConnectionFacts): AccessDecision {
  return checkAccess(mappings, 'PORT_ACCESS', portAccessProbe(connection));
}

export function checkFromAccess(mappings: CompiledMappings, session: SessionFacts, sender: SenderFacts, flags?: ReadonlySet<string>): AccessDecision {
  return checkAccess(mappings, 'FROM_ACCESS', fromAccessProbe(session, sender), { flags, address: sender.from });
}

export interface RecipientCheck extends RecipientFacts {
  /** The recipient as the client gave it (after rewriting), when alias expansion changed `to`; else `to`. */
  originalTo?: string;
}

/** The decisions of the recipient tables that exist, in order, ending at the first refusal. */
export function checkRecipientAccess(mappings: CompiledMappings, session: SessionFacts, recipient: RecipientCheck, flags?: ReadonlySet<string>): AccessDecision[] {
  const original: RecipientFacts = { ...recipient, to: recipient.originalTo ?? recipient.to };
  const probes: Array<[AccessTable, string, string]> = [
    ['ORIG_SEND_ACCESS', sendAccessProbe(original), original.to],
    ['ORIG_MAIL_ACCESS', mailAccessProbe(session, original), original.to],
    ['SEND_ACCESS', sendAccessProbe(recipient), recipient.to],
    ['MAIL_ACCESS', mailAccessProbe(session, recipient), recipient.to],
  ];
  const decisions: AccessDecision[] = [];
  for (const [table, probe, address] of probes) {
    if (!mappings.tables.has(table)) continue;
    const decision = checkAccess(mappings, table, probe, { flags, address });
    decisions.push(decision);
    if (decision.verdict === 'refuse') break;
  }
  return decisions;
}
