// "Enqueued" notices to the job controller, batched: one notice is on its way at a time, at most
// one per NOTICE_INTERVAL_MS, and the files queued meanwhile go together in the next one. Under
// load that turns a notice (and its answer) per message into one per batch; when idle a notice
// leaves at once. Best effort, like notifyEnqueued: a lost notice is made up for by the job
// controller's scans. Each file goes with its envelope and size, so that the job controller admits
// it without reading it back.
import type { NoticedFile } from '../queue/types.js';

/** Most refs in one notice (a notice is one JSON line). */
export const MAX_REFS_PER_NOTICE = 500;

/**
 * A notice leaves at most this often: under load the files of the next few milliseconds go
 * together (each notice wakes the job controller and then this process for the answer, which
 * cost about as much as the rest of a message's accept path); when idle a notice leaves at once.
 */
export const NOTICE_INTERVAL_MS = 10;

export interface EnqueueNoticesOptions {
  intervalMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export class EnqueueNotices {
  private pending: NoticedFile[] = [];
  private sending: Promise<void> | null = null;
  private lastSentAt = -Infinity;
  private readonly intervalMs: number;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(
    private readonly send: (refs: NoticedFile[]) => Promise<unknown>,
    opts: EnqueueNoticesOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? NOTICE_INTERVAL_MS;
    this.now = opts.now ?? (() => performance.now());
    this.sleep = opts.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms).unref()));
  }

  add(refs: NoticedFile[]): void {
    if (refs.length === 0) return;
    this.pending.push(...refs);
    this.sending ??= this.drain();
  }

  /** Resolves once everything added so far has been sent (or has failed to). */
  async allSent(): Promise<void> {
    while (this.sending) await this.sending;
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const wait = this.lastSentAt + this.intervalMs - this.now();
        if (wait > 0) await this.sleep(wait);
        const batch = this.pending.splice(0, MAX_REFS_PER_NOTICE);
        this.lastSentAt = this.now();
        await this.send(batch).catch(() => {});
      }
    } finally {
      this.sending = null;
    }
  }
}
