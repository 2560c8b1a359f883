// A message held while the end-of-DATA checks read it (DKIM/DMARC/ARC verification, milters),
// before it is written into the queue once, with their changes, by an enqueue transaction: in
// memory up to `memoryLimit`, then in one temporary file in queue/.tmp named like the enqueue
// temporaries (`<id>-spool.<pid>.<n>`), so that the start-up sweep removes it when its writer
// died. Not a queue file: never renamed into a channel, never fsynced (the 250 waits for the
// transaction's own fsync). Read back from any offset as often as needed; dispose() removes it.
import { closeSync, openSync, read as readCb } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { promisify } from 'node:util';
import { writeFully } from '../common/write-fully.js';
import { QueueWriteError } from './errors.js';

const readAsync = promisify(readCb);

/** Chunks read back at most this large (a milter body chunk is at most 64 KiB). */
export const SPOOL_READ_CHUNK = 64 * 1024;

export interface SpoolEnv {
  /** The temporary file's path, should the message outgrow memory. */
  tmpPath: string;
  /** Makes queue/.tmp exist. */
  ensureDir(): Promise<void>;
  memoryLimit: number;
}

export class MessageSpool {
  private chunks: Buffer[] = [];
  private memoryBytes = 0;
  private total = 0;
  private fd: number | null = null;
  private chain: Promise<void> = Promise.resolve();
  private failure: QueueWriteError | null = null;
  private disposed = false;
  /** Outgrew memory: every byte goes to the temporary file (opened by the first write past the limit). */
  private spilled = false;

  constructor(private readonly env: SpoolEnv) {}

  /** Bytes written so far. */
  get size(): number {
    return this.total;
  }

  /** Whether the message went to the temporary file. */
  get onDisk(): boolean {
    return this.spilled;
  }

  /** Appends a chunk; writes are applied in call order. A failure is kept and thrown by every later call and by finish(). */
  write(chunk: Buffer): Promise<void> {
    if (this.disposed) return Promise.reject(new Error('spool: write() after dispose()'));
    this.total += chunk.length;
    if (!this.spilled && this.memoryBytes + chunk.length <= this.env.memoryLimit) {
      this.chunks.push(chunk);
      this.memoryBytes += chunk.length;
      return Promise.resolve();
    }
    this.spilled = true;
    const step = this.chain.then(async () => {
      if (this.failure) throw this.failure;
      try {
        if (this.fd === null) {
          await this.env.ensureDir();
          this.fd = openSync(this.env.tmpPath, 'wx+', 0o600);
          const held = this.chunks;
          this.chunks = [];
          this.memoryBytes = 0;
          await writeFully(this.fd, held);
        }
        await writeFully(this.fd, [chunk]);
      } catch (err) {
        this.failure ??= QueueWriteError.from(err, 'cannot spool the message');
        throw this.failure;
      }
    });
    this.chain = step.catch(() => {});
    return step;
  }

  /** Waits for the writes in flight; throws the first write failure. */
  async finish(): Promise<void> {
    await this.chain;
    if (this.failure) throw this.failure;
  }

  /** The first `max` bytes (or all, when shorter). */
  async head(max: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let got = 0;
    for await (const chunk of this.read(0, max)) {
      parts.push(chunk);
      got += chunk.length;
    }
    return Buffer.concat(parts, got);
  }

  /** The bytes from `start` (up to `end`, default the end), in chunks of at most SPOOL_READ_CHUNK. */
  async *read(start = 0, end = Infinity): AsyncGenerator<Buffer> {
    await this.finish();
    const stop = Math.min(end, this.total);
    if (!this.spilled) {
      let offset = 0;
      for (const c of this.chunks) {
        const from = Math.max(start, offset);
        const to = Math.min(stop, offset + c.length);
        for (let p = from; p < to; p += SPOOL_READ_CHUNK) yield c.subarray(p - offset, Math.min(to, p + SPOOL_READ_CHUNK) - offset);
        offset += c.length;
        if (offset >= stop) return;
      }
      return;
    }
    for (let p = start; p < stop; ) {
      if (this.disposed || this.fd === null) throw new Error('spool: read after dispose()');
      const want = Math.min(SPOOL_READ_CHUNK, stop - p);
      const buf = Buffer.allocUnsafe(want);
      const { bytesRead } = await readAsync(this.fd, buf, 0, want, p);
      if (bytesRead === 0) throw new QueueWriteError(`spool: the temporary file ends at ${p} of ${stop} octets`, 'EIO');
      yield buf.subarray(0, bytesRead);
      p += bytesRead;
    }
  }

  /** Drops the message: closes and removes the temporary file. Safe to call more than once. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.chain;
    this.chunks = [];
    if (this.fd !== null) {
      try {
        closeSync(this.fd);
      } catch {
        // already unusable
      }
      this.fd = null;
    }
    if (this.spilled) await unlink(this.env.tmpPath).catch(() => {});
  }
}
