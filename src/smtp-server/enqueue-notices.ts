// "Enqueued" notices to the job controller, batched: one notice is on its way at a time, and the
// files queued meanwhile go together in the next one. Under load that turns one local socket
// connection per message (on both sides) into one per batch; when idle a notice leaves at once.
// Best effort, like notifyEnqueued: a lost notice is made up for by the job controller's scans.
import type { QueueRef } from '../queue/types.js';

/** Most refs in one notice (a notice is one JSON line). */
export const MAX_REFS_PER_NOTICE = 500;

export class EnqueueNotices {
  private pending: QueueRef[] = [];
  private sending: Promise<void> | null = null;

  constructor(private readonly send: (refs: QueueRef[]) => Promise<unknown>) {}

  add(refs: QueueRef[]): void {
    if (refs.length === 0) return;
    this.pending.push(...refs);
    this.sending ??= this.drain();
  }

  /** Resolves once everything added so far has been sent (or has failed to). */
  async flushed(): Promise<void> {
    while (this.sending) await this.sending;
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0, MAX_REFS_PER_NOTICE);
        await this.send(batch).catch(() => {});
      }
    } finally {
      this.sending = null;
    }
  }
}
