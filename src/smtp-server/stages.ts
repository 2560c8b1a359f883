// The checks of an SMTP stage as an ordered list, as Postfix's smtpd_*_restrictions and Haraka's
// hooks: each check is a small function of the command that answers
//   next    no objection, ask the next check;
//   accept  taken, the rest of the list is skipped;
//   refuse  refused with its reply (at RCPT and DATA a J record in mail.log; at connect and MAIL
//           too when a policy rule decided: `rule` names it, as the J record's status starts with
//           `RULE: ` for imsimta report and the metrics to group by);
//   error   could not decide (a lookup failed): the client gets the (temporary) reply, nothing
//           is logged as a refusal.
// The list runs in order and stops at the first answer that is not next; when every check says
// next the command is accepted. A check may answer at once or with a promise; the runner stays
// synchronous as long as the checks are. Every stage's command carries the service's settings
// and lookups (StageServices) and the session's facts (InboundSession).
import type { Logger } from '../common/logger.js';
import type { InstanceConfig } from '../config/types.js';
import type { Directory } from '../directory/types.js';
import type { Rewriter } from '../rewrite/index.js';
import type { SrsSettings } from '../srs/index.js';
import { formatReply, type SmtpReply } from './replies.js';
import type { InboundPolicy } from './inbound-policy.js';
import type { InboundSettings } from './settings.js';

export type Verdict =
  | { kind: 'next' }
  | { kind: 'accept' }
  /**
   * `destination`: the channel for the J record, when the check knows it. `rule`: the table, list
   * or filter that decided (`PORT_ACCESS`, `rbl:zen.example`, `SPF`, `DMARC`, `milter:rspamd`);
   * `note`: where (`mappings:12`), for the J record.
   */
  | { kind: 'refuse'; reply: SmtpReply; destination?: string; rule?: string; note?: string }
  | { kind: 'error'; reply: SmtpReply };

export type Check<Command> = (command: Command) => Verdict | PromiseLike<Verdict>;

export const NEXT: Verdict = { kind: 'next' };
export const ACCEPT: Verdict = { kind: 'accept' };

export function refuse(reply: SmtpReply, destination?: string): Verdict {
  return destination === undefined ? { kind: 'refuse', reply } : { kind: 'refuse', reply, destination };
}

/** A refusal by a policy rule (an access table, a blocklist, SPF, DMARC, a milter). */
export function refuseBy(rule: string, reply: SmtpReply, more: { destination?: string; note?: string } = {}): Verdict {
  return { kind: 'refuse', reply, rule, ...more };
}

/** The J record's status for a refusal: `RULE: 550 5.7.1 text (note)`, or the reply alone. */
export function refusalStatus(v: Extract<Verdict, { kind: 'refuse' }>): string {
  const reply = formatReply(v.reply);
  return v.rule ? `${v.rule}: ${reply}${v.note ? ` (${v.note})` : ''}` : reply;
}

/** What the checks of every stage may use: the service's configuration, settings and lookups. */
export interface StageServices {
  config: InstanceConfig;
  settings: InboundSettings;
  rewriter: Rewriter;
  /** Users, recipients and lists (src/directory/source.ts: files, or LDAP when option.dat configures it). */
  directory: Directory;
  /** Whether an address is this host's (Locality.isLocal), for the directory's expansion. */
  isLocal: (address: string) => boolean;
  /** SRS_DOMAIN and etc/srs.secrets; null without a secret (no SRS address is ours). */
  srs: SrsSettings | null;
  logger: Logger;
  /** Access tables, DNS blocklists, SPF/DKIM/DMARC settings and milters (inbound-policy.ts). */
  policy: InboundPolicy;
}

/**
 * Runs `checks` in order on `command`; `answer` gets the first verdict that is not next (ACCEPT
 * when there is none), `fail` a check's exception or rejection. Called synchronously when no
 * check returned a promise.
 */
export function runChecks<Command>(checks: ReadonlyArray<Check<Command>>, command: Command, answer: (verdict: Verdict) => void, fail: (err: unknown) => void): void {
  const from = (start: number): void => {
    for (let i = start; i < checks.length; i++) {
      let verdict: Verdict | PromiseLike<Verdict>;
      try {
        verdict = checks[i]!(command);
      } catch (err) {
        return fail(err);
      }
      if (isPromiseLike(verdict)) {
        verdict.then((v) => (v.kind === 'next' ? from(i + 1) : answer(v)), fail);
        return;
      }
      if (verdict.kind !== 'next') return answer(verdict);
    }
    answer(ACCEPT);
  };
  from(0);
}

function isPromiseLike(v: Verdict | PromiseLike<Verdict>): v is PromiseLike<Verdict> {
  return typeof (v as PromiseLike<Verdict>).then === 'function';
}
