// The job controller's scheduler (Postfix's qmgr_active.c, the draining side, with Messaging
// Server's job limits): master channel jobs started for the ready messages within each pool's
// JOB_LIMIT and each channel's maxjobs (pool-policy.ts), channels taken in turn; a job pulls
// batches of its channel until none is left, its life limits end it, or another channel of a full
// pool waits; a job that has delivered a batch lingers briefly for a fuller one; a timer wakes the
// scheduler when the next waiting message is due. What a batch is handed to is a callback.
import type { Channel, InstanceConfig, PoolConfig } from '../config/types.js';
import type { Logger } from '../common/logger.js';
import { channelProgram } from '../channels/index.js';
import { channelByName, jobLimits, poolFor, poolsOf } from './config.js';
import type { Batch } from './deliver.js';
import type { ReadyMessages } from './intake.js';
import { batchSize, jobsToStart } from './pool-policy.js';
import type { JobStatus } from './protocol.js';

/**
 * A job that has delivered a batch waits up to this long for a full batch (threaddepth messages)
 * when fewer are ready, instead of sending the few at once: while mail arrives, it goes out in
 * batches of threaddepth rather than one or two at a time, each batch costing a round trip to
 * the job's thread. A job's first batch never waits.
 */
const LINGER_MS = 20;
/** A batch running longer than this waits on slow hosts: it no longer holds back new mail (pool-policy.ts slowJobs). */
const SLOW_BATCH_MS = 250;

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

export interface SchedulerOptions {
  ready: ReadyMessages;
  config: () => InstanceConfig;
  /** Delivers a batch and settles its outcomes; resolves with the job's thread when known. */
  deliver(batch: Batch): Promise<number | null>;
  /** A job ended: messages may have left the index. */
  onJobEnd(): void;
  logger: Logger;
  now(): number;
}

export class Scheduler {
  private readonly jobs = new Map<number, RunningJob>();
  /** Jobs lingering for a fuller batch, per channel (see LINGER_MS). */
  private readonly lingering = new Map<string, Set<{ size: number; wake: () => void }>>();
  /** Channels stopped with `imsimta qm stop` (queue/.stopped-channels). */
  private stopped = new Set<string>();
  /** Channels whose messages wait for a problem in imta.cnf, warned about once per configuration. */
  private readonly warnedChannels = new Set<string>();
  private jobSeq = 0;
  private rotation = 0;
  private stopping = false;
  private wakeTimer: NodeJS.Timeout | null = null;
  private wakeAt = 0;
  /** Batches handed to jobs and the messages in them, since start (status: the mean batch size). */
  private readonly handed = { batches: 0, messages: 0 };

  constructor(private readonly opts: SchedulerOptions) {}

