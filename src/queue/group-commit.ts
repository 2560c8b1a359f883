// Group commit of directory fsyncs. A rename is durable only once its directory is fsynced; when
// many messages are committed at once, each waiter joins the next fsync round of its directory
// instead of paying for its own: while one round runs, new requests queue up and share the next.
// Directory handles stay open between rounds (one open/close saved per round).
import { open, type FileHandle } from 'node:fs/promises';

interface DirState {
  running: boolean;
  waiting: Array<{ resolve: () => void; reject: (err: unknown) => void }>;
  handle: FileHandle | null;
  stale?: boolean;
}

export class DirectorySyncer {
  private readonly dirs = new Map<string, DirState>();
  private closed = false;
  /** fsync rounds run so far (for the benchmark and tests). */
  rounds = 0;

  /** Resolves once a directory fsync that started after this call has completed. */
  sync(dir: string): Promise<void> {
    let state = this.dirs.get(dir);
    if (!state) {
      state = { running: false, waiting: [], handle: null };
      this.dirs.set(dir, state);
    }
    const s = state;
    const done = new Promise<void>((resolve, reject) => s.waiting.push({ resolve, reject }));
    if (!s.running) void this.runRounds(dir, s);
    return done;
  }

  private async runRounds(dir: string, s: DirState): Promise<void> {
    s.running = true;
    while (s.waiting.length > 0) {
      const batch = s.waiting;
      s.waiting = [];
      this.rounds++;
      try {
        if (s.stale) {
          s.stale = false;
          await this.dropHandle(s);
        }
        if (!s.handle || this.closed) s.handle = await open(dir, 'r');
        await s.handle.sync();
        if (this.closed) await this.dropHandle(s);
        for (const w of batch) w.resolve();
      } catch (err) {
        await this.dropHandle(s); // the directory may have been replaced: reopen next time
        for (const w of batch) w.reject(err);
      }
    }
    s.running = false;
  }

  private async dropHandle(s: DirState): Promise<void> {
    const h = s.handle;
    s.handle = null;
    if (h) await h.close().catch(() => {});
  }

  /** The directory was replaced: reopen it at the next round. */
  forget(dir: string): void {
    const s = this.dirs.get(dir);
    if (s && !s.running) void this.dropHandle(s);
    else if (s) s.stale = true;
  }

  /** Closes the cached directory handles (rounds still running finish first). */
  async close(): Promise<void> {
    this.closed = true;
    for (const s of this.dirs.values()) if (!s.running) await this.dropHandle(s);
  }
}
