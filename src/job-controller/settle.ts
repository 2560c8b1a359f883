// Settling a delivery attempt (Postfix's qmgr_defer.c and qmgr_bounce.c): the job's outcomes
// applied to the envelope (outcome.ts), the notices owed queued first, then the D and R records of
// mail.log, then the queue file rewritten with the recipients left (or retired when none is),
// then the counters and the index. A kill at any point gives at worst a record and a redelivery
// (at least once), never a silent delivery or a lost notice. A batch is settled as a whole: its
// notices, one mail.log write for all its records, then its file changes (which share their
// directory fsyncs).
import type { Channel, InstanceConfig } from '../config/types.js';
import type { RecipientOutcome } from '../channels/types.js';
import { channelProgram } from '../channels/index.js';
import type { Logger } from '../common/logger.js';
import type { MailLog, MailLogRecord } from '../common/mail-log.js';
import type { Envelope, QueueRef, QueueStore } from '../queue/index.js';
import type { NoticeSender } from '../notices/send.js';
import type { DsnRecipient } from '../notices/dsn.js';
import { returnTime } from '../notices/schedule.js';
import { transactionSender, verpDelimitersOf } from '../delivery/verp.js';
import { nextAttemptAt } from './backoff.js';
import { outcomePolicy } from './config.js';
import type { CounterBook } from './counters.js';
import type { Intake } from './intake.js';
import type { IndexedMessage } from './message-index.js';
import { applyOutcome, wantsNotice, withoutSettled, type AppliedOutcome, type OutcomePolicy } from './outcome.js';
import { forEachLimited } from './parallel.js';

/** Outcomes of a batch written back at once (their directory fsyncs are shared). */
const SETTLE_PARALLEL = 32;
/** A message whose outcome could not be recorded is tried again this much later. */
const RETRY_AFTER_FAILURE_MS = 60_000;

/** One message's attempt to settle: the envelope as read for it and what the job said of its recipients. */
export interface Attempt {
  entry: IndexedMessage;
  envelope: Envelope;
  outcomes: RecipientOutcome[];
}

/** An attempt's outcome between its notices and its file change. */
interface Settling {
  entry: IndexedMessage;
  envelope: Envelope;
  applied: AppliedOutcome;
  noticeOk: boolean;
  now: Date;
  policy: OutcomePolicy;
}

export interface SettlerOptions {
  intake: Intake;
  config(): InstanceConfig;
  /** The queue store and notice sender in force (a reload makes new ones). */
  store(): QueueStore;
  notices(): NoticeSender;
  mailLog: MailLog;
  counters: CounterBook;
  /** A notice was admitted: start its job. */
  kick(): void;
  logger: Logger;
  now(): number;
}

export class Settler {
  /** mail.log records of the outcomes settled in this turn of the event loop: one write for all. */
  private mailLogPending: MailLogRecord[] = [];

  constructor(private readonly opts: SettlerOptions) {}

  /** Writes one attempt's outcome back: notices first, then mail.log's D and R, then the queue file, counters and the index. */
  async settle(attempt: Attempt, channel: Channel | undefined): Promise<void> {
    const s = await this.prepare(attempt, channel);
    // D and R before the file changes: a kill in between gives a record and a redelivery (at least once), never a silent delivery.
    this.logOutcome(s.envelope, s.applied, 'settled');
    await this.commit(s);
  }

  /** A batch at once: the notices, then the D and R records of all its messages in one write, then the removals and rewrites. */
  async settleBatch(attempts: readonly Attempt[], channel: Channel): Promise<void> {
    const settling: Settling[] = [];
    await forEachLimited(attempts, SETTLE_PARALLEL, async (attempt) => {
      try {
        settling.push(await this.prepare(attempt, channel));
      } catch (err) {
        this.failed(attempt.entry.id, err);
      }
    });
    for (const s of settling) this.logOutcome(s.envelope, s.applied, 'settled', false);
    this.writeMailLog();
    await forEachLimited(settling, SETTLE_PARALLEL, async (s) => {
      try {
        await this.commit(s);
      } catch (err) {
        this.failed(s.entry.id, err);
      }
    });
  }

