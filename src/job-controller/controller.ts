// The job controller: a bounded index of the queued messages (filled by start-up and periodic
// scans and by "enqueued" notices), master channel jobs started within the pools' JOB_LIMIT and
// the channels' maxjobs, and the outcome of every attempt written back to the queue file before
// anything else happens to the message (delivered recipients are never sent again, deferred ones
// wait for the channel's backoff, failed ones get a DSN).
import type { InstanceConfig, Channel, PoolConfig } from '../config/types.js';
import type { DeliveryItem, MessageOutcome, RecipientOutcome } from '../channels/types.js';
import { everyPendingAs } from '../channels/outcomes.js';
import type { Logger } from '../common/logger.js';
import { instancePaths, type InstancePaths } from '../common/instance.js';
import { MailLog, type MailLogRecord } from '../common/mail-log.js';
import { arrivalKey, queueStoreFor, readStoppedChannels, type Envelope, type QueueRef, type QueueStore, type ScanEntry } from '../queue/index.js';
import { compileRewriter } from '../rewrite/index.js';
import { channelProgram } from '../channels/index.js';
import { NoticeSender, DEFAULT_RETURN_LIMIT_OCTETS } from '../notices/send.js';
import type { DsnRecipient } from '../notices/dsn.js';
import { noticeDue, returnTime } from '../notices/schedule.js';
import { MessageIndex, domainsOf, type IndexedMessage } from './message-index.js';
import { FastFlushStore, flushHostFor } from './fast-flush-store.js';
import { SmallestN } from './heap.js';
import { applyOutcome, wantsNotice, withoutSettled, type AppliedOutcome } from './outcome.js';
import { batchSize, jobsToStart } from './pool-policy.js';
import { channelByName, jobLimits, outcomePolicy, poolFor, poolsOf, returnLimitOctets } from './config.js';
import { JOB_CONTROLLER_DEFAULTS } from '../config/job-controller-cnf.js';
import { nextPeriodicRunMs } from './periodic.js';
import { CounterBook, countersPath, type CounterTable } from './counters.js';
import type { JobRunner } from './runner.js';
import type { ChannelStatus, FlushReply, JobControllerReply, JobControllerRequest, ReplyTo, StatusReply } from './protocol.js';
import { nextAttemptAt } from './backoff.js';
import type { OutcomePolicy } from './outcome.js';
import { DeliveryStatsBook } from './delivery-stats.js';
import { EtrnRateLimiter } from './etrn-rate.js';

export interface ControllerOptions {
  config: InstanceConfig;
  runner: JobRunner;
  logger: Logger;
  /** Reloads the configuration (the `reload` request); throws with file:line lines on error. */
  loadConfig?: () => Promise<InstanceConfig>;
  now?: () => number;
}

interface RunningJob {
  id: number;
  channel: string;
  pool: string;
  started: number;
  batches: number;
  messages: number;
  /** Messages in the job's hands now. */
  current: number;
  /** When the batch in hand was handed over (null between batches). */
  batchStarted: number | null;
  threadId: number | null;
  done: Promise<void>;
}

/** Reads of envelopes at once during scans and admissions. */
const READ_PARALLEL = 32;
/** Outcomes of a batch written back at once (their directory fsyncs are shared). */
const SETTLE_PARALLEL = 32;
/**
 * A job that has delivered a batch waits up to this long for a full batch (threaddepth messages)
 * when fewer are ready, instead of sending the few at once: while mail arrives, it goes out in
 * batches of threaddepth rather than one or two at a time, each batch costing a round trip to
 * the job's thread. A job's first batch never waits.
 */
const LINGER_MS = 20;
/** A batch running longer than this waits on slow hosts: it no longer holds back new mail (pool-policy.ts slowJobs). */
const SLOW_BATCH_MS = 250;

/** An attempt's outcome between its notices and its file change (see deliverBatch). */
interface Settling {
  entry: IndexedMessage;
  envelope: Envelope;
  applied: AppliedOutcome;
  noticeOk: boolean;
  now: Date;
  policy: OutcomePolicy;
}
/**
 * Envelopes kept from admission until the message's first attempt, so that a new message is read
 * once, not twice. Bounded: beyond this many, envelopes are read again when the job takes them.
 */
const FRESH_ENVELOPES_MAX = 20_000;
/** A temporary file untouched this long and not open in its writer is left over (see QueueStore.sweepTemporary). */
const STALE_TEMPORARY_MS = 10 * 60_000;

interface FreshEnvelope {
  path: string;
  envelope: Envelope;
  size: number;
}

