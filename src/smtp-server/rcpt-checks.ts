// The RCPT stage, as Haraka's cmd_rcpt: the command is read first (readRecipient: parameters,
// character set, address syntax, then the rewrite rules route it to a channel; a failure there
// is the command's own refusal), then the routed recipient goes through RCPT_CHECKS, in order
// (see stages.ts for the verdicts). Every refusal is a J record in mail.log (a policy rule's
// names it). In order: a $D delay of the transaction, relaying, the access tables
// ORIG_SEND_ACCESS, ORIG_MAIL_ACCESS, SEND_ACCESS, MAIL_ACCESS (access-checks.ts), SPF with
// spfrcptto (spf-checks.ts), the local recipient asked of the directory (files or LDAP: 550 for
// nobody to deliver to, 451 4.4.3 when it cannot answer), then the session's milters
// (milter-checks.ts), which hear only the recipients the others took. Still to come: relaying
// for authenticated senders (SMTP AUTH, src/directory).
// A bounce to an SRS address of ours (SRS_DOMAIN) is decoded before routing: one that does not
// verify is refused (550 5.1.1), one that does is routed to the original sender (relaying allowed:
// we signed it) with the SRS address kept as its ORCPT.
import type { SMTPServerAddress, SMTPServerSession } from 'smtp-server';
import { routeRecipient, type RecipientRoute, type RewriteOutcome } from '../rewrite/index.js';
import { checkRecipient } from '../directory/recipient-check.js';
import { srsReverse } from '../srs/index.js';
import { asciiDomainForm, checkAddressCharset } from './address-check.js';
import type { AcceptedRecipient } from './envelope-plan.js';
import { RCPT_PARAMETERS, unsupportedParameter } from './esmtp-params.js';
import { recipientAccess, transactionDelay } from './access-checks.js';
import type { InboundSession } from './inbound-session.js';
import { milterRcpt } from './milter-checks.js';
import { spfAtRcpt } from './spf-checks.js';
import { relayRefusal } from './recipient-policy.js';
import { REPLIES, badAddressSyntax, unknownUser, unroutable, type SmtpReply } from './replies.js';
import { NEXT, refuse, type Check, type StageServices, type Verdict } from './stages.js';

export interface RcptCommand {
  /** RCPT TO as smtp-server parsed it (`args`, `dsn`). */
  address: SMTPServerAddress;
  smtp: SMTPServerSession;
  session: InboundSession;
  services: StageServices;
  /** The transaction's envelope sender ('' for the null sender). */
  from: string;
  /** What the rewrite rules made of the address. */
  rewrite: RewriteOutcome;
  /** Where it is queued if accepted. */
  route: Extract<RecipientRoute, { ok: true }>;
  /** An SRS address of ours decoded: the address routed is the original sender's (`route`). */
  srsReversed: boolean;
  /** Set by a check that accepts the recipient but drops its copy (an access table's $B): why. */
  discard: string | null;
}

type RcptCheck = Check<RcptCommand>;

/** Relay policy: a client that is neither internal nor authenticated sends only to channels that do not relay. */
function relayAccess(rcpt: RcptCommand): Verdict {
  const mayRelay = rcpt.session.internal || Boolean(rcpt.smtp.user) || rcpt.srsReversed;
  const denied = relayRefusal(rcpt.address.address, rcpt.route.channel, mayRelay);
  return denied ? refuse(denied, rcpt.rewrite.channel ?? '') : NEXT;
}

/**
 * A local recipient is asked of the directory (files or LDAP): what local delivery would find
 * nothing to deliver to is refused here (550 5.1.1), never accepted and bounced; a directory
 * that cannot answer in time is a 451 4.4.3, never a refusal.
 */
function localRecipient(rcpt: RcptCommand): Verdict | Promise<Verdict> {
  const { route, address, services } = rcpt;
  if (route.localPart === null) return NEXT;
  return checkRecipient(services.directory, route.address, { isLocal: services.isLocal }).then(
    (check): Verdict => {
      if (check.kind === 'accept') return NEXT;
      if (check.kind === 'unknown') {
        services.logger.debug({ rcpt: route.address, why: check.why }, 'recipient refused by the directory');
        return refuse(unknownUser(address.address), route.channel.name);
      }
      services.logger.warn({ rcpt: route.address, source: services.directory.source, why: check.why }, 'directory unavailable for a recipient check');
      return { kind: 'error', reply: REPLIES.directoryUnavailable };
    },
    (err: Error): Verdict => {
      services.logger.error({ err: err.message }, 'local user lookup failed');
      return { kind: 'error', reply: REPLIES.directoryUnavailable };
    },
  );
}

export const RCPT_CHECKS: readonly RcptCheck[] = [transactionDelay, relayAccess, recipientAccess, spfAtRcpt, localRecipient, milterRcpt];

/** The command read and routed, or its refusal with the channel for the J record ('' before routing). */
type RecipientReading = { ok: true; rcpt: RcptCommand } | { ok: false; reply: SmtpReply; destination: string };

export function readRecipient(address: SMTPServerAddress, smtp: SMTPServerSession, session: InboundSession, services: StageServices): RecipientReading {
  const problem = unsupportedParameter(address.args, RCPT_PARAMETERS) ?? checkAddressCharset(address.address, Boolean(smtp.envelope.smtpUtf8));
  if (problem) return { ok: false, reply: problem, destination: '' };
  const ascii = asciiDomainForm(address.address);
  if (ascii === null) return { ok: false, reply: badAddressSyntax(), destination: '' };
  let target = ascii;
  let srsReversed = false;
  if (services.srs) {
    const srs = srsReverse(ascii, services.srs, Date.now());
    if (srs.kind === 'invalid') {
      services.logger.info({ rcpt: ascii, why: srs.reason }, 'SRS address refused');
      return { ok: false, reply: REPLIES.srsInvalid, destination: '' };
    }
    if (srs.kind === 'reversed') [target, srsReversed] = [srs.address, true];
  }
  const rewrite = services.rewriter.rewrite(target, { sourceChannel: session.sourceChannel, direction: 'to' });
  const route = routeRecipient(rewrite, services.config.imta.channelByName);
  if (!route.ok && route.temporary) {
    services.logger.warn({ rcpt: target, why: route.error }, 'rewrite rules cannot decide yet: directory unavailable');
    return { ok: false, reply: REPLIES.directoryUnavailable, destination: '' };
  }
  if (!route.ok) return { ok: false, reply: unroutable(route.error), destination: rewrite.channel ?? '' };
  const from = smtp.envelope.mailFrom ? smtp.envelope.mailFrom.address : '';
  return { ok: true, rcpt: { address, smtp, session, services, from, rewrite, route, srsReversed, discard: null } };
}

/** What an accepted recipient is queued as. */
export function acceptedRecipient(rcpt: RcptCommand): AcceptedRecipient {
  return {
    channel: rcpt.route.channel.name,
    address: rcpt.route.address,
    original: rcpt.address.address,
    // A decoded SRS address: the DSN names the address the bounce was sent to.
    orcpt: rcpt.address.dsn?.orcpt ?? (rcpt.srsReversed ? `rfc822;${rcpt.address.address}` : null),
    notify: rcpt.address.dsn?.notify ?? null,
    ...(rcpt.discard ? { discard: rcpt.discard } : {}),
  };
}
