// Applying a job's per-recipient outcomes to a queued message's envelope (pure): delivered
// recipients are marked so that they are never sent again, deferred ones wait for the channel's
// backoff, failed ones (and every pending one once the last notices age is passed) are reported
// for a DSN, and delay warnings that became due are listed. Only real tries made when the message
// was due count (retrySchedule).
import type { RecipientOutcome } from '../channels/types.js';
import type { Envelope, QueuedRecipient } from '../queue/types.js';
import { nextAttemptAt } from './backoff.js';
import { noticeDue } from '../notices/schedule.js';

export interface OutcomePolicy {
  backoffMs: readonly number[];
  noticesMs: readonly number[];
}

export interface RecipientReport {
  address: string;
  original: string;
  orcpt: string | null;
  notify: string[] | null;
  /** Reply or reason with its status code, e.g. `550 5.1.1 <x@y>: user unknown`. */
  status: string;
  remoteHost: string | null;
  /** TLS of the session that gave the status (mail.log's tls= token). */
  tls?: string | null;
}

export interface AppliedOutcome {
  /** The envelope after the attempt; recipients that failed are still in it (state 'failed') until their notice is queued. */
  envelope: Envelope;
  delivered: RecipientReport[];
  deferred: RecipientReport[];
  /** Failed now or earlier (e.g. `qm return`) and owed a notice; includes recipients returned because the notices period ended. */
  failed: RecipientReport[];
  /** Pending recipients due for a delay warning now. */
  warned: RecipientReport[];
  /** True when recipients are left to deliver. */
  pending: boolean;
}

/** Status given to recipients returned because the last notices age passed. */
export function expiredStatus(lastStatus: string | null, ageMs: number): string {
  return `4.4.7 message expired after ${describeAge(ageMs)} in the queue${lastStatus ? `; last error: ${lastStatus}` : ''}`;
}

/** A message age in the unit that suits it: `40 seconds`, `25 minutes`, `6 hours`, `1.5 days`. */
export function describeAge(ageMs: number): string {
  const unit = (n: number, name: string) => `${n} ${name}${n === 1 ? '' : 's'}`;
  const ms = Math.max(0, ageMs);
  if (ms < 60_000) return unit(Math.round(ms / 1000), 'second');
  if (ms < 3_600_000) return unit(Math.round(ms / 60_000), 'minute');
  if (ms < 86_400_000) return unit(Math.round(ms / 360_000) / 10, 'hour');
  return unit(Math.round(ms / 8_640_000) / 10, 'day');
}