export class JobController {
  private config: InstanceConfig;
  private readonly paths: InstancePaths;
  private store: QueueStore;
  private notices: NoticeSender;
  private readonly mailLog: MailLog;
  private readonly index: MessageIndex;
  private readonly counters: CounterBook;
  /** DNS cache and outbound connection counts per channel, as the jobs report them (metrics). */
  private readonly deliveryStats = new DeliveryStatsBook();
  /** ETRN fast flush: the per-destination index of deferred messages (fast-flush-store.ts). */
  private readonly fastFlush: FastFlushStore;
  /** The operator's flushes so far: jobs empty their host reachability cache when it changes (job-host.ts). */
  private flushGeneration = 0;
  /** ETRN requests per client address (ETRN_RATE_LIMIT). */
  private readonly etrnRate: EtrnRateLimiter;
  private readonly jobs = new Map<number, RunningJob>();
  /** Envelopes read at admission, by id, until the first attempt takes them (see FRESH_ENVELOPES_MAX). */
  private readonly fresh = new Map<string, FreshEnvelope>();
  /** mail.log records of the outcomes settled in this turn of the event loop: one write for all. */
  private mailLogPending: MailLogRecord[] = [];
  /** Jobs lingering for a fuller batch, per channel (see LINGER_MS). */
  private readonly lingering = new Map<string, Set<{ size: number; wake: () => void }>>();
  private stopped = new Set<string>();
  private readonly warnedChannels = new Set<string>();
  private generation = 1;
  private jobSeq = 0;
  private rotation = 0;
  private stopping = false;
  private wakeTimer: NodeJS.Timeout | null = null;
  private wakeAt = 0;
  private synchTimer: NodeJS.Timeout | null = null;
  private scanning: Promise<void> | null = null;
  private scanAgain = false;
  private scans = 0;
  /** Queue files whose envelope this process read (status `files_read`: what a flush or scan cost). */
  private filesRead = 0;
  /** Batches handed to jobs and the messages in them, since start (status: the mean batch size). */
  private readonly handed = { batches: 0, messages: 0 };
  private readonly now: () => number;

  constructor(private readonly opts: ControllerOptions) {
    this.config = opts.config;
    this.now = opts.now ?? Date.now;
    this.paths = instancePaths(opts.config.root);
    this.store = queueStoreFor(this.paths, this.config, opts.logger);
    this.mailLog = new MailLog(this.paths.mailLog);
    this.notices = this.makeNoticeSender();
    this.index = new MessageIndex(Math.max(1, this.config.jobController?.maxMessages ?? 100000));
    this.counters = new CounterBook(countersPath(this.paths.log));
    this.counters.load();
    this.fastFlush = FastFlushStore.open({ root: this.paths.root, config: this.config, logger: opts.logger });
    this.etrnRate = new EtrnRateLimiter(this.config.options.etrnRateLimit);
    opts.runner.configure(poolsOf(this.config));
  }

  private get logger(): Logger {
    return this.opts.logger;
  }

  /** Ready to take requests at once; the first scan goes on in the background (`scanned` resolves when it is done). */
  async start(): Promise<{ scanned: Promise<void> }> {
    const removed = await this.store.sweepTemporary().catch(() => 0);
    if (removed) this.logger.info({ removed }, 'removed temporary files left by writers that died');
    this.stopped = new Set(await readStoppedChannels(this.paths.root).catch(() => []));
    this.armSynchTimer();
    // Without its journal, the fast-flush index is rebuilt from the files the scan left unread.
    const scanned = this.rescan('start').then(() => this.fastFlush.rebuild({ scan: () => this.store.scan(), known: (id) => this.index.has(id), read: (p) => this.readQueued(p) }));
    return { scanned: scanned.then(() => {}, (err: Error) => this.logger.error({ err }, 'fast-flush rebuild failed')) };
  }

  /** Finishes the batches in hand, then stops. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const set of this.lingering.values()) for (const l of set) l.wake();
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    if (this.synchTimer) clearInterval(this.synchTimer);
    await Promise.all([...this.jobs.values()].map((j) => j.done));
    await this.scanning?.catch(() => {});
    await this.counters.save().catch((err: Error) => this.logger.warn({ err }, 'cannot save the counters'));
    await this.opts.runner.close();
    await this.store.close();
    this.fastFlush.close();
    this.flushMailLog();
    this.mailLog.close();
  }

  // ------------------------------------------------------------------ requests

  /** A request of the job controller's socket (validated by protocol.ts parseJobControllerRequest). */
  async handle(req: JobControllerRequest): Promise<JobControllerReply> {
    switch (req.op) {
      case 'enqueued':
        return this.onEnqueued(req.refs);
      case 'qm':
        return this.onQm(req);
      case 'flush':
        return this.flush(req.target, req.origin ?? 'operator', req.client ?? null);
      case 'status':
        return this.status();
      case 'counters':
        return { ok: true, counters: this.counters.snapshot() };
      case 'reload':
        return this.reload();
      case 'rescan':
        await this.rescan('request');
        return { ok: true, index: this.index.size };
    }
  }