  /** Starts the jobs that the ready messages, the channels' limits and the pools' room allow. */
  kick(): void {
    if (this.stopping) return;
    const { ready, config } = this.opts;
    const now = this.opts.now();
    ready.promoteDue(now);
    for (const [name, set] of this.lingering) {
      const count = ready.channelStats(name).ready;
      for (const l of set) if (count >= l.size) l.wake();
    }
    const channels = ready.channels();
    const start = channels.length ? this.rotation++ % channels.length : 0;
    for (let k = 0; k < channels.length; k++) {
      const name = channels[(start + k) % channels.length]!;
      const channel = this.schedulable(name);
      if (!channel) continue;
      const stats = ready.channelStats(name);
      if (stats.ready === 0) continue;
      const pool = poolFor(config(), channel);
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

  /** The channels stopped now (queue/.stopped-channels). */
  setStopped(channels: Iterable<string>): void {
    this.stopped = new Set(channels);
  }

  isStopped(channel: string): boolean {
    return this.stopped.has(channel);
  }

  /** A new configuration: channels it still lacks are warned about again. */
  configure(): void {
    this.warnedChannels.clear();
  }

  /** Starts no more jobs; resolves when the batches in hand are finished. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const set of this.lingering.values()) for (const l of set) l.wake();
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    await Promise.all([...this.jobs.values()].map((j) => j.done));
  }

  // ------------------------------------------------------------------ status

  jobsOfChannel(channel: string): number {
    return this.runningJobs((j) => j.channel === channel);
  }

  jobsOfPool(pool: string): number {
    return this.runningJobs((j) => j.pool === pool);
  }

  jobRows(): JobStatus[] {
    return [...this.jobs.values()].map((j) => ({
      job: j.id,
      pid: process.pid,
      thread: j.threadId,
      channel: j.channel,
      pool: j.pool,
      started: new Date(j.started).toISOString(),
      batches: j.batches,
      messages: j.messages,
      in_hand: j.current,
    }));
  }

  handedSoFar(): { batches: number; messages: number } {
    return { ...this.handed };
  }

  stoppedChannels(): string[] {
    return [...this.stopped].sort();
  }

  // ---------------------------------------------------------------- internals

  private schedulable(name: string): Channel | null {
    if (this.stopped.has(name)) return null;
    const channel = channelByName(this.opts.config(), name);
    const problem = !channel ? 'is not in imta.cnf' : !channelProgram(channel) ? 'has no delivery program' : null;
    if (problem) {
      if (!this.warnedChannels.has(name)) {
        this.warnedChannels.add(name);
        this.opts.logger.warn({ channel: name }, `queued messages wait: channel ${name} ${problem}`);
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
    const next = this.opts.ready.nextDueMs();
    if (next === null || this.stopping) return;
    if (this.wakeTimer && this.wakeAt <= next) return;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeAt = next;
    // Timers cannot wait longer than ~24.8 days; wake up earlier and look again.
    const delay = Math.min(Math.max(0, next - this.opts.now()) + 5, 2 ** 31 - 1);
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = null;
      this.kick();
    }, delay);
  }

  private startJob(channel: Channel, pool: PoolConfig): void {
    const job: RunningJob = { id: ++this.jobSeq, channel: channel.name, pool: pool.name, started: this.opts.now(), batches: 0, messages: 0, current: 0, batchStarted: null, threadId: null, done: Promise.resolve() };
    this.jobs.set(job.id, job);
    job.done = this.runJob(job)
      .catch((err) => this.opts.logger.error({ err, channel: job.channel }, 'job failed'))
      .finally(() => {
        this.jobs.delete(job.id);
        this.opts.onJobEnd();
        this.kick();
      });
  }

  /** A job pulls batches of its channel's ready messages until none is left (or its life limits or fairness end it). */
  private async runJob(job: RunningJob): Promise<void> {
    const { ready } = this.opts;
    await Promise.resolve(); // let kick() finish starting the other jobs first
    for (;;) {
      if (this.stopping || this.stopped.has(job.channel)) return;
      const config = this.opts.config();
      const channel = channelByName(config, job.channel);
      if (!channel) return;
      const limits = jobLimits(config, job.channel);
      if (limits.maxBatches > 0 && job.batches >= limits.maxBatches) return;
      ready.promoteDue(this.opts.now());
      const size = batchSize(channel.threadDepth);
      if (job.batches > 0 && ready.channelStats(job.channel).ready < size) {
        await this.linger(job.channel, size);
        if (this.stopping || this.stopped.has(job.channel)) return;
        ready.promoteDue(this.opts.now());
      }
      const taken = ready.take(job.channel, size);
      if (taken.length === 0) return;
      job.current = taken.length;
      job.batchStarted = this.opts.now();
      // Once the batch counts as slow, messages that arrived meanwhile may get a job of their own.
      const slow = setTimeout(() => this.kick(), SLOW_BATCH_MS);
      try {
        const thread = await this.opts.deliver({ channel, pool: job.pool, messages: taken, timeoutMs: limits.timeoutMs });
        if (thread !== null) job.threadId = thread;
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
          set.delete(waiter);
          if (set.size === 0 && this.lingering.get(channel) === set) this.lingering.delete(channel);
          resolve();
        },
      };
      const timer = setTimeout(() => waiter.wake(), LINGER_MS);
      set.add(waiter);
    });
  }

  /** Another channel of the job's pool has ready messages, no job, and the pool is full. */
  private othersWaiting(job: RunningJob): boolean {
    const config = this.opts.config();
    const pool = poolsOf(config).find((p) => p.name === job.pool);
    if (!pool || this.runningJobs((j) => j.pool === job.pool) < pool.jobLimit) return false;
    for (const name of this.opts.ready.channels()) {
      if (name === job.channel || this.opts.ready.channelStats(name).ready === 0) continue;
      const c = this.schedulable(name);
      if (c && poolFor(config, c).name === job.pool && this.runningJobs((j) => j.channel === name) === 0) return true;
    }
    return false;
  }
}
