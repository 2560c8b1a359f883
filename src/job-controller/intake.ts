// The job controller's intake (Postfix's qmgr_active.c, the feeding side): the bounded index of
// queued messages (message-index.ts) and everything that changes it — a message admitted for a
// named reason, made due, taken for a batch, rescheduled after its attempt, or forgotten — with
// the envelopes kept from admission until the first attempt and the fast-flush index of deferred
// messages (fast-flush-store.ts). The only module that writes those three; the scheduler reads
// the index through the ReadyMessages view, the scans and settle call the methods here.
import type { Envelope, NoticedFile, QueueRef, QueueStore, ScanEntry } from '../queue/index.js';
import type { InstanceConfig } from '../config/types.js';
import type { Logger } from '../common/logger.js';
import { FastFlushStore, flushHostFor } from './fast-flush-store.js';
import type { FlushContext, FlushResult } from './fast-flush.js';
import { MessageIndex, domainsOf, type ChannelIndexStats, type IndexedMessage } from './message-index.js';

/** Why a message enters the index (as KumoMTA's InsertReason says why one enters its queue). */
export type AdmitReason =
  /** A slave (SMTP server, submit) stored it: new mail. */
  | 'enqueued'
  /** A scan of the queue directories found it. */
  | 'scanned'
  /** `imsimta qm release` or `return` put it back: tried (or settled) at once. */
  | 'released'
  /** A flush (ETRN, `imsimta flush`) named it: tried at once, even when the index is full. */
  | 'flushed'
  /** The job controller queued it itself: a delivery status notification. */
  | 'notice';

export interface Admission {
  /** Due now, whatever its next attempt or its channel's `periodic` run says. */
  dueNow: boolean;
  /** Taken even when the index is full (the excess is bounded by what a flush names). */
  overLimit: boolean;
  /** New in the queue: counted as enqueued. */
  arrival: boolean;
}

const ADMISSIONS: Record<AdmitReason, Admission> = {
  enqueued: { dueNow: false, overLimit: false, arrival: true },
  scanned: { dueNow: false, overLimit: false, arrival: false },
  released: { dueNow: true, overLimit: false, arrival: false },
  flushed: { dueNow: true, overLimit: true, arrival: false },
  notice: { dueNow: false, overLimit: false, arrival: true },
};

/** What admitting for `reason` means. */
export function admission(reason: AdmitReason): Admission {
  return ADMISSIONS[reason];
}

/**
 * Envelopes kept from admission until the message's first attempt, so that a new message is read
 * once, not twice. Bounded: beyond this many, envelopes are read again when the job takes them.
 */
const FRESH_ENVELOPES_MAX = 20_000;

interface FreshEnvelope {
  path: string;
  envelope: Envelope;
  size: number;
}

interface QueuedEnvelope {
  envelope: Envelope;
  size: number;
}

/** What the scheduler sees of the index: the ready messages per channel, and when the next one is due. */
export interface ReadyMessages {
  promoteDue(nowMs: number): void;
  take(channel: string, max: number): IndexedMessage[];
  channels(): string[];
  channelStats(channel: string): ChannelIndexStats;
  nextDueMs(): number | null;
}

export interface IntakeOptions {
  /** The instance's root (the fast-flush journal is kept under it). */
  root: string;
  config: InstanceConfig;
  /** The queue store in force (a reload makes a new one). */
  store(): QueueStore;
  /** When a message is first due (its next attempt, or its `periodic` channel's next run: config.ts firstDueMs). */
  firstDueMs(envelope: Envelope, nowMs: number): number;
  /** A message new in the queue was admitted or refused (enqueued, notice): the counters. */
  onArrival(envelope: Envelope): void;
  /** Messages left the index: a scan may find room for what the last one left on disk. */
  onRoom(): void;
  logger: Logger;
  now: () => number;
}

export class Intake implements ReadyMessages {
  private readonly index: MessageIndex;
  /** Envelopes read at admission, by id, until the first attempt takes them (see FRESH_ENVELOPES_MAX). */
  private readonly fresh = new Map<string, FreshEnvelope>();
  /** ETRN fast flush: the per-destination index of deferred messages and its journal. */
  private readonly fastFlush: FastFlushStore;
  /** Queue files whose envelope was read (status `files_read`: what a flush or scan cost). */
  private filesRead = 0;

  constructor(private readonly opts: IntakeOptions) {
    this.index = new MessageIndex(Math.max(1, opts.config.jobController.maxMessages));
    this.fastFlush = FastFlushStore.open({ root: opts.root, config: opts.config, logger: opts.logger });
  }