  /** Writes the mail.log records gathered so far. */
  writeMailLog(): void {
    const records = this.mailLogPending;
    this.mailLogPending = [];
    try {
      this.opts.mailLog.write(records);
    } catch (err) {
      this.opts.logger.warn({ err }, 'cannot write mail.log');
    }
  }

  private failed(id: string, err: unknown): void {
    this.opts.logger.error({ err, id }, 'cannot record the outcome; the message will be tried again');
    this.opts.intake.retryAt(id, this.opts.now() + RETRY_AFTER_FAILURE_MS);
  }

  /** The outcome applied to the envelope and the notices queued; nothing changed in the message's file yet. */
  private async prepare({ entry, envelope, outcomes }: Attempt, channel: Channel | undefined): Promise<Settling> {
    const now = new Date(this.opts.now());
    const policy = outcomePolicy(this.opts.config(), channel);
    const applied = applyOutcome(envelope, outcomes, now, policy);
    const noticeOk = await this.sendNotices(entry, applied, channel, now, policy.noticesMs);
    return { entry, envelope, applied, noticeOk, now, policy };
  }

  /** The queue file rewritten (recipients left) or retired, then counters and the index. */
  private async commit({ entry, envelope, applied, noticeOk, now, policy }: Settling): Promise<void> {
    const ref: QueueRef = { id: entry.id, channel: entry.channel, path: entry.path };
    let current: QueueRef | null;
    let toWrite: Envelope | null = null;
    if (applied.pending || !noticeOk) {
      toWrite = noticeOk ? withoutSettled(applied.envelope) : applied.envelope;
      if (!noticeOk && !applied.deferred.length) {
        // Only a notice is owed: try to queue it again after the first backoff step.
        toWrite = { ...toWrite, attempts: toWrite.attempts + 1, nextAttempt: nextAttemptAt(now, policy.backoffMs, toWrite.attempts + 1) };
      }
      try {
        current = await this.opts.store().update(ref, toWrite);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        current = null; // held, deleted or returned by qm meanwhile
        this.opts.logger.info({ id: entry.id }, 'message left the queue during its delivery attempt');
      }
    } else {
      this.opts.store().retire(ref.path);
      current = null;
    }

    if (current !== null) this.logOutcome(envelope, applied, 'deferred');
    this.count(envelope, applied, current !== null);
    if (current && toWrite) this.opts.intake.deferred(entry.id, current, toWrite);
    else this.opts.intake.forget(entry.id);
  }

  private async sendNotices(entry: IndexedMessage, applied: AppliedOutcome, channel: Channel | undefined, now: Date, noticesMs: readonly number[]): Promise<boolean> {
    const recipients: DsnRecipient[] = [];
    for (const r of applied.failed) if (wantsNotice(r.notify, 'failure')) recipients.push({ address: r.address, orcpt: r.orcpt, action: 'failed', status: r.status, remoteHost: r.remoteHost });
    for (const r of applied.warned) if (wantsNotice(r.notify, 'delay')) recipients.push({ address: r.address, orcpt: r.orcpt, action: 'delayed', status: r.status, remoteHost: r.remoteHost });
    // Success notices for final delivery here; SMTP channels pass NOTIFY on to the next server instead.
    if (channel && channelProgram(channel) !== 'smtp') {
      for (const r of applied.delivered) if (wantsNotice(r.notify, 'success')) recipients.push({ address: r.address, orcpt: r.orcpt, action: 'delivered', status: r.status, remoteHost: r.remoteHost });
    }
    if (recipients.length === 0) return true;
    const { logger } = this.opts;
    try {
      for (const group of this.noticeGroups(applied.envelope, channel, recipients)) {
        const result = await this.opts.notices().send({ envelope: applied.envelope, path: entry.path, recipients: group.recipients, to: group.to, now, willRetryUntil: returnTime(applied.envelope.arrival, noticesMs) });
        if (!result.sent) {
          logger.info({ id: entry.id, reason: result.reason }, 'no delivery status notification sent');
          continue;
        }
        logger.info({ id: entry.id, notice: result.ref.id, to: result.to, recipients: group.recipients.length }, 'delivery status notification queued');
        if (await this.opts.intake.admitFile(result.ref.path, 'notice')) queueMicrotask(() => this.opts.kick());
      }
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true; // the original is gone (qm delete)
      logger.error({ err, id: entry.id }, 'cannot queue a delivery status notification; will try again');
      return false;
    }
  }