  private async onEnqueued(refs: QueueRef[]): Promise<ReplyTo<'enqueued'>> {
    let admitted = 0;
    for (const ref of refs) {
      if (ref.path.endsWith('.HELD') || this.index.has(ref.id)) continue;
      const file = await this.readQueued(ref.path);
      if (!file) continue;
      this.counters.add(file.envelope.channel, 'enqueued', 1, file.envelope.recipients.filter((r) => r.state === 'pending').length);
      if (this.admit(ref.path, file.envelope, file.size)) admitted++;
    }
    this.kick();
    return { ok: true, admitted };
  }

  private async onQm(req: Extract<JobControllerRequest, { op: 'qm' }>): Promise<ReplyTo<'qm'>> {
    const action = req.action;
    if (!('ids' in req)) {
      this.stopped = new Set(await readStoppedChannels(this.paths.root).catch(() => [...this.stopped]));
      this.kick();
      return { ok: true };
    }
    const ids = req.ids.map((x) => x.toUpperCase());
    if (action === 'hold' || action === 'delete') {
      // The file is gone or renamed: forget it (a batch in flight finds out when it writes back).
      for (const id of ids) if (!this.index.get(id)?.inFlight) this.index.remove(id);
      for (const id of ids) this.fresh.delete(id);
      for (const id of ids) this.fastFlush.gone(id); // a released message is indexed again when it is read
      this.maybeRescanForRoom();
      return { ok: true };
    }
    // release, return
    const wanted = new Set(ids.filter((id) => !this.index.get(id)?.inFlight));
    for (const id of wanted) this.index.remove(id);
    const found: ScanEntry[] = [];
    if (wanted.size > 0) {
      for await (const e of this.store.scan()) {
        if (wanted.has(e.id) && !e.held) found.push(e);
        if (found.length === wanted.size) break;
      }
    }
    // Released and returned messages are tried (or settled) at once.
    for (const e of found) {
      const file = await this.readQueued(e.path);
      if (file) this.admit(e.path, file.envelope, file.size, { dueNow: true });
    }
    this.kick();
    return { ok: true, found: found.length };
  }

  /**
   * Retry now (imsimta flush, ETRN): a fast-flush domain through the per-destination index
   * (only its deferred messages, ignoring their backoff), `#channel` that channel, no target
   * everything; another domain is refused to ETRN (459) and, for the operator, its messages among
   * those the scheduler holds. See fast-flush.ts. ETRN is rate-limited per client address and
   * leaves the jobs' host reachability caches alone (a host found down is not tried again before
   * SMTP_HOST_RETRY has passed); the operator's flush makes the jobs forget them.
   */
  async flush(target: string | null, origin: 'etrn' | 'operator' = 'operator', client: string | null = null): Promise<FlushReply> {
    if (origin === 'etrn' && client !== null && !this.etrnRate.allow(client, this.now())) {
      this.logger.info({ target, client }, 'ETRN refused: too many from this client');
      return { ok: false, code: 458, count: 0, text: `too many ETRN requests from ${client}; try again later`, reason: 'too many ETRN requests, try again later' };
    }
    if (origin === 'operator') this.flushGeneration++;
    return this.fastFlush.flush(
      target,
      flushHostFor({
        index: this.index,
        read: (path) => this.readQueued(path),
        admit: (path, envelope, size) => this.admit(path, envelope, size, { overLimit: true, dueNow: true }),
        rescan: () => void this.rescan('flush'),
        kick: () => this.kick(),
        now: this.now,
        hasChannel: (name) => channelByName(this.config, name) !== undefined,
      }),
      origin,
      client,
    );
  }

  status(): StatusReply {
    const channels: Record<string, ChannelStatus> = {};
    const counters = this.counters.snapshot();
    const names = new Set([...this.config.imta.channels.map((c) => c.name), ...this.index.channels(), ...Object.keys(counters)]);
    for (const name of [...names].sort()) {
      const s = this.index.channelStats(name);
      const running = [...this.jobs.values()].filter((j) => j.channel === name).length;
      channels[name] = { ...s, jobs: running, stopped: this.stopped.has(name), counters: counters[name] ?? null };
    }
    const pools = poolsOf(this.config).map((p) => ({
      name: p.name,
      job_limit: p.jobLimit,
      running: [...this.jobs.values()].filter((j) => j.pool === p.name).length,
      threads: this.opts.runner.threads().filter((t) => t.pool === p.name).length,
    }));
    return {
      ok: true,
      pid: process.pid,
      index: { size: this.index.size, max: this.index.maxMessages, high_water: this.index.highWater, overflowed: this.index.overflowed, scans: this.scans },
      batches: { ...this.handed },
      pools,
      jobs: [...this.jobs.values()].map((j) => ({
        job: j.id,
        pid: process.pid,
        thread: j.threadId,
        channel: j.channel,
        pool: j.pool,
        started: new Date(j.started).toISOString(),
        batches: j.batches,
        messages: j.messages,
        in_hand: j.current,
      })),
      channels,
      stopped: [...this.stopped].sort(),
      fast_flush: this.fastFlush.stats(),
      files_read: this.filesRead,
      delivery: this.deliveryStats.snapshot(),
    };
  }