  /** A new configuration: MAX_MESSAGES, and the fast-flush domains (FAST_FLUSH_DOMAINS or the rewrite rules). */
  configure(config: InstanceConfig): void {
    this.index.maxMessages = Math.max(1, config.jobController.maxMessages);
    this.fastFlush.configure(config);
  }

  /** Writes what the fast-flush journal has buffered and closes it. */
  close(): void {
    this.fastFlush.close();
  }

  /** The envelope and message size of a queue file (QueueStore.readQueued): null when it is corrupt (set aside) or gone. */
  read(path: string): Promise<QueuedEnvelope | null> {
    this.filesRead++;
    return this.opts.store().readQueued(path);
  }

  /**
   * Puts a message into the index; false when it is already there or there is no room. With its
   * size, a message due now keeps its envelope for its first attempt (read once, not twice).
   */
  admit(path: string, envelope: Envelope, size: number | undefined, reason: AdmitReason): boolean {
    const { dueNow, overLimit, arrival } = admission(reason);
    if (arrival) this.opts.onArrival(envelope);
    const now = this.opts.now();
    const pending = envelope.recipients.filter((r) => r.state === 'pending');
    const owesNotice = envelope.recipients.some((r) => r.state === 'failed');
    const entry: IndexedMessage = {
      id: envelope.id,
      channel: envelope.channel,
      path,
      attempts: envelope.attempts,
      arrivalMs: envelope.arrival.getTime(),
      // Files with notices owed (qm return, a crash before the rewrite) or nothing left are settled at
      // once; released and flushed ones are tried at once, also on a `periodic` channel.
      dueMs: owesNotice || pending.length === 0 || dueNow ? 0 : this.opts.firstDueMs(envelope, now),
      pendingRecipients: pending.length,
      domains: domainsOf(pending.map((r) => r.address)),
    };
    this.fastFlush.noteAdmitted(path, envelope, entry.domains);
    let added = this.index.add(entry, now, overLimit);
    if (!added && !this.index.has(entry.id) && entry.attempts === 0) {
      // New mail is not kept out by a full index of deferred mail: the furthest-due 1% go back to disk.
      const evicted = this.index.evictFurthestWaiting(Math.ceil(this.index.maxMessages / 100), now);
      for (const id of evicted) this.fresh.delete(id);
      if (evicted.length > 0) added = this.index.add(entry, now, overLimit);
    }
    if (added && size !== undefined && entry.dueMs <= now && this.fresh.size < FRESH_ENVELOPES_MAX) {
      this.fresh.set(entry.id, { path, envelope, size });
    }
    return added;
  }

  /** Reads a queue file and admits it; false when it is gone, corrupt, or not admitted. */
  async admitFile(path: string, reason: AdmitReason): Promise<boolean> {
    const file = await this.read(path);
    return file !== null && this.admit(path, file.envelope, file.size, reason);
  }

  /**
   * The "enqueued" notices of a slave: the new files not known yet, admitted. How many were. A
   * file named with its envelope is not read back, only checked to be there still (a scan may
   * have found it first and its delivery removed it meanwhile).
   */
  async admitEnqueued(refs: readonly NoticedFile[]): Promise<number> {
    let admitted = 0;
    for (const ref of refs) {
      if (ref.path.endsWith('.HELD') || this.index.has(ref.id)) continue;
      const told = ref.envelope && ref.size !== undefined ? { envelope: ref.envelope, size: ref.size } : null;
      if (told ? this.opts.store().exists(ref.path) && this.admit(ref.path, told.envelope, told.size, 'enqueued') : await this.admitFile(ref.path, 'enqueued')) admitted++;
    }
    return admitted;
  }

  // -------------------------------------------------------------- an attempt

  /**
   * The envelope for a message a job took: the one kept from its admission, else read again. A
   * corrupt file is set aside and a vanished one (delivered, deleted, held meanwhile) skipped: the
   * message is forgotten and null returned.
   */
  async envelopeForAttempt(entry: IndexedMessage): Promise<QueuedEnvelope | null> {
    const kept = this.fresh.get(entry.id);
    this.fresh.delete(entry.id);
    const found =
      kept?.path === entry.path
        ? kept
        : await this.read(entry.path).catch((err: Error) => {
            this.opts.logger.warn({ err, id: entry.id }, 'cannot read queue file');
            return null;
          });
    if (!found) this.forget(entry.id);
    return found;
  }

