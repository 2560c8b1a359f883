// Where master channel jobs run: worker threads per [POOL=] of job_controller.cnf, or in this
// thread (tests, tools). A pool runs up to JOB_LIMIT jobs at once on at most as many threads as
// there are CPUs but one: jobs wait on sockets far more than they compute, and every extra thread
// is an isolate to start, warm up and collect (on a 2-core machine, seven threads for seven jobs
// cost more CPU than the messages they carried in a 3000-message run). Every job of a channel runs
// in the same thread of its pool (each thread is a piscina of one; a channel is given the thread
// with the fewest channels when it first comes), so that the channel's batches share one fan-out:
// one DNS answer per destination, one connection cache and one traffic shaper for the whole channel.
// A job past its time limit stops itself (job-host.ts); a thread whose job does not is ended here.
import { Piscina } from 'piscina';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { PoolConfig } from '../config/types.js';
import type { Logger } from '../common/logger.js';
import { timeLimitText, type JobTask, type JobTaskResult } from './job-host.js';

export interface JobRunner {
  /** Runs one request of a job; rejects when it fails, crashes or passes `timeoutMs` (the thread is then ended). */
  run(pool: string, task: JobTask, timeoutMs: number): Promise<JobTaskResult>;
  /** Creates or replaces the pools (a pool whose limit changed is replaced; its running requests finish). */
  configure(pools: PoolConfig[]): void;
  /**
   * Makes a channel's job in its thread ahead of its first batch (`task` carries no messages):
   * the configuration copied in, the job made. Optional: a runner without it makes jobs on demand.
   */
  prepare?(pool: string, task: JobTask): Promise<void>;
  /** Worker threads alive now, per pool. */
  threads(): Array<{ pool: string; threadId: number }>;
  close(): Promise<void>;
}

class JobTimeoutError extends Error {}

/** A job that passed its time limit gets this much longer to stop by itself before its thread is ended. */
const HARD_TIMEOUT_GRACE_MS = 15_000;

export interface ThreadPlan {
  threads: number;
  jobsPerThread: number;
}

/**
 * CPUs a pool's jobs may take: all but one, which is left to the SMTP server processes and the
 * job controller's own thread. On 2 cores one job thread delivered a 5000-message backlog at
 * 1600 msg/s for 0.45 ms CPU per message, two threads at 700 msg/s for 0.60 ms (bench/relay.ts's
 * drain, docs/BENCHMARKS.md "Relay"): the second thread only added an isolate to warm up and
 * collect, and contention.
 */
export function deliveryCpus(cpus: number): number {
  return Math.max(1, Math.floor(cpus) - 1);
}

/** Threads for a pool of `jobLimit` jobs: one per CPU at most, the jobs spread over them. */
export function threadPlan(jobLimit: number, cpus: number): ThreadPlan {
  const limit = Math.max(1, Math.floor(jobLimit));
  const threads = Math.min(limit, Math.max(1, Math.floor(cpus)));
  return { threads, jobsPerThread: Math.ceil(limit / threads) };
}

interface BalancedWorker {
  currentUsage: number;
  isRunningAbortableTask: boolean;
  terminating: boolean;
  destroyed: boolean;
}

/**
 * Piscina's balancer keeps a thread with one abortable task for that task alone; ours shares
 * threads between jobs (every job is abortable), least busy first, up to `jobsPerThread`.
 */
export function sharedThreadBalancer(jobsPerThread: number) {
  return <W extends BalancedWorker>(_task: unknown, workers: W[]): W | null => {
    let best: W | null = null;
    let bestUsage = Infinity;
    for (const w of workers) {
      if (w.terminating || w.destroyed) continue;
      const usage = w.isRunningAbortableTask ? 1 : w.currentUsage;
      if (usage < jobsPerThread && usage < bestUsage) {
        best = w;
        bestUsage = usage;
      }
    }
    return best;
  };
}

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));

