// The access tables of etc/mappings in the SMTP stages, at the stage Messaging Server asks each:
// PORT_ACCESS at connect (its refusal answers in place of the greeting), FROM_ACCESS at MAIL, and
// at each RCPT ORIG_SEND_ACCESS, ORIG_MAIL_ACCESS, SEND_ACCESS, MAIL_ACCESS in that order. A
// refusal names its table and the deciding entry's file:line in the J record; what an entry asks
// besides accepting or refusing is carried out: $D waits on a timer before the answer (negative:
// this answer only; positive: every later command of the transaction too), $H holds the message,
// $B discards it (FROM_ACCESS: the whole message; a recipient table: that recipient's copy);
// $< and $> texts go to the service's log.
import { basename } from 'node:path';
import type { SMTPServerSession } from 'smtp-server';
import { checkFromAccess, checkPortAccess, checkRecipientAccess, firstRefusal, sessionFlags, type AccessDecision, type SessionFacts } from '../mappings/index.js';
import type { InboundSession } from './inbound-session.js';
import type { RcptCommand } from './rcpt-checks.js';
import { replyFromLine, atConnect } from './policy-replies.js';
import { pause } from './session-policy.js';
import { NEXT, refuseBy, type StageServices, type Verdict } from './stages.js';

interface Command {
  smtp: SMTPServerSession;
  session: InboundSession;
  services: StageServices;
}

/** The connection and session facts the probes are made of. */
function sessionFacts(smtp: SMTPServerSession, lmtp: boolean): SessionFacts {
  return {
    connection: { serverIp: smtp.localAddress, serverPort: smtp.localPort, clientIp: smtp.remoteAddress, clientPort: smtp.remotePort },
    helo: smtp.hostNameAppearsAs || null,
    tls: smtp.secure ? { protocol: (smtp.tlsOptions && smtp.tlsOptions.version) || 'TLS', cipher: (smtp.tlsOptions && smtp.tlsOptions.name) || 'unknown' } : null,
    lmtp,
  };
}

function flagsOf(smtp: SMTPServerSession, notify?: readonly string[] | null): Set<string> {
  const n = new Set((notify ?? []).map((x) => x.toUpperCase()));
  return sessionFlags({
    sasl: Boolean(smtp.user),
    tls: Boolean(smtp.secure),
    ehlo: /^(EHLO|LHLO)$/i.test(smtp.openingCommand || ''),
    notify: { success: n.has('SUCCESS'), delay: n.has('DELAY'), failure: n.has('FAILURE') },
  });
}

/** `mappings:12`: where the deciding entry is written. */
function where(d: AccessDecision): string | undefined {
  return d.matched ? `${basename(d.matched.file)}:${d.matched.line}` : undefined;
}

/** $<, $>, the PORT_ACCESS $T text and unusable arguments: the service's log. */
function logDecision(cmd: Command, d: AccessDecision): void {
  const texts = [d.log.onMatch, d.verdict === 'refuse' ? d.log.onRefusal : null, d.log.connection].filter((t): t is string => Boolean(t));
  if (texts.length === 0 && d.problems.length === 0 && !d.error) return;
  cmd.services.logger.info({ client: cmd.smtp.remoteAddress, table: d.table, entry: where(d), texts, problems: d.problems, error: d.error ?? undefined }, `${d.table}: ${texts.join('; ') || d.problems.join('; ') || d.error}`);
}

/** The decision's verdict after its $D wait (the answer waits; other sessions do not). */
function answer(cmd: Command, d: AccessDecision, verdict: Verdict): Verdict | Promise<Verdict> {
  logDecision(cmd, d);
  if (d.delaySeconds === null) return verdict;
  const ms = d.delaySeconds * 1000;
  const tx = cmd.session.policy.tx;
  if (d.delayEveryCommand) {
    // transactionDelay() has waited it already for this command
    const waited = tx.delayMs >= ms;
    tx.delayMs = Math.max(tx.delayMs, ms);
    if (waited) return verdict;
  }
  return pause(ms).then(() => verdict);
}