  /** After an attempt that left recipients pending: the message waits for its next attempt, indexed for fast flush. */
  deferred(id: string, current: QueueRef, envelope: Envelope): void {
    const pending = envelope.recipients.filter((r) => r.state === 'pending');
    const domains = domainsOf(pending.map((r) => r.address));
    this.index.reschedule(id, { path: current.path, attempts: envelope.attempts, dueMs: envelope.nextAttempt?.getTime() ?? 0, pendingRecipients: pending.length, domains }, this.opts.now());
    this.fastFlush.deferred(current, domains);
  }

  /** The outcome could not be recorded: try the message again at `dueMs`. */
  retryAt(id: string, dueMs: number): void {
    this.index.reschedule(id, { dueMs }, this.opts.now());
  }

  /** The message left the queue (delivered, returned, gone): out of every index. */
  forget(id: string): void {
    this.index.remove(id);
    this.fresh.delete(id);
    this.fastFlush.gone(id);
    this.opts.onRoom();
  }

  // --------------------------------------------------------------------- qm

  /** `qm hold` / `qm delete`: the files are gone or renamed; a batch in flight finds out when it writes back. */
  dropped(ids: readonly string[]): void {
    for (const id of ids) if (!this.index.get(id)?.inFlight) this.index.remove(id);
    for (const id of ids) this.fresh.delete(id);
    for (const id of ids) this.fastFlush.gone(id); // a released message is indexed again when it is read
    this.opts.onRoom();
  }

  /** `qm release` / `qm return`: the messages not in flight leave the index, to be admitted again as they are on disk now. Their ids. */
  unindexForRelease(ids: readonly string[]): Set<string> {
    const wanted = new Set(ids.filter((id) => !this.index.get(id)?.inFlight));
    for (const id of wanted) this.index.remove(id);
    return wanted;
  }

  // ------------------------------------------------------------------ flush

  /** Runs a flush (fast-flush-store.ts) against the index, admitting the files it names for reason `flushed`. */
  flush(target: string | null, origin: FlushContext['origin'], client: string | null, host: { rescan: () => void; kick: () => void; hasChannel: (name: string) => boolean }): Promise<FlushResult> {
    return this.fastFlush.flush(
      target,
      flushHostFor({
        index: this.index,
        read: (path) => this.read(path),
        admit: (path, envelope, size) => this.admit(path, envelope, size, 'flushed'),
        rescan: host.rescan,
        kick: host.kick,
        now: this.opts.now,
        hasChannel: host.hasChannel,
      }),
      origin,
      client,
    );
  }

  /** Without its journal, the fast-flush index is rebuilt from the files the scans left unread. */
  async rebuildFastFlush(scan: () => AsyncIterable<ScanEntry>): Promise<void> {
    await this.fastFlush.rebuild({ scan, known: (id) => this.index.has(id), read: (p) => this.read(p) });
  }

  // --------------------------------------------------------------- for scans

  has(id: string): boolean {
    return this.index.has(id);
  }

  /** Messages the index can take before it is full. */
  get room(): number {
    return this.index.room;
  }

  /** The last scan (or an add since) left messages on disk for lack of room. */
  get overflowed(): boolean {
    return this.index.overflowed;
  }

  set overflowed(value: boolean) {
    this.index.overflowed = value;
  }

  /** Half of the index is free again (a scan may bring in what the disk holds beyond it). */
  get halfFree(): boolean {
    return this.index.size <= Math.floor(this.index.maxMessages / 2);
  }

  get size(): number {
    return this.index.size;
  }

  // --------------------------------------------------------- ReadyMessages

  promoteDue(nowMs: number): void {
    this.index.promoteDue(nowMs);
  }

  take(channel: string, max: number): IndexedMessage[] {
    return this.index.take(channel, max);
  }

  channels(): string[] {
    return this.index.channels();
  }

  channelStats(channel: string): ChannelIndexStats {
    return this.index.channelStats(channel);
  }

  nextDueMs(): number | null {
    return this.index.nextDueMs();
  }

  // ----------------------------------------------------------------- status

  stats(): { size: number; max: number; highWater: number; overflowed: boolean; filesRead: number; fastFlush: ReturnType<FastFlushStore['stats']> } {
    return { size: this.index.size, max: this.index.maxMessages, highWater: this.index.highWater, overflowed: this.index.overflowed, filesRead: this.filesRead, fastFlush: this.fastFlush.stats() };
  }
}