/** The thread of a pool a channel's jobs run in: the one with the fewest channels so far (pure). */
export function threadForChannel(assigned: ReadonlyMap<string, number>, channel: string, threads: number): number {
  const known = assigned.get(channel);
  if (known !== undefined && known < threads) return known;
  const load = new Array<number>(Math.max(1, threads)).fill(0);
  for (const [name, t] of assigned) if (name !== channel && t < load.length) load[t]!++;
  let best = 0;
  for (let t = 1; t < load.length; t++) if (load[t]! < load[best]!) best = t;
  return best;
}

interface PoolThreads {
  name: string;
  limit: number;
  /** One piscina of one thread per CPU the pool may use. */
  threads: Piscina[];
  /** Channel (lower case) → its thread. */
  channels: Map<string, number>;
}

export class PiscinaRunner implements JobRunner {
  private readonly pools = new Map<string, PoolThreads>();

  constructor(private readonly opts: { logDir: string; logger: Logger; idleTimeoutMs?: number; cpus?: number }) {}

  configure(pools: PoolConfig[]): void {
    const wanted = new Map(pools.map((p) => [p.name.toLowerCase(), p]));
    for (const [name, entry] of this.pools) {
      const p = wanted.get(name);
      if (p?.jobLimit !== entry.limit) {
        this.pools.delete(name);
        for (const t of entry.threads) void t.close().catch(() => {});
      }
    }
    for (const [name, p] of wanted) {
      if (this.pools.has(name)) continue;
      const plan = threadPlan(p.jobLimit, this.opts.cpus ?? deliveryCpus(availableParallelism()));
      const threads = Array.from({ length: plan.threads }, (_, i) => {
        const piscina = new Piscina({
          filename: WORKER,
          // The first thread stays up: starting one (an isolate, the delivery modules) took about a
          // quarter of a second before the first message after an idle minute could go.
          minThreads: i === 0 ? 1 : 0,
          maxThreads: 1,
          idleTimeout: this.opts.idleTimeoutMs ?? 60_000,
          // A channel's jobs all run here, as many at once as the pool allows.
          concurrentTasksPerWorker: Math.max(1, p.jobLimit),
          loadBalancer: sharedThreadBalancer(Math.max(1, p.jobLimit)),
          // Idle workers must keep their event loop running: reused connections need their timers and sockets.
          atomics: 'disabled',
          workerData: { logDir: this.opts.logDir },
        });
        piscina.on('error', (err: Error) => this.opts.logger.error({ err, pool: p.name }, 'job worker thread error'));
        return piscina;
      });
      this.pools.set(name, { name: p.name, limit: p.jobLimit, threads, channels: new Map() });
    }
  }

  async run(pool: string, task: JobTask, timeoutMs: number): Promise<JobTaskResult> {
    const entry = this.pools.get(pool.toLowerCase());
    if (!entry) throw new Error(`no pool ${pool}`);
    const channel = task.channel.toLowerCase();
    const index = threadForChannel(entry.channels, channel, entry.threads.length);
    entry.channels.set(channel, index);
    const piscina = entry.threads[index]!;
    const abort = new AbortController();
    // The job stops itself at timeoutMs; ending its thread (and the other jobs on it) is the last resort.
    const timer = setTimeout(() => abort.abort(), timeoutMs + HARD_TIMEOUT_GRACE_MS);
    try {
      // Without the configuration first (a thread keeps it per generation); again with it when the thread asks.
      const lean = (await piscina.run({ ...task, config: undefined, timeoutMs }, { signal: abort.signal })) as JobTaskResult;
      if (!lean.needConfig) return lean;
      return (await piscina.run({ ...task, timeoutMs }, { signal: abort.signal })) as JobTaskResult;
    } catch (err) {
      if (abort.signal.aborted) throw new JobTimeoutError(timeLimitText(timeoutMs));
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  async prepare(pool: string, task: JobTask): Promise<void> {
    await this.run(pool, { ...task, items: [] }, 60_000);
  }

  threads(): Array<{ pool: string; threadId: number }> {
    const out: Array<{ pool: string; threadId: number }> = [];
    for (const { name, threads } of this.pools.values()) for (const piscina of threads) for (const w of piscina.threads) out.push({ pool: name, threadId: w.threadId });
    return out;
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.flatMap((p) => p.threads.map((t) => t.destroy().catch(() => {}))));
  }
}
