// Follows log/mail.log for the status page's history: each poll reads the whole lines written
// since the last one (at most maxBytesPerPoll), and goes on in the new file when the log was
// rotated (renamed: the rest of the old file is read first) or truncated. The first poll starts
// backfillBytes before the end, so that a restarted watcher shows the last hours again.
import { open, stat, type FileHandle } from 'node:fs/promises';

export interface FollowOptions {
  backfillBytes?: number;
  maxBytesPerPoll?: number;
}

export class MailLogFollower {
  private fh: FileHandle | null = null;
  private ino = -1;
  private offset = 0;
  private carry: Buffer = Buffer.alloc(0);
  private started = false;
  /** The first line after a start in mid-file is a part of a line: dropped. */
  private skipPartial = false;
  private polling: Promise<void> | null = null;
  private readonly backfill: number;
  private readonly maxBytes: number;

  constructor(private readonly path: string, opts: FollowOptions = {}) {
    this.backfill = opts.backfillBytes ?? 8 << 20;
    this.maxBytes = opts.maxBytesPerPoll ?? 16 << 20;
  }

  /** Calls `line` for each new whole line; polls that overlap share one read. */
  poll(line: (text: string) => void): Promise<void> {
    this.polling ??= this.read(line).finally(() => (this.polling = null));
    return this.polling;
  }

  async close(): Promise<void> {
    await this.polling?.catch(() => {});
    await this.fh?.close().catch(() => {});
    this.fh = null;
  }

  private async read(line: (text: string) => void): Promise<void> {
    let budget = this.maxBytes;
    for (let files = 0; files < 2 && budget > 0; files++) {
      if (!this.fh && !(await this.openLog())) return;
      budget -= await this.readToEnd(line, budget);
      if (budget <= 0) return;
      // At the end of what is open: has the name moved on to a new file, or was this one cut short?
      const st = await stat(this.path).catch(() => null);
      if (st?.ino === this.ino && st.size >= this.offset) return;
      if (st?.ino === this.ino) {
        this.offset = 0; // truncated in place (copytruncate)
        this.carry = Buffer.alloc(0);
        continue;
      }
      await this.fh!.close().catch(() => {});
      this.fh = null;
      this.carry = Buffer.alloc(0);
      if (!st) return;
    }
  }

  private async openLog(): Promise<boolean> {
    try {
      this.fh = await open(this.path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    const st = await this.fh.stat();
    this.ino = st.ino;
    this.offset = 0;
    if (!this.started) {
      this.offset = Math.max(0, st.size - this.backfill);
      this.skipPartial = this.offset > 0;
    }
    this.started = true;
    return true;
  }

  /** Reads from the offset to the end (or `budget` bytes); returns the bytes read. */
  private async readToEnd(line: (text: string) => void, budget: number): Promise<number> {
    const block = Buffer.allocUnsafe(1 << 20);
    let total = 0;
    while (total < budget) {
      const { bytesRead } = await this.fh!.read(block, 0, Math.min(block.length, budget - total), this.offset);
      if (bytesRead === 0) break;
      this.offset += bytesRead;
      total += bytesRead;
      const chunk = block.subarray(0, bytesRead);
      const last = chunk.lastIndexOf(0x0a);
      if (last < 0) {
        this.carry = Buffer.concat([this.carry, chunk]);
        continue;
      }
      const text = Buffer.concat([this.carry, chunk.subarray(0, last)]).toString('utf8');
      this.carry = Buffer.from(chunk.subarray(last + 1));
      let start = 0;
      if (this.skipPartial) {
        start = text.indexOf('\n') + 1;
        this.skipPartial = false;
        if (start === 0) continue;
      }
      for (let nl = text.indexOf('\n', start); nl >= 0; nl = text.indexOf('\n', start)) {
        line(text.slice(start, nl));
        start = nl + 1;
      }
      line(text.slice(start));
    }
    return total;
  }
}
