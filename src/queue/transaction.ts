// One streamed enqueue: the same message bytes go to one temporary file per destination channel.
// Small messages stay in memory until commit() and are written with their envelope in one call;
// larger ones are streamed and the body length in the envelope is filled in at commit.
// commit(): write → fsync each file → rename into place → fsync the directories (shared rounds).
// A file may start as a spare (spare-files.ts): overwritten, then cut to its new length.
// A file may carry a prefix (a DKIM-Signature, src/dkim/) computed from the whole message: in a
// buffered message it is written with the rest at commit; a streamed message waits in memory for
// the prefix's length (the end of its header block), the room is reserved in front of the message
// and filled in at commit, like the body length.
// Nothing is renamed into a channel queue that is not whole: every write is carried to its end
// (write-fully.ts: a filling disk makes write(2) short without an error), and each file's length
// is checked against its envelope before the rename.
//
// Only the waits for the disk (fdatasync, the directory fsync, a new file's creation, large
// writes) go through libuv's thread pool. The rest (open of a spare, a small write into the page
// cache, truncate, close, rename) are quick system calls made on the caller's thread: on this
// kind of machine each trip through the pool costs more CPU than the call itself.
import { closeSync, fdatasync, fstatSync, ftruncateSync, open as openCb, openSync, renameSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { Logger } from '../common/logger.js';
import type { CommittedFile, Envelope, MessagePrefix } from './types.js';
import { encodeEnvelope, formatBodyLength, type EncodedEnvelope } from './envelope-format.js';
import { QueueWriteError } from './errors.js';
import { writeFully, writeFullySync } from '../common/write-fully.js';

const openAsync = promisify(openCb);
const fdatasyncAsync = promisify(fdatasync);

export interface EnqueueTransaction {
  write(chunk: Buffer): Promise<void>;
  /** Resolves once every file is durable in its channel directory. */
  commit(): Promise<CommittedFile[]>;
  /** Drops the message: removes the temporary files. */
  abort(): Promise<void>;
  /** Message bytes written so far. */
  readonly bytes: number;
}

export interface PlannedFile {
  envelope: Envelope;
  tmpPath: string;
  /** The channel (sub)directory it goes to, and its final path there. */
  dir: string;
  path: string;
  /** Fields put in front of the message in this file only (one prefix may serve several files). */
  prefix: MessagePrefix | null;
}

export interface TransactionEnv {
  ensureDir(dir: string): Promise<void>;
  /** Forget that a directory exists (someone removed it): the next ensureDir() recreates it. */
  forgetDir(dir: string): void;
  syncDir(dir: string): Promise<void>;
  /** Renames a spare queue file to the temporary path (false: there is none, create one). */
  claimSpare(tmpPath: string): boolean;
  tmpDir: string;
  logger?: Logger;
}

/** Bodies up to this size are kept in memory and written together with the envelope. */
const BUFFER_LIMIT = 64 * 1024;
/** A streamed message waits in memory this long at most for its prefixes' length (its header block). */
const PREFIX_WAIT_LIMIT = 512 * 1024;
/** Writes up to this size go straight into the page cache on the caller's thread. */
const SYNC_WRITE_LIMIT = BUFFER_LIMIT + 16 * 1024;

type State = 'open' | 'committing' | 'committed' | 'failed' | 'aborted';

interface OpenFile {
  plan: PlannedFile;
  header: EncodedEnvelope;
  /** The open temporary file. */
  fd: number | null;
  renamed: boolean;
  /** Opened over a spare: its old length must be cut at commit. */
  reused: boolean;
  /** Bytes of the prefix in front of the message (reserved when streamed). */
  prefixLength: number;
  /** What openAll() writes there: the prefix, or spaces holding its room until commit. */
  prefixBytes: Buffer;
}

const EMPTY = Buffer.alloc(0);

export class EnqueueTransactionImpl implements EnqueueTransaction {
  private state: State = 'open';
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private opened: OpenFile[] | null = null;
  /** A write went over BUFFER_LIMIT: the files are open or being opened. */
  private streaming = false;
  private chain: Promise<void> = Promise.resolve();
  private failure: QueueWriteError | null = null;
  private total = 0;
  /** The distinct prefixes of the files: each sees the message once. */
  private readonly prefixes: MessagePrefix[];

  constructor(
    private readonly files: PlannedFile[],
    private readonly env: TransactionEnv,
  ) {
    this.prefixes = [...new Set(files.map((f) => f.prefix).filter((p): p is MessagePrefix => p !== null))];
  }

  get bytes(): number {
    return this.total;
  }

  write(chunk: Buffer): Promise<void> {
    if (this.state !== 'open') return Promise.reject(this.failure ?? new Error(`queue: write() after ${this.state}`));
    this.total += chunk.length;
    for (const p of this.prefixes) p.update(chunk);
    if (!this.streaming && this.keepBuffering(chunk.length)) {
      this.buffered.push(chunk);
      this.bufferedBytes += chunk.length;
      return Promise.resolve();
    }
    // From here on every write goes through the chain, also one that would still fit in memory
    // and comes before the files are open (several writes in one turn of the event loop).
    this.streaming = true;
    // Writes are applied in call order even when the caller does not await each one.
    const step = this.chain.then(async () => {
      if (this.failure) throw this.failure;
      try {
        if (!this.opened) await this.openAll();
        await Promise.all(this.opened!.map((f) => writeFully(f.fd!, [chunk])));
      } catch (err) {
        throw await this.fail(err, 'cannot write the queue file');
      }
    });
    this.chain = step.catch(() => {});
    return step;
  }

  /** Small messages stay in memory; a streamed one too until its prefixes know their length. */
  private keepBuffering(more: number): boolean {
    const bytes = this.bufferedBytes + more;
    return bytes <= BUFFER_LIMIT || (bytes <= PREFIX_WAIT_LIMIT && this.prefixes.some((p) => p.length === null));
  }

  /** enqueue(): the whole body is in memory already; no need to stream it. */
  appendWhole(body: Buffer): void {
    this.total += body.length;
    for (const p of this.prefixes) p.update(body);
    this.buffered.push(body);
    this.bufferedBytes += body.length;
  }

  async commit(): Promise<CommittedFile[]> {
    if (this.state !== 'open') throw this.failure ?? new Error(`queue: commit() after ${this.state}`);
    this.state = 'committing';
    await this.chain;
    if (this.failure) throw this.failure;
    try {
      let made: Map<MessagePrefix, Buffer>;
      try {
        made = new Map(this.prefixes.map((p) => [p, p.finish()]));
        // Streamed: the room is reserved; a prefix of another length would overwrite the message.
        for (const f of this.opened ?? []) {
          const length = f.plan.prefix ? made.get(f.plan.prefix)!.length : 0;
          if (length !== f.prefixLength) throw new Error(`${length} bytes made for ${f.prefixLength} reserved`);
        }
      } catch (err) {
        throw await this.fail(err, 'cannot sign the message');
      }
      if (!this.opened) {
        await this.openAll(made);
      } else {
        // streamed: fill in the prefixes and the body lengths reserved in the envelopes
        for (const f of this.opened) {
          const prefix = f.plan.prefix ? made.get(f.plan.prefix)! : null;
          if (prefix && prefix.length > 0) writeFullySync(f.fd!, [prefix], f.header.header.length);
          writeFullySync(f.fd!, [formatBodyLength(f.prefixLength + this.total)], f.header.bodyLengthOffset);
        }
      }
      const files = this.opened!;
      // A spare may be longer than this message.
      for (const f of files) if (f.reused) ftruncateSync(f.fd!, f.header.header.length + f.prefixLength + this.total);
      for (const f of files) checkLength(f.fd!, f.header.header.length + f.prefixLength + this.total);
      // data, size and block map; the name is made durable by the directory fsync
      await Promise.all(files.map((f) => fdatasyncAsync(f.fd!)));
      for (const f of files) {
        const fd = f.fd!;
        f.fd = null;
        closeSync(fd);
      }
      for (const f of files) {
        await this.retryIfDirGone(f.plan.dir, async () => renameSync(f.plan.tmpPath, f.plan.path));
        f.renamed = true;
      }
      await Promise.all([...new Set(files.map((f) => f.plan.dir))].map((d) => this.env.syncDir(d)));
      this.state = 'committed';
      return files.map((f) => ({ id: f.plan.envelope.id, channel: f.plan.envelope.channel, path: f.plan.path, envelope: f.plan.envelope, size: f.prefixLength + this.total }));
    } catch (err) {
      throw await this.fail(err, 'cannot store the message in the queue');
    }
  }

  async abort(): Promise<void> {
    if (this.state === 'committed' || this.state === 'aborted') return;
    if (this.state === 'failed') return; // fail() cleaned up already
    this.state = 'aborted';
    await this.chain;
    await this.cleanUp();
  }

  /**
   * Creates the temporary files and writes envelope, prefix + what is buffered. With the prefixes
   * made (at commit: the whole message is buffered) the envelope is final; without, the prefixes'
   * room is reserved and they and the length are filled in at commit.
   */
  private async openAll(made?: Map<MessagePrefix, Buffer>): Promise<void> {
    const buffered = this.buffered;
    const bytes = this.bufferedBytes;
    this.buffered = [];
    this.bufferedBytes = 0;
    // Streaming starts now: a prefix that still cannot tell its length is given up.
    if (!made) for (const p of this.prefixes) if (p.length === null) p.giveUp();
    const opened: OpenFile[] = this.files.map((plan) => {
      const prefix = plan.prefix ? (made ? made.get(plan.prefix)! : Buffer.alloc(plan.prefix.length ?? 0, 0x20)) : Buffer.alloc(0);
      return { plan, header: encodeEnvelope(plan.envelope, made ? prefix.length + bytes : 0), fd: null, renamed: false, reused: false, prefixLength: prefix.length, prefixBytes: prefix };
    });
    this.opened = opened;
    await Promise.all([this.env.ensureDir(this.env.tmpDir), ...[...new Set(this.files.map((f) => f.dir))].map((d) => this.env.ensureDir(d))]);
    await Promise.all(
      opened.map(async (f) => {
        if (this.env.claimSpare(f.plan.tmpPath)) {
          try {
            f.fd = openSync(f.plan.tmpPath, 'r+');
            f.reused = true;
          } catch {
            // gone again (a sweep of queue/.tmp took it): create a new file instead
          }
        }
        // Creating a file can wait on the disk (inode and block allocation): off the caller's thread.
        f.fd ??= await this.retryIfDirGone(this.env.tmpDir, () => openAsync(f.plan.tmpPath, 'wx', 0o600));
        const chunks = [f.header.header, f.prefixBytes, ...buffered];
        f.prefixBytes = EMPTY;
        if (f.header.header.length + f.prefixLength + bytes <= SYNC_WRITE_LIMIT) writeFullySync(f.fd, chunks);
        else await writeFully(f.fd, chunks);
      }),
    );
  }

  /** ENOENT on a directory believed to exist: recreate it once and try again. */
  private async retryIfDirGone<T>(dir: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.env.forgetDir(dir);
      await this.env.ensureDir(dir);
      return fn();
    }
  }

  /** Records the first failure, removes every file this transaction made, returns the error to throw. */
  private async fail(err: unknown, what: string): Promise<QueueWriteError> {
    if (!this.failure) {
      this.failure = QueueWriteError.from(err, what);
      this.state = 'failed';
      this.env.logger?.error({ code: this.failure.code, err: this.failure.message }, 'queue write failed');
      await this.cleanUp();
    }
    return this.failure;
  }

  private async cleanUp(): Promise<void> {
    const files = this.opened ?? [];
    this.buffered = [];
    await Promise.all(
      files.map(async (f) => {
        if (f.fd !== null) {
          const fd = f.fd;
          f.fd = null;
          try {
            closeSync(fd);
          } catch {
            // already unusable: nothing to release
          }
        }
        await unlink(f.plan.tmpPath).catch(() => {});
        // A message whose commit failed was not accepted: none of its files may stay queued.
        if (f.renamed) await unlink(f.plan.path).catch(() => {});
      }),
    );
  }
}

/**
 * The file holds exactly its envelope and the message (the last guard before a queue file is
 * renamed into place and the message acknowledged): anything else is a failed write.
 */
function checkLength(fd: number, expected: number): void {
  const { size } = fstatSync(fd);
  if (size !== expected) throw new QueueWriteError(`cannot store the message in the queue: the file is ${size} bytes, its envelope says ${expected}`, 'EIO');
}