  /** After logrotate moved mail.log (SIGHUP): the next record opens the file anew. */
  reopenLogs(): void {
    this.mailLog.reopen();
  }

  counterTable(): CounterTable {
    return this.counters.snapshot();
  }

  private async reload(): Promise<ReplyTo<'reload'>> {
    if (!this.opts.loadConfig) return { ok: false, error: 'reload is not available' };
    let config: InstanceConfig;
    try {
      config = await this.opts.loadConfig();
    } catch (err) {
      const message = (err as Error).message;
      this.logger.error({ error: message }, 'reload failed; keeping the configuration in force');
      return { ok: false, error: message };
    }
    this.config = config;
    this.generation++;
    const old = this.store;
    this.store = queueStoreFor(this.paths, config, this.logger);
    void old.close();
    this.notices = this.makeNoticeSender();
    this.fastFlush.configure(config);
    this.etrnRate.configure(config.options.etrnRateLimit);
    this.index.maxMessages = Math.max(1, config.jobController?.maxMessages ?? 100000);
    this.opts.runner.configure(poolsOf(config));
    this.warnedChannels.clear();
    this.armSynchTimer();
    this.kick();
    this.logger.info({ generation: this.generation }, 'configuration reloaded');
    return { ok: true, generation: this.generation };
  }

  private makeNoticeSender(): NoticeSender {
    return new NoticeSender({
      store: this.store,
      rewriter: compileRewriter(this.config.imta),
      mailLog: this.mailLog,
      logger: this.logger,
      localHost: this.config.options.localHost,
      returnLimitOctets: returnLimitOctets(this.config, DEFAULT_RETURN_LIMIT_OCTETS),
    });
  }

  // ------------------------------------------------------------- index filling