  /**
   * One notice to the sender for all recipients; for a VERPed message (a `verp` channel, or its
   * own XVERP on any channel) one per recipient, to the VERP sender its transaction had (Postfix's
   * VERP bounces), so the list learns the member from the address whether the remote server or
   * this host reports the failure.
   */
  private noticeGroups(envelope: Envelope, channel: Channel | undefined, recipients: DsnRecipient[]): Array<{ to?: string; recipients: DsnRecipient[] }> {
    const delimiters = verpDelimitersOf(channel, envelope.mailParams, this.opts.config().options.verpDelimiters);
    if (delimiters === null || envelope.from === '') return [{ recipients }];
    const groups = new Map<string, DsnRecipient[]>();
    for (const r of recipients) {
      const to = transactionSender(channel ?? { senderRewrite: null }, envelope.from, r.address, delimiters);
      groups.set(to, [...(groups.get(to) ?? []), r]);
    }
    return [...groups].map(([to, list]) => ({ to, recipients: list }));
  }

  /** `settled` (D, R) is written at once, before the queue file changes; `deferred` (Q, after the rewrite) with the turn's other records. */
  private logOutcome(envelope: Envelope, applied: AppliedOutcome, part: 'settled' | 'deferred', writeNow = true): void {
    const base = { id: envelope.id, source: envelope.sourceChannel, destination: envelope.channel, size: envelope.mailParams.size ?? 0, from: envelope.from, time: new Date(this.opts.now()) };
    const records: MailLogRecord[] = [];
    if (part === 'settled') {
      for (const r of applied.delivered) records.push({ ...base, event: 'D', recipient: r.address, status: withHost(r.status, r.remoteHost), ...tlsOf(r) });
      for (const r of applied.failed) records.push({ ...base, event: 'R', recipient: r.address, status: withHost(r.status, r.remoteHost), ...tlsOf(r) });
    } else {
      for (const r of applied.deferred) records.push({ ...base, event: 'Q', recipient: r.address, status: withHost(r.status, r.remoteHost), ...tlsOf(r) });
    }
    if (records.length === 0) return;
    if (this.mailLogPending.length === 0 && part === 'deferred') setImmediate(() => this.writeMailLog());
    for (const r of records) this.mailLogPending.push(r);
    if (part === 'settled' && writeNow) this.writeMailLog();
  }

  private count(envelope: Envelope, applied: AppliedOutcome, stillQueued: boolean): void {
    const { counters } = this.opts;
    const ch = envelope.channel;
    const finished = !stillQueued && applied.envelope.recipients.some((r) => r.state === 'delivered');
    counters.add(ch, 'delivered', finished ? 1 : 0, applied.delivered.length);
    counters.add(ch, 'returned', applied.failed.length > 0 ? 1 : 0, applied.failed.length);
    if (stillQueued) counters.add(ch, 'deferred', applied.deferred.length > 0 ? 1 : 0, applied.deferred.length);
  }
}

function withHost(status: string, host: string | null): string {
  return host ? `${status} (${host})` : status;
}

/** mail.log's tls= token for a recipient whose status came over TLS. */
function tlsOf(r: { tls?: string | null }): { tls?: string } {
  return r.tls ? { tls: r.tls } : {};
}
