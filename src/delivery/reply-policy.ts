// The error policy of a delivery (what Postfix's smtp_trouble.c decides): what a transaction's
// replies mean for each of its recipients, what a broken connection, a failed connection attempt
// and a host known to be down mean for them. Pure: the engine applies the verdicts.
import type { Target } from './mx.js';
import { ConnectError, type RcptRejection, type SendOutcome } from './smtp-client.js';
import { describeHost } from './status.js';
import type { RecipientResult } from './types.js';

/** How often one recipient is moved to a new transaction after "too many recipients" before that reply stands. */
export const MAX_OVERFLOWS = 5;

/** 2xx delivered, 5xx failed, anything else deferred. */
export function resultOf(code: number): RecipientResult {
  return code >= 200 && code < 300 ? 'delivered' : code >= 500 ? 'failed' : 'deferred';
}

/** What a transaction's outcome comes to for one of its recipients. */
export type RecipientVerdict =
  /** `byServer`: the remote server gave this reply (its host and the session's TLS go with it); else a local reason. */
  | { kind: 'decided'; result: RecipientResult; status: string; byServer: boolean }
  /** Refused only because the transaction had too many recipients: it goes in the next one (RFC 5321 §4.5.3.1.8). */
  | { kind: 'overflow' };

type TransactionVerdict =
  /** The connection broke or timed out: nothing is known, every recipient tries its next MX. */
  | { kind: 'broken'; status: string }
  /** One verdict per recipient, in the order given. */
  | { kind: 'replied'; recipients: RecipientVerdict[] };

/** What the policy needs to know of a recipient of the transaction. */
interface TransactionRecipient {
  /** The address as given in RCPT TO (the key of the server's per-recipient replies). */
  rcptTo: string;
  /** Times it was moved to a new transaction already. */
  overflows: number;
}

export function judgeTransaction(outcome: SendOutcome, recipients: readonly TransactionRecipient[]): TransactionVerdict {
  if (outcome.kind === 'broken') return { kind: 'broken', status: outcome.reply };
  if (outcome.kind === 'local') return { kind: 'replied', recipients: recipients.map(() => decided('deferred', outcome.reply, false)) };
  const rejected = new Map(outcome.rejected.map((x) => [x.recipient, x]));
  // Moving refused recipients to another transaction is only worth it when the server took some.
  const someAccepted = outcome.kind === 'sent' && outcome.accepted.length > 0;
  return {
    kind: 'replied',
    recipients: recipients.map((r): RecipientVerdict => {
      const rej = rejected.get(r.rcptTo);
      if (rej && someAccepted && isTooManyRecipients(rej) && r.overflows < MAX_OVERFLOWS) return { kind: 'overflow' };
      if (rej) return decided(resultOf(rej.code), `${rej.reply} (in reply to ${rej.command})`, true);
      if (outcome.kind === 'sent') return decided('delivered', outcome.reply, true);
      return decided(resultOf(outcome.code), `${outcome.reply} (in reply to ${outcome.command})`, true);
    }),
  };
}

function decided(result: RecipientResult, status: string, byServer: boolean): RecipientVerdict {
  return { kind: 'decided', result, status, byServer };
}

/** `452 4.5.3 Too many recipients` at RCPT (RFC 5321 §4.5.3.1.10). */
function isTooManyRecipients(rej: RcptRejection): boolean {
  return rej.code === 452 && rej.command === 'RCPT TO' && /too many recipients|4\.5\.3/i.test(rej.reply);
}

/**
 * A connection attempt that failed: its status for the recipients waiting on the host, and
 * whether the host goes into the reachability cache (ConnectError.unreachable). An error of
 * another kind is a closed connection, not a reason to mark the host down.
 */
export function connectFailure(err: unknown, target: Target): ConnectError {
  return err instanceof ConnectError ? err : new ConnectError('closed', `451 4.4.2 ${describeHost(target)}: ${(err as Error).message}`, false);
}

/** The status of a recipient whose host was skipped because another attempt found it down. */
export function skippedHostStatus(reason: string, until: number): string {
  return `${reason} (host not tried again until ${new Date(until).toISOString()})`;
}

/** The status of a recipient with no host left to try: its last failure, if it had one. */
export function noHostLeftStatus(lastFailure: string | null): string {
  return lastFailure ?? '451 4.4.1 no reachable host';
}