export function applyOutcome(envelope: Envelope, outcomes: readonly RecipientOutcome[], now: Date, policy: OutcomePolicy): AppliedOutcome {
  const byAddress = new Map<string, RecipientOutcome[]>();
  for (const o of outcomes) {
    const key = o.address.toLowerCase();
    const list = byAddress.get(key) ?? [];
    list.push(o);
    byAddress.set(key, list);
  }
  const result: AppliedOutcome = { envelope: { ...envelope }, delivered: [], deferred: [], failed: [], warned: [], pending: false };
  const report = (r: QueuedRecipient, status: string, remoteHost: string | null, tls?: string | null): RecipientReport => ({
    address: r.address,
    original: r.original,
    orcpt: r.orcpt,
    notify: r.notify,
    status,
    remoteHost,
    ...(tls ? { tls } : {}),
  });
  const lastHost = new Map<QueuedRecipient, string | null>();
  const lastTls = new Map<QueuedRecipient, string | null | undefined>();

  const recipients: QueuedRecipient[] = envelope.recipients.map((r) => ({ ...r }));
  for (const r of recipients) {
    if (r.state === 'delivered') continue;
    if (r.state === 'failed') {
      result.failed.push(report(r, r.status ?? '5.0.0 delivery failed', null));
      continue;
    }
    const o = byAddress.get(r.address.toLowerCase())?.shift();
    if (!o) {
      // The job said nothing about it (a crashed job, a message not tried): try again later.
      lastHost.set(r, null);
      continue;
    }
    r.status = o.status;
    lastHost.set(r, o.remoteHost);
    lastTls.set(r, o.tls);
    if (o.result === 'delivered') {
      r.state = 'delivered';
      result.delivered.push(report(r, o.status, o.remoteHost, o.tls));
    } else if (o.result === 'failed') {
      r.state = 'failed';
      result.failed.push(report(r, o.status, o.remoteHost, o.tls));
    }
  }

  const stillPending = recipients.filter((r) => r.state === 'pending');
  if (stillPending.length > 0) {
    const ageMs = now.getTime() - envelope.arrival.getTime();
    for (const r of stillPending) {
      const due = noticeDue(policy.noticesMs, ageMs, r.warnings ?? 0);
      if (due.kind === 'return') {
        r.state = 'failed';
        r.status = expiredStatus(r.status, ageMs);
        result.failed.push(report(r, r.status, lastHost.get(r) ?? null));
        continue;
      }
      result.deferred.push(report(r, r.status ?? '4.0.0 not tried yet', lastHost.get(r) ?? null, lastTls.get(r)));
      if (due.kind === 'warn') {
        r.warnings = due.warnings;
        result.warned.push(report(r, r.status ?? '4.0.0 not tried yet', lastHost.get(r) ?? null));
      }
    }
  }

  result.pending = recipients.some((r) => r.state === 'pending');
  result.envelope.recipients = recipients;
  if (result.pending && result.deferred.length > 0) {
    const next = retrySchedule(envelope, outcomes, now, policy);
    result.envelope.attempts = next.attempts;
    result.envelope.nextAttempt = next.nextAttempt;
  }
  return result;
}

/**
 * The try count and the next attempt after an attempt that left recipients deferred. Only a real
 * try made when the message was due counts and advances the backoff:
 * - nothing left was tried (every host of the recipients left inside its host-retry window, or
 *   their traffic-shaping destination paused; others may have been delivered): the count stays,
 *   and the next attempt is when one may be tried again (not before the message's own schedule);
 * - a try made before the message was due (a flush, ETRN, a release made it due early): the
 *   count and the schedule stay as they were, so that retries asked for from outside never push
 *   a message's backoff on or bring its return nearer in tries.
 */
function retrySchedule(envelope: Envelope, outcomes: readonly RecipientOutcome[], now: Date, policy: Pick<OutcomePolicy, 'backoffMs'>): { attempts: number; nextAttempt: Date } {
  const scheduled = envelope.nextAttempt?.getTime() ?? 0;
  // The recipients left: those deferred now (the delivered and failed ones are settled).
  const left = outcomes.filter((o) => o.result === 'deferred');
  if (left.length > 0 && left.every((o) => o.notTriedUntil !== undefined)) {
    const hostFree = Math.min(...left.map((o) => o.notTriedUntil!));
    return { attempts: envelope.attempts, nextAttempt: new Date(Math.max(hostFree, scheduled, now.getTime())) };
  }
  if (scheduled > now.getTime()) return { attempts: envelope.attempts, nextAttempt: new Date(scheduled) };
  const attempts = envelope.attempts + 1;
  return { attempts, nextAttempt: nextAttemptAt(now, policy.backoffMs, attempts) };
}

/** The envelope to write once the notices for failed recipients are queued: those recipients are settled and dropped. */
export function withoutSettled(envelope: Envelope): Envelope {
  return { ...envelope, recipients: envelope.recipients.filter((r) => r.state !== 'failed') };
}

/** Whether a recipient's NOTIFY asks for a notice of this kind (RFC 3461; none given = failures and delays). */
export function wantsNotice(notify: string[] | null, kind: 'failure' | 'delay' | 'success'): boolean {
  if (!notify || notify.length === 0) return kind !== 'success';
  const set = new Set(notify.map((n) => n.toUpperCase()));
  if (set.has('NEVER')) return false;
  return set.has(kind === 'failure' ? 'FAILURE' : kind === 'delay' ? 'DELAY' : 'SUCCESS');
}