function refusal(d: AccessDecision, connect: boolean, destination?: string): Verdict {
  const reply = replyFromLine(d.reply ?? '');
  return refuseBy(d.table, connect ? atConnect(reply) : reply, { destination, note: where(d) });
}

/** PORT_ACCESS: `TCP|server-ip|server-port|client-ip|client-port`, before the greeting. */
export function portAccess(cmd: Command): Verdict | Promise<Verdict> {
  const { mappings } = cmd.services.policy;
  if (!mappings.tables.has('PORT_ACCESS')) return NEXT;
  const smtp = cmd.smtp;
  const d = checkPortAccess(mappings, { serverIp: smtp.localAddress, serverPort: smtp.localPort, clientIp: smtp.remoteAddress, clientPort: smtp.remotePort });
  return answer(cmd, d, d.verdict === 'refuse' ? refusal(d, true) : NEXT);
}

/** FROM_ACCESS at MAIL FROM (the sender, and the authenticated user once AUTH exists). */
export function fromAccess(cmd: Command & { address: { address: string } }): Verdict | Promise<Verdict> {
  const { mappings } = cmd.services.policy;
  if (!mappings.tables.has('FROM_ACCESS')) return NEXT;
  const { smtp, session } = cmd;
  const user = typeof smtp.user === 'string' ? smtp.user : '';
  const d = checkFromAccess(mappings, sessionFacts(smtp, cmd.services.settings.lmtp), { sourceChannel: session.sourceChannel, from: cmd.address.address, authenticatedFrom: user }, flagsOf(smtp));
  if (d.verdict === 'accept') {
    if (d.hold) session.policy.tx.hold ??= `FROM_ACCESS $H (${where(d)})`;
    if (d.discard) session.policy.tx.discard ??= `FROM_ACCESS $B (${where(d)})`;
  }
  return answer(cmd, d, d.verdict === 'refuse' ? refusal(d, false) : NEXT);
}

/** The four recipient tables at RCPT, in Messaging Server's order; the first refusal decides. A $B marks the recipient's copy discarded. */
export function recipientAccess(cmd: RcptCommand): Verdict | Promise<Verdict> {
  const { mappings } = cmd.services.policy;
  const { smtp, session, route } = cmd;
  const decisions = checkRecipientAccess(
    mappings,
    sessionFacts(smtp, cmd.services.settings.lmtp),
    { sourceChannel: session.sourceChannel, from: cmd.from, destinationChannel: route.channel.name, to: route.address },
    flagsOf(smtp, cmd.address.dsn?.notify ?? null),
  );
  if (decisions.length === 0) return NEXT;
  const refused = firstRefusal(decisions);
  if (refused) {
    for (const d of decisions.slice(0, -1)) logDecision(cmd, d);
    return answer(cmd, refused, refusal(refused, false, route.channel.name));
  }
  for (const d of decisions) {
    if (d.hold) session.policy.tx.hold ??= `${d.table} $H (${where(d)})`;
    if (d.discard) cmd.discard ??= `${d.table} $B (${where(d)})`;
  }
  // The longest $D of the tables that matched is waited once.
  const delayed = decisions.filter((d) => d.delaySeconds !== null).sort((a, b) => b.delaySeconds! - a.delaySeconds!)[0];
  for (const d of decisions) if (d !== delayed) logDecision(cmd, d);
  return delayed ? answer(cmd, delayed, NEXT) : NEXT;
}

/** A positive $D earlier in the transaction: every later command waits it before its answer. */
export function transactionDelay(cmd: { session: InboundSession }): Verdict | Promise<Verdict> {
  const ms = cmd.session.policy.tx.delayMs;
  return ms > 0 ? pause(ms).then(() => NEXT) : NEXT;
}