  /**
   * Puts a message into the index; false when it is already there or there is no room. With its
   * size, a message due now keeps its envelope for its first attempt (read once, not twice).
   * `overLimit`: a flush named it, so it is taken even when the index is full.
   */
  private admit(path: string, envelope: Envelope, size?: number, { overLimit = false, dueNow = false } = {}): boolean {
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
      dueMs: owesNotice || pending.length === 0 || dueNow ? 0 : this.firstDueMs(envelope),
      pendingRecipients: pending.length,
      domains: domainsOf(pending.map((r) => r.address)),
    };
    this.fastFlush.noteAdmitted(path, envelope, entry.domains);
    let added = this.index.add(entry, this.now(), overLimit);
    if (!added && !this.index.has(entry.id) && entry.attempts === 0) {
      // New mail is not kept out by a full index of deferred mail: the furthest-due 1% go back to disk.
      const evicted = this.index.evictFurthestWaiting(Math.ceil(this.index.maxMessages / 100), this.now());
      for (const id of evicted) this.fresh.delete(id);
      if (evicted.length > 0) added = this.index.add(entry, this.now(), overLimit);
    }
    if (added && size !== undefined && entry.dueMs <= this.now() && this.fresh.size < FRESH_ENVELOPES_MAX) {
      this.fresh.set(entry.id, { path, envelope, size });
    }
    return added;
  }

  /** When a message is first due: its next attempt, else now, else (a `periodic` channel) the next periodic run. */
  private firstDueMs(envelope: Envelope): number {
    const due = envelope.nextAttempt?.getTime() ?? 0;
    const now = this.now();
    if (due > now || channelByName(this.config, envelope.channel)?.immediate !== false) return due;
    return nextPeriodicRunMs(now, this.config.jobController?.periodicIntervalSec ?? JOB_CONTROLLER_DEFAULTS.PERIODIC_INTERVAL);
  }

  /** The envelope and message size of a queue file (QueueStore.readQueued): null when it is corrupt (set aside) or gone. */
  private readQueued(path: string): Promise<{ envelope: Envelope; size: number } | null> {
    this.filesRead++;
    return this.store.readQueued(path);
  }

  /**
   * Scans every channel directory (Rebuild_Parallel_Channel at once) and admits the oldest files
   * the index has room for. Files beyond that are left for a later scan (the index overflowed).
   */
  rescan(reason: string): Promise<void> {
    if (this.scanning) {
      this.scanAgain = true;
      return this.scanning;
    }
    this.scanning = (async () => {
      try {
        do {
          this.scanAgain = false;
          await this.scanOnce(reason);
        } while (this.scanAgain && !this.stopping);
      } catch (err) {
        this.logger.error({ err }, 'queue scan failed');
      } finally {
        this.scanning = null;
      }
      this.kick();
    })();
    return this.scanning;
  }

  private async scanOnce(reason: string): Promise<void> {
    const started = this.now();
    const picker = new SmallestN<ScanEntry>(this.index.room, arrivalKey);
    let seen = 0;
    const channels = await this.store.listChannels();
    const parallel = Math.min(100, Math.max(1, this.config.jobController?.rebuildParallelChannel ?? 12));
    await forEachLimited(channels, parallel, async (channel) => {
      for await (const e of this.store.scan(channel)) {
        if (e.held || this.index.has(e.id)) continue;
        seen++;
        picker.offer(e);
      }
    });
    const selected = picker.result();
    let refused = picker.dropped;
    await forEachLimited(selected, READ_PARALLEL, async (e) => {
      if (this.index.has(e.id)) return;
      const file = await this.readQueued(e.path).catch((err: Error) => {
        this.logger.warn({ err, path: e.path }, 'cannot read queue file');
        return null;
      });
      if (file && !this.admit(e.path, file.envelope, file.size) && !this.index.has(e.id)) refused++;
    });
    this.index.overflowed = refused > 0;
    this.scans++;
    this.logger.info({ reason, seen, admitted: selected.length, left_on_disk: refused, index: this.index.size, ms: this.now() - started }, 'queue scanned');
    this.kick();
  }

  /** After messages left the index: a rescan once half of it is free again, when the disk holds more. */
  private maybeRescanForRoom(): void {
    if (this.stopping || !this.index.overflowed || this.scanning) return;
    if (this.index.size <= Math.floor(this.index.maxMessages / 2)) void this.rescan('room');
  }

  private armSynchTimer(): void {
    if (this.synchTimer) clearInterval(this.synchTimer);
    const sec = Math.max(1, this.config.jobController?.synchTimeSec ?? 14400);
    this.synchTimer = setInterval(() => {
      void this.sweepStaleTemporary();
      void this.rescan('synch');
    }, sec * 1000);
    this.synchTimer.unref();
  }

  /** Temporary files of writers killed mid-write (SMTP server processes) go at every SYNCH_TIME, not only at start. */
  private async sweepStaleTemporary(): Promise<void> {
    const removed = await this.store.sweepTemporary(STALE_TEMPORARY_MS).catch(() => 0);
    if (removed) this.logger.info({ removed }, 'removed stale temporary files from queue/.tmp');
  }

  // ------------------------------------------------------------------ scheduling

  /** Starts the jobs that the ready messages, the channels' limits and the pools' room allow. */
  private kick(): void {
    if (this.stopping) return;
    const now = this.now();
    this.index.promoteDue(now);
    for (const [name, set] of this.lingering) {
      const ready = this.index.channelStats(name).ready;
      for (const l of set) if (ready >= l.size) l.wake();
    }
    const channels = this.index.channels();
    const start = channels.length ? this.rotation++ % channels.length : 0;
    for (let k = 0; k < channels.length; k++) {
      const name = channels[(start + k) % channels.length]!;
      const channel = this.schedulable(name);
      if (!channel) continue;
      const stats = this.index.channelStats(name);
      if (stats.ready === 0) continue;
      const pool = poolFor(this.config, channel);
      const n = jobsToStart(
        {
          backlogMessages: stats.ready + stats.inFlight,
          backlogRecipients: stats.recipients,
          readyMessages: stats.ready,
          runningJobs: this.runningJobs((j) => j.channel === name),
          slowJobs: this.runningJobs((j) => j.channel === name && j.batchStarted !== null && now - j.batchStarted >= SLOW_BATCH_MS),
          threadDepth: channel.threadDepth,
          maxJobs: channel.maxJobs,
          filesPerJob: channel.filesPerJob,
          addrsPerJob: channel.addrsPerJob,
        },
        { jobLimit: pool.jobLimit, runningJobs: this.runningJobs((j) => j.pool === pool.name) },
      );
      for (let i = 0; i < n; i++) this.startJob(channel, pool);
    }
    this.armWakeTimer();
  }

  private schedulable(name: string): Channel | null {
    if (this.stopped.has(name)) return null;
    const channel = channelByName(this.config, name);
    const problem = !channel ? 'is not in imta.cnf' : !channelProgram(channel) ? 'has no delivery program' : null;
    if (problem) {
      if (!this.warnedChannels.has(name)) {
        this.warnedChannels.add(name);
        this.logger.warn({ channel: name }, `queued messages wait: channel ${name} ${problem}`);
      }
      return null;
    }
    return channel!;
  }

  private runningJobs(match: (j: RunningJob) => boolean): number {
    let n = 0;
    for (const j of this.jobs.values()) if (match(j)) n++;
    return n;
  }

  private armWakeTimer(): void {
    const next = this.index.nextDueMs();
    if (next === null || this.stopping) return;
    if (this.wakeTimer && this.wakeAt <= next) return;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeAt = next;
    // Timers cannot wait longer than ~24.8 days; wake up earlier and look again.
    const delay = Math.min(Math.max(0, next - this.now()) + 5, 2 ** 31 - 1);
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = null;
      this.kick();
    }, delay);
  }

  private startJob(channel: Channel, pool: PoolConfig): void {
    const job: RunningJob = { id: ++this.jobSeq, channel: channel.name, pool: pool.name, started: this.now(), batches: 0, messages: 0, current: 0, batchStarted: null, threadId: null, done: Promise.resolve() };
    this.jobs.set(job.id, job);
    job.done = this.runJob(job)
      .catch((err) => this.logger.error({ err, channel: job.channel }, 'job failed'))
      .finally(() => {
        this.jobs.delete(job.id);
        this.maybeRescanForRoom();
        this.kick();
      });
  }

  /** A job pulls batches of its channel's ready messages until none is left (or its life limits or fairness end it). */
  private async runJob(job: RunningJob): Promise<void> {
    await Promise.resolve(); // let kick() finish starting the other jobs first
    for (;;) {
      if (this.stopping || this.stopped.has(job.channel)) return;
      const channel = channelByName(this.config, job.channel);
      if (!channel) return;
      const limits = jobLimits(this.config, job.channel);
      if (limits.maxBatches > 0 && job.batches >= limits.maxBatches) return;
      this.index.promoteDue(this.now());
      const size = batchSize(channel.threadDepth);
      if (job.batches > 0 && this.index.channelStats(job.channel).ready < size) {
        await this.linger(job.channel, size);
        if (this.stopping || this.stopped.has(job.channel)) return;
        this.index.promoteDue(this.now());
      }
      const taken = this.index.take(job.channel, size);
      if (taken.length === 0) return;
      job.current = taken.length;
      job.batchStarted = this.now();
      // Once the batch counts as slow, messages that arrived meanwhile may get a job of their own.
      const slow = setTimeout(() => this.kick(), SLOW_BATCH_MS);
      try {
        await this.deliverBatch(job, channel, taken, limits.timeoutMs);
      } finally {
        clearTimeout(slow);
        job.batchStarted = null;
      }
      job.current = 0;
      job.batches++;
      job.messages += taken.length;
      this.handed.batches++;
      this.handed.messages += taken.length;
      if (this.othersWaiting(job)) return; // let the pool's other channels have a turn
    }
  }

  /** Resolves once `size` messages of the channel are ready, or after LINGER_MS. */
  private linger(channel: string, size: number): Promise<void> {
    return new Promise((resolve) => {
      let set = this.lingering.get(channel);
      if (!set) this.lingering.set(channel, (set = new Set()));
      const waiter = {
        size,
        wake: () => {
          clearTimeout(timer);
          set!.delete(waiter);
          if (set!.size === 0 && this.lingering.get(channel) === set) this.lingering.delete(channel);
          resolve();
        },
      };
      const timer = setTimeout(() => waiter.wake(), LINGER_MS);
      set.add(waiter);
    });
  }

  /** Another channel of the job's pool has ready messages, no job, and the pool is full. */
  private othersWaiting(job: RunningJob): boolean {
    const pool = poolsOf(this.config).find((p) => p.name === job.pool);
    if (!pool || this.runningJobs((j) => j.pool === job.pool) < pool.jobLimit) return false;
    for (const name of this.index.channels()) {
      if (name === job.channel || this.index.channelStats(name).ready === 0) continue;
      const c = this.schedulable(name);
      if (c && poolFor(this.config, c).name === job.pool && this.runningJobs((j) => j.channel === name) === 0) return true;
    }
    return false;
  }

  private async deliverBatch(job: RunningJob, channel: Channel, taken: IndexedMessage[], timeoutMs: number): Promise<void> {
    const items: Array<{ entry: IndexedMessage; item: DeliveryItem }> = [];
    const policy = outcomePolicy(this.config, channel);
    await forEachLimited(taken, READ_PARALLEL, async (entry) => {
      // A corrupt file is set aside and a vanished one (delivered, deleted, held meanwhile) skipped.
      const kept = this.fresh.get(entry.id);
      this.fresh.delete(entry.id);
      const found =
        kept && kept.path === entry.path
          ? kept
          : await this.readQueued(entry.path).catch((err: Error) => {
              this.logger.warn({ err, id: entry.id }, 'cannot read queue file');
              return null;
            });
      if (!found) {
        this.forget(entry.id);
        return;
      }
      const envelope = withSize(found.envelope, found.size);
      const pending = envelope.recipients.some((r) => r.state === 'pending');
      const expired = noticeDue(policy.noticesMs, this.now() - envelope.arrival.getTime(), Number.MAX_SAFE_INTEGER).kind === 'return';
      if (!pending || expired) {
        await this.settle(entry, envelope, [], channel);
        return;
      }
      items.push({ entry, item: { ref: { id: entry.id, channel: entry.channel, path: entry.path }, envelope } });
    });
    if (items.length === 0) return;

    let outcomes: MessageOutcome[];
    try {
      const result = await this.opts.runner.run(job.pool, { channel: channel.name, generation: this.generation, flushGeneration: this.flushGeneration, config: this.config, items: items.map((i) => i.item) }, timeoutMs);
      job.threadId = result.threadId;
      outcomes = result.outcomes;
      this.deliveryStats.add(channel.name, result.delivery);
    } catch (err) {
      const reason = (err as Error).message ?? String(err);
      this.logger.error({ channel: channel.name, messages: items.length, error: reason }, 'delivery job failed; its messages will be retried');
      outcomes = everyPendingAs(
        items.map(({ item }) => item),
        'deferred',
        `451 4.3.0 delivery job failed: ${reason}`,
      );
    }
    const byId = new Map(outcomes.map((o) => [o.ref.id, o]));
    // The whole batch at once: notices, then the D and R records of all its messages in one write,
    // then the removals and rewrites (which share their directory fsyncs).
    const settling: Settling[] = [];
    await forEachLimited(items, SETTLE_PARALLEL, async ({ entry, item }) => {
      try {
        settling.push(await this.prepareSettle(entry, item.envelope, byId.get(entry.id)?.recipients ?? [], channel));
      } catch (err) {
        this.settleFailed(entry.id, err);
      }
    });
    for (const s of settling) this.logOutcome(s.envelope, s.applied, 'settled', false);
    this.flushMailLog();
    await forEachLimited(settling, SETTLE_PARALLEL, async (s) => {
      try {
        await this.commitSettle(s);
      } catch (err) {
        this.settleFailed(s.entry.id, err);
      }
    });
  }

  private settleFailed(id: string, err: unknown): void {
    this.logger.error({ err, id }, 'cannot record the outcome; the message will be tried again');
    this.index.reschedule(id, { dueMs: this.now() + 60_000 }, this.now());
  }

  /** Writes an attempt's outcome back: notices first, then the queue file, then mail.log, counters and the index. */
  private async settle(entry: IndexedMessage, envelope: Envelope, outcomes: RecipientOutcome[], channel: Channel | undefined): Promise<void> {
    const s = await this.prepareSettle(entry, envelope, outcomes, channel);
    // D and R before the file changes: a kill in between gives a record and a redelivery (at least once), never a silent delivery.
    this.logOutcome(envelope, s.applied, 'settled');
    await this.commitSettle(s);
  }

  /** The outcome applied to the envelope and the notices queued; nothing changed in the message's file yet. */
  private async prepareSettle(entry: IndexedMessage, envelope: Envelope, outcomes: RecipientOutcome[], channel: Channel | undefined): Promise<Settling> {
    const now = new Date(this.now());
    const policy = outcomePolicy(this.config, channel);
    const applied = applyOutcome(envelope, outcomes, now, policy);
    const noticeOk = await this.sendNotices(entry, applied, channel, now, policy.noticesMs);
    return { entry, envelope, applied, noticeOk, now, policy };
  }

  /** The queue file rewritten (recipients left) or removed, then counters and the index. */
  private async commitSettle({ entry, envelope, applied, noticeOk, now, policy }: Settling): Promise<void> {
    const ref: QueueRef = { id: entry.id, channel: entry.channel, path: entry.path };
    let current: QueueRef | null = ref;
    let toWrite: Envelope | null = null;
    if (applied.pending || !noticeOk) {
      toWrite = noticeOk ? withoutSettled(applied.envelope) : applied.envelope;
      if (!noticeOk && !applied.deferred.length) {
        // Only a notice is owed: try to queue it again after the first backoff step.
        toWrite = { ...toWrite, attempts: toWrite.attempts + 1, nextAttempt: nextAttemptAt(now, policy.backoffMs, toWrite.attempts + 1) };
      }
      try {
        current = await this.store.update(ref, toWrite);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        current = null; // held, deleted or returned by qm meanwhile
        this.logger.info({ id: entry.id }, 'message left the queue during its delivery attempt');
      }
    } else {
      this.store.retire(ref.path);
      current = null;
    }

    if (current !== null) this.logOutcome(envelope, applied, 'deferred');
    this.count(envelope, applied, current !== null);
    if (current && toWrite) {
      const pending = toWrite.recipients.filter((r) => r.state === 'pending');
      const domains = domainsOf(pending.map((r) => r.address));
      this.index.reschedule(entry.id, { path: current.path, attempts: toWrite.attempts, dueMs: toWrite.nextAttempt?.getTime() ?? 0, pendingRecipients: pending.length, domains }, this.now());
      this.fastFlush.deferred(current, domains);
    } else {
      this.forget(entry.id);
    }
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
    try {
      const result = await this.notices.send({ envelope: applied.envelope, path: entry.path, recipients, now, willRetryUntil: returnTime(applied.envelope.arrival, noticesMs) });
      if (!result.sent) {
        this.logger.info({ id: entry.id, reason: result.reason }, 'no delivery status notification sent');
        return true;
      }
      this.logger.info({ id: entry.id, notice: result.ref.id, to: result.to, recipients: recipients.length }, 'delivery status notification queued');
      const dsn = await this.readQueued(result.ref.path);
      if (dsn) {
        this.counters.add(dsn.envelope.channel, 'enqueued', 1, dsn.envelope.recipients.length);
        if (this.admit(result.ref.path, dsn.envelope, dsn.size)) queueMicrotask(() => this.kick());
      }
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true; // the original is gone (qm delete)
      this.logger.error({ err, id: entry.id }, 'cannot queue a delivery status notification; will try again');
      return false;
    }
  }

  /** `settled` (D, R) is written at once, before the queue file changes; `deferred` (Q, after the rewrite) with the turn's other records. */
  private logOutcome(envelope: Envelope, applied: AppliedOutcome, part: 'settled' | 'deferred', flush = true): void {
    const base = { id: envelope.id, source: envelope.sourceChannel, destination: envelope.channel, size: envelope.mailParams.size ?? 0, from: envelope.from, time: new Date(this.now()) };
    const records: MailLogRecord[] = [];
    if (part === 'settled') {
      for (const r of applied.delivered) records.push({ ...base, event: 'D', recipient: r.address, status: withHost(r.status, r.remoteHost), ...tlsOf(r) });
      for (const r of applied.failed) records.push({ ...base, event: 'R', recipient: r.address, status: withHost(r.status, r.remoteHost), ...tlsOf(r) });
    } else {
      for (const r of applied.deferred) records.push({ ...base, event: 'Q', recipient: r.address, status: withHost(r.status, r.remoteHost), ...tlsOf(r) });
    }
    if (records.length === 0) return;
    if (this.mailLogPending.length === 0 && part === 'deferred') setImmediate(() => this.flushMailLog());
    for (const r of records) this.mailLogPending.push(r);
    if (part === 'settled' && flush) this.flushMailLog();
  }

  private flushMailLog(): void {
    const records = this.mailLogPending;
    this.mailLogPending = [];
    try {
      this.mailLog.write(records);
    } catch (err) {
      this.logger.warn({ err }, 'cannot write mail.log');
    }
  }

  private count(envelope: Envelope, applied: AppliedOutcome, stillQueued: boolean): void {
    const ch = envelope.channel;
    const finished = !stillQueued && applied.envelope.recipients.some((r) => r.state === 'delivered');
    this.counters.add(ch, 'delivered', finished ? 1 : 0, applied.delivered.length);
    this.counters.add(ch, 'returned', applied.failed.length > 0 ? 1 : 0, applied.failed.length);
    if (stillQueued) this.counters.add(ch, 'deferred', applied.deferred.length > 0 ? 1 : 0, applied.deferred.length);
  }

  private forget(id: string): void {
    this.index.remove(id);
    this.fresh.delete(id);
    this.fastFlush.gone(id);
    this.maybeRescanForRoom();
  }
}

/** The message size for mail.log, when the envelope does not carry it (SIZE= is optional). */
function withSize(envelope: Envelope, size: number): Envelope {
  return envelope.mailParams.size ? envelope : { ...envelope, mailParams: { ...envelope.mailParams, size } };
}

function withHost(status: string, host: string | null): string {
  return host ? `${status} (${host})` : status;
}

/** mail.log's tls= token for a recipient whose status came over TLS. */
function tlsOf(r: { tls?: string | null }): { tls?: string } {
  return r.tls ? { tls: r.tls } : {};
}

/** Runs `fn` over the items with at most `limit` at a time. */
export async function forEachLimited<T>(items: Iterable<T>, limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const list = [...items];
  let next = 0;
  const worker = async () => {
    while (next < list.length) {
      const item = list[next++]!;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), list.length) }, worker));
}
