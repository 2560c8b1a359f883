// Where master channel jobs run: one piscina pool of worker threads per [POOL=] of
// job_controller.cnf (at most JOB_LIMIT threads), or in this thread (tests, tools).
import { Piscina } from 'piscina';
import { fileURLToPath } from 'node:url';
import type { PoolConfig } from '../config/types.js';
import type { Logger } from '../common/logger.js';
import { JobHost, type JobTask, type JobTaskResult } from './job-host.js';

export interface JobRunner {
  /** Runs one request of a job; rejects when it fails, crashes or passes `timeoutMs` (the thread is then ended). */
  run(pool: string, task: JobTask, timeoutMs: number): Promise<JobTaskResult>;
  /** Creates or replaces the pools (a pool whose limit changed is replaced; its running requests finish). */
  configure(pools: PoolConfig[]): void;
  /** Worker threads alive now, per pool. */
  threads(): Array<{ pool: string; threadId: number }>;
  close(): Promise<void>;
}

export class JobTimeoutError extends Error {}

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));

export class PiscinaRunner implements JobRunner {
  private readonly pools = new Map<string, { name: string; limit: number; piscina: Piscina }>();

  constructor(private readonly opts: { logDir: string; logger: Logger; idleTimeoutMs?: number }) {}

  configure(pools: PoolConfig[]): void {
    const wanted = new Map(pools.map((p) => [p.name.toLowerCase(), p]));
    for (const [name, entry] of this.pools) {
      const p = wanted.get(name);
      if (!p || p.jobLimit !== entry.limit) {
        this.pools.delete(name);
        void entry.piscina.close().catch(() => {});
      }
    }
    for (const [name, p] of wanted) {
      if (this.pools.has(name)) continue;
      const piscina = new Piscina({
        filename: WORKER,
        minThreads: 0,
        maxThreads: Math.max(1, p.jobLimit),
        idleTimeout: this.opts.idleTimeoutMs ?? 60_000,
        concurrentTasksPerWorker: 1,
        // Idle workers must keep their event loop running: reused connections need their timers and sockets.
        atomics: 'disabled',
        workerData: { logDir: this.opts.logDir },
      });
      piscina.on('error', (err: Error) => this.opts.logger.error({ err, pool: p.name }, 'job worker thread error'));
      this.pools.set(name, { name: p.name, limit: p.jobLimit, piscina });
    }
  }

  async run(pool: string, task: JobTask, timeoutMs: number): Promise<JobTaskResult> {
    const entry = this.pools.get(pool.toLowerCase());
    if (!entry) throw new Error(`no pool ${pool}`);
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    try {
      return (await entry.piscina.run(task, { signal: abort.signal })) as JobTaskResult;
    } catch (err) {
      if (abort.signal.aborted) throw new JobTimeoutError(`the job did not finish within ${Math.round(timeoutMs / 1000)} s and was ended`);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  threads(): Array<{ pool: string; threadId: number }> {
    const out: Array<{ pool: string; threadId: number }> = [];
    for (const { name, piscina } of this.pools.values()) for (const w of piscina.threads) out.push({ pool: name, threadId: w.threadId });
    return out;
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.piscina.destroy().catch(() => {})));
  }
}

/** Runs jobs in the calling thread (a hung job cannot be ended here: the timeout only stops waiting). */
export class InlineRunner implements JobRunner {
  private readonly host: JobHost;
  constructor(logger: Logger) {
    this.host = new JobHost(logger, 0);
  }
  configure(): void {}
  async run(_pool: string, task: JobTask, timeoutMs: number): Promise<JobTaskResult> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new JobTimeoutError(`the job did not finish within ${Math.round(timeoutMs / 1000)} s`)), timeoutMs);
    });
    try {
      return await Promise.race([this.host.run(task), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
  threads(): Array<{ pool: string; threadId: number }> {
    return [];
  }
  close(): Promise<void> {
    return this.host.closeAll();
  }
}
