// Makes removals of delivered messages durable in the background (QueueStore.retire): the
// directories of the removals of the last few milliseconds get one fsync each. Delivery never
// waits for it; a crash before the fsync can only bring a delivered message back for one more
// delivery.
import { dirname } from 'node:path';
import { DirectorySyncer } from './group-commit.js';

export class DelayedDirectorySync {
  private readonly dirs = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> = Promise.resolve();
  private readonly syncer = new DirectorySyncer();

  constructor(
    private readonly delayMs: number,
    private readonly onError: (dir: string, err: unknown) => void = () => {},
  ) {}

  /** fsync rounds run so far. */
  get rounds(): number {
    return this.syncer.rounds;
  }

  /** A file was removed from `dir`. */
  note(dir: string): void {
    this.dirs.add(dir);
    if (!this.timer) {
      this.timer = setTimeout(() => void this.syncNoted(), this.delayMs);
      this.timer.unref();
    }
  }

  /** The same for a removed file's path. */
  noteFile(path: string): void {
    this.note(dirname(path));
  }

  /** fsyncs the directories noted so far; resolves when done. */
  syncNoted(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const dirs = [...this.dirs];
    this.dirs.clear();
    const round = Promise.all(dirs.map((d) => this.syncer.sync(d).catch((err: unknown) => this.onError(d, err)))).then(() => {});
    this.running = Promise.all([this.running, round]).then(() => {});
    return this.running;
  }

  async close(): Promise<void> {
    await this.syncNoted();
    await this.syncer.close();
  }
}
