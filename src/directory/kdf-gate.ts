// How many password hashes one process computes at once. node:crypto's async scrypt runs in
// libuv's thread pool (UV_THREADPOOL_SIZE threads, 4 by default), the same pool that serves
// file system calls (queue writes and their fsync, mailbox reads) and dns.lookup. A burst of
// AUTH attempts with no gate would take every thread for ~100 ms per hash and make queue I/O wait
// behind them (bench/kdf-burst.ts: a 1 KiB write + fsync waited 4 s behind 50 hashes with no
// gate, under 0.4 s with this default). The gate keeps threads and cores free and queues the
// rest of the hashes (FIFO, in memory). One gate per process, kept across configuration reloads.
import { availableParallelism } from 'node:os';

/** Half the thread pool and half the cores, at least one: the rest stays free for file I/O and sessions. */
export function defaultKdfConcurrency(env: NodeJS.ProcessEnv = process.env, cores: number = availableParallelism()): number {
  const pool = Number(env.UV_THREADPOOL_SIZE);
  const threads = Number.isInteger(pool) && pool > 0 ? pool : 4;
  return Math.max(1, Math.min(Math.floor(threads / 2), Math.floor(cores / 2)));
}

export class KdfGate {
  private active = 0;
  private readonly queue: Array<() => void> = [];

  constructor(readonly concurrency: number = defaultKdfConcurrency()) {
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`KdfGate concurrency must be a positive integer, not ${concurrency}`);
  }

  /** Hashes being computed now. */
  get running(): number {
    return this.active;
  }

  /** Hashes waiting for a turn. */
  get waiting(): number {
    return this.queue.length;
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.active >= this.concurrency) await new Promise<void>((resolve) => this.queue.push(resolve));
    else this.active++;
    try {
      return await work();
    } finally {
      // Hand the slot straight to the next waiter (active stays the same), else free it.
      const next = this.queue.shift();
      if (next) next();
      else this.active--;
    }
  }
}
