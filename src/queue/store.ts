// The durable per-channel queue: queue/<channel>/[<subdir>/]<file>, one file per message per
// destination channel. Writes go to queue/.tmp/ (never scanned), are fsynced, renamed into place
// and their directory fsynced (in shared rounds, see group-commit.ts) before commit() resolves.
import { open, mkdir, rename, unlink, readdir, readlink, realpath, lstat, stat, writeFile, readFile, copyFile, type FileHandle } from 'node:fs/promises';
import { existsSync, lstatSync, unlinkSync, type Dirent } from 'node:fs';
import { Readable } from 'node:stream';
import { join, dirname, basename } from 'node:path';
import type { Logger } from '../common/logger.js';
import type { CommittedFile, Envelope, EnvelopeDraft, MessagePrefix, QueueRef, ScanEntry } from './types.js';
import { encodeEnvelope } from './envelope-format.js';
import { QueueFileError, QueueWriteError } from './errors.js';
import { createIdGenerator, fileId, queueIdTimeMs, type IdGenerator } from './message-id.js';
import { HELD_SUFFIX, identityFromPath, isSubdirName, isTemporaryName, parseQueueFileName, queueFileName, subdirIndex, subdirName } from './file-name.js';
import { DirectorySyncer } from './group-commit.js';
import { readQueueFileHeader, readQueuedFileSync } from './queue-file-reader.js';
import { DelayedDirectorySync } from './removal-sync.js';
import { MessageSpool } from './message-spool.js';
import { EnqueueTransactionImpl, type EnqueueTransaction, type PlannedFile } from './transaction.js';
import { SpareFiles } from './spare-files.js';
import { writeFully } from '../common/write-fully.js';

export type { EnqueueTransaction } from './transaction.js';

export interface QueueStoreOptions {
  /** The instance's queue/ directory. */
  queueDir: string;
  /** Where unreadable queue files are moved (the instance's corrupt/, outside queue/). */
  corruptDir: string;
  /** The channel's `subdirs N` (0 = flat). */
  subdirs(channel: string): number;
  logger?: Logger;
  /** The kernel's boot id for the spare pool; null turns reuse of queue files off (tests). */
  bootId?: string | null;
  /**
   * Fields to put in front of each draft's copy of a message (the DKIM signature: src/dkim/,
   * dkimPrefixes), one entry per draft, null for none; asked once per message at begin().
   */
  prefixesFor?(drafts: EnvelopeDraft[]): Array<MessagePrefix | null>;
  /** Removals by retire() whose directory fsyncs are gathered into one round (ms; default 20). */
  removalSyncDelayMs?: number;
}

export interface CorruptEntry {
  /** File name inside corrupt/. */
  name: string;
  reason: string;
  /** Where the file was in the queue, when known. */
  originalPath: string | null;
}

/** Small messages are read in one go. */
const READ_WHOLE_BELOW = 1024 * 1024;
/** A spooled message stays in memory up to this size (as a buffered enqueue does up to 64 KiB, with room for headers and milters' work). */
const SPOOL_MEMORY_LIMIT = 256 * 1024;
const STAT_BATCH = 64;

export class QueueStore {
  readonly queueDir: string;
  readonly corruptDir: string;
  readonly tmpDir: string;
  private readonly ids: IdGenerator = createIdGenerator();
  private readonly syncer = new DirectorySyncer();
  private readonly readyDirs = new Map<string, Promise<void>>();
  private tmpCounter = 0;
  /** Files of delivered messages kept for reuse (spare-files.ts). */
  readonly spares: SpareFiles;
  /** Directory fsyncs of retired files, gathered and run in the background (removal-sync.ts). */
  private readonly removals: DelayedDirectorySync;

  constructor(private readonly opts: QueueStoreOptions) {
    this.queueDir = opts.queueDir;
    this.corruptDir = opts.corruptDir;
    this.tmpDir = join(opts.queueDir, '.tmp');
    this.spares = new SpareFiles({ queueDir: opts.queueDir, bootId: opts.bootId });
    this.removals = new DelayedDirectorySync(opts.removalSyncDelayMs ?? 20, (dir, err) => opts.logger?.warn({ dir, err }, 'cannot fsync a queue directory after removals'));
  }

  /** Directory fsync rounds so far (group commit shares them between messages). */
  get fsyncRounds(): number {
    return this.syncer.rounds;
  }

  // ------------------------------------------------------------ enqueue

  /** A new message id, for begin() (known before the message is, to go into its Received: line). */
  newMessageId(): string {
    return this.ids.next();
  }

  /** Starts a streamed enqueue of one message to one or more channels (one file each, same body; ids from `messageId`, see fileId). */
  begin(drafts: EnvelopeDraft[], messageId: string = this.ids.next()): EnqueueTransaction {
    if (drafts.length === 0) throw new TypeError('queue: begin() needs at least one envelope');
    const prefixes = this.opts.prefixesFor?.(drafts) ?? [];
    const files: PlannedFile[] = drafts.map((draft, index) => {
      checkChannelName(draft.channel);
      if (draft.recipients.length === 0) throw new TypeError(`queue: no recipients for channel ${draft.channel}`);
      const id = fileId(messageId, index);
      const { held, ...rest } = draft;
      const envelope: Envelope = { ...rest, id, attempts: 0, nextAttempt: null, held: held ?? false };
      const dir = this.messageDir(draft.channel, id);
      return {
        envelope,
        tmpPath: join(this.tmpDir, `${id}.${process.pid}.${++this.tmpCounter}`),
        dir,
        path: join(dir, queueFileName(id, 0, envelope.held)),
        prefix: prefixes[index] ?? null,
      };
    });
    return new EnqueueTransactionImpl(files, {
      ensureDir: (dir) => this.ensureDir(dir),
      forgetDir: (dir) => {
        this.readyDirs.delete(dir);
        this.syncer.forget(dir);
      },
      syncDir: (dir) => this.syncer.sync(dir),
      claimSpare: (tmpPath) => this.spares.claimSync(tmpPath),
      tmpDir: this.tmpDir,
      logger: this.opts.logger,
    });
  }

  /**
   * A message held for the end-of-DATA checks before it is enqueued (message-spool.ts): in memory
   * up to `memoryLimit` octets, then in a temporary file of queue/.tmp that sweepTemporary()
   * removes if this process dies.
   */
  spool(messageId: string, memoryLimit = SPOOL_MEMORY_LIMIT): MessageSpool {
    return new MessageSpool({
      tmpPath: join(this.tmpDir, `${messageId}-spool.${process.pid}.${++this.tmpCounter}`),
      ensureDir: () => this.ensureDir(this.tmpDir),
      memoryLimit,
    });
  }

  /** Convenience: the whole body in memory. */
  async enqueue(drafts: EnvelopeDraft[], body: Buffer): Promise<CommittedFile[]> {
    const tx = this.begin(drafts) as EnqueueTransactionImpl;
    tx.appendWhole(body);
    return tx.commit();
  }

  // --------------------------------------------------------------- read

  /**
   * Whether the queue file is still in place (not delivered, removed or held meanwhile): a
   * check of the name alone, synchronous as it is asked for each file of an "enqueued" notice.
   */
  exists(path: string): boolean {
    return existsSync(path);
  }

  /** The envelope; throws QueueFileError for a corrupt file (and the fs error, e.g. ENOENT, when it is gone). */
  async readEnvelope(path: string): Promise<Envelope> {
    return (await this.readHeader(path)).envelope;
  }

  /** The envelope and the message size from the file's header. */
  private async readHeader(path: string): Promise<{ envelope: Envelope; size: number }> {
    const fh = await open(path, 'r');
    try {
      const parsed = await readQueueFileHeader(fh, path, this.heldFromName(path));
      return { envelope: this.fixIdentity(parsed.envelope, path), size: parsed.bodyLength };
    } finally {
      await fh.close();
    }
  }

  /** Like readEnvelope, but a corrupt file is quarantined and a vanished one skipped: both give null. */
  async tryReadEnvelope(path: string): Promise<Envelope | null> {
    return this.nullIfUnreadable(path, () => this.readEnvelope(path));
  }

  /**
   * The envelope and the message size, for listings. A corrupt file is quarantined and a vanished
   * one skipped: both give null.
   */
  async inspect(path: string): Promise<{ envelope: Envelope; size: number } | null> {
    return this.nullIfUnreadable(path, () => this.readHeader(path));
  }

  /**
   * The envelope and the message size, on the delivery path (synchronous reads, see
   * queue-file-reader.ts). A corrupt file is quarantined and a vanished one skipped: both give null.
   */
  readQueued(path: string): Promise<{ envelope: Envelope; size: number } | null> {
    return this.nullIfUnreadable(path, async () => {
      const file = readQueuedFileSync(path, { queueDir: this.queueDir });
      return file && { envelope: file.envelope, size: file.size };
    });
  }

  /** Runs a read; a corrupt file is quarantined and a vanished one skipped: both give null. */
  private async nullIfUnreadable<T>(path: string, read: () => Promise<T>): Promise<T | null> {
    try {
      return await read();
    } catch (err) {
      if (err instanceof QueueFileError) {
        await this.quarantine(path, err.reason).catch(() => {});
        return null;
      }
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async readMessage(path: string): Promise<{ envelope: Envelope; body: Buffer }> {
    const fh = await open(path, 'r');
    try {
      const parsed = await readQueueFileHeader(fh, path, this.heldFromName(path), READ_WHOLE_BELOW);
      let body: Buffer;
      if (parsed.head.length >= parsed.fileSize) {
        body = parsed.head.subarray(parsed.headerLength);
      } else {
        body = Buffer.allocUnsafe(parsed.bodyLength);
        let got = 0;
        while (got < body.length) {
          const { bytesRead } = await fh.read(body, got, body.length - got, parsed.headerLength + got);
          if (bytesRead === 0) throw new QueueFileError(path, 'file shrank while being read');
          got += bytesRead;
        }
      }
      return { envelope: this.fixIdentity(parsed.envelope, path), body };
    } finally {
      await fh.close();
    }
  }

  /** The message bytes only, streamed. The file is opened now, so a later rename does not matter. */
  async openBody(path: string): Promise<NodeJS.ReadableStream> {
    const fh = await open(path, 'r');
    let parsed;
    try {
      parsed = await readQueueFileHeader(fh, path, false);
    } catch (err) {
      await fh.close();
      throw err;
    }
    if (parsed.bodyLength === 0) {
      await fh.close();
      return Readable.from([]);
    }
    return fh.createReadStream({ start: parsed.headerLength, end: parsed.headerLength + parsed.bodyLength - 1, autoClose: true });
  }

  // ------------------------------------------------------------- change

  /**
   * Atomic rewrite of the envelope. The new version is written to a temporary file and fsynced,
   * renamed over the current name (readers see the old or the new version, never a mix), then,
   * when the attempt count changed, renamed to its new name — so at no moment are there two files
   * for one message; a crash between the two renames leaves the new contents under the old name,
   * which is harmless (the envelope inside is authoritative for the count). The held state is
   * kept as the file name says (only hold()/release() change it).
   */
  async update(ref: QueueRef, envelope: Envelope): Promise<QueueRef> {
    const current = this.parseRefName(ref);
    const dir = dirname(ref.path);
    const newPath = join(dir, queueFileName(current.id, envelope.attempts, current.held));
    const tmpPath = join(this.tmpDir, `${current.id}.${process.pid}.${++this.tmpCounter}`);
    const env: Envelope = { ...envelope, id: current.id, channel: ref.channel, held: current.held };
    await this.ensureDir(this.tmpDir);
    let out: FileHandle | null = null;
    try {
      const src = await open(ref.path, 'r');
      try {
        const old = await readQueueFileHeader(src, ref.path, current.held, READ_WHOLE_BELOW);
        const { header } = encodeEnvelope(env, old.bodyLength);
        out = await open(tmpPath, 'wx', 0o600);
        if (old.head.length >= old.fileSize) {
          await writeFully(out.fd, [header, old.head.subarray(old.headerLength)], 0);
        } else {
          await writeFully(out.fd, [header], 0);
          await copyRange(src, out, old.headerLength, old.bodyLength, header.length);
        }
        // The old file is replaced only by a whole new one (a full disk cut writes short before).
        const { size } = await out.stat();
        if (size !== header.length + old.bodyLength) throw new QueueWriteError(`cannot update ${ref.path}: the new version is ${size} bytes, its envelope says ${header.length + old.bodyLength}`, 'EIO');
      } finally {
        await src.close();
      }
      await out.datasync();
      await out.close();
      out = null;
      // Do not resurrect a file that was deleted, held or moved meanwhile (qm acts from another process).
      await stat(ref.path);
      await rename(tmpPath, ref.path);
      if (newPath !== ref.path) await rename(ref.path, newPath);
      await this.syncer.sync(dir);
      return { id: current.id, channel: ref.channel, path: newPath };
    } catch (err) {
      if (out) await out.close().catch(() => {});
      await unlink(tmpPath).catch(() => {});
      if (err instanceof QueueFileError || (err as NodeJS.ErrnoException).code === 'ENOENT') throw err;
      throw QueueWriteError.from(err, `cannot update ${ref.path}`);
    }
  }

  /** Removes a message file (already gone is fine). */
  async remove(ref: QueueRef): Promise<void> {
    try {
      await unlink(ref.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw QueueWriteError.from(err, `cannot remove ${ref.path}`);
    }
    // Durable removal avoids redelivering after a crash; shared with other fsyncs of the directory.
    await this.syncer.sync(dirname(ref.path)).catch(() => {});
  }

  /**
   * Removes the file of a message whose delivery is settled, at once (a later scan must not find
   * it), and makes the removal durable in the background: its directory is fsynced with the other
   * removals of the next few milliseconds. Nothing waits for that fsync; a crash before it can only
   * bring the message back for one more delivery (at least once, as DESIGN.md says). Small files
   * are kept for the next enqueue to overwrite (spare-files.ts): only the job controller calls
   * this, once no one else reads the message. Already gone is fine.
   */
  retire(path: string): void {
    try {
      if (!(this.spares.dir && this.spares.retireSync(path, lstatSync(path).size))) unlinkSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw QueueWriteError.from(err, `cannot remove ${path}`);
    }
    this.removals.noteFile(path);
  }

  /** Renames to `.HELD`: never scheduled until released. */
  hold(ref: QueueRef): Promise<QueueRef> {
    return this.setHeld(ref, true);
  }

  release(ref: QueueRef): Promise<QueueRef> {
    return this.setHeld(ref, false);
  }

  private async setHeld(ref: QueueRef, held: boolean): Promise<QueueRef> {
    const current = this.parseRefName(ref);
    if (current.held === held) return ref;
    const path = join(dirname(ref.path), queueFileName(current.id, current.attempts, held));
    try {
      await rename(ref.path, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw err;
      throw QueueWriteError.from(err, `cannot ${held ? 'hold' : 'release'} ${ref.path}`);
    }
    await this.syncer.sync(dirname(path));
    return { id: current.id, channel: ref.channel, path };
  }

  // --------------------------------------------------------------- scan

  /** The channels that have a queue directory. */
  async listChannels(): Promise<string[]> {
    try {
      const entries = await readdir(this.queueDir, { withFileTypes: true });
      return entries.filter((e) => e.isDirectory() && !isTemporaryName(e.name)).map((e) => e.name).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  /**
   * Walks queue/<channel>/… (all channels when omitted), from names and stat only. Temporary
   * files are never seen; a file whose name is not a queue file name is moved to corrupt/.
   * Unreadable directories are logged and skipped: a scan never stops on one bad entry.
   */
  async *scan(channel?: string): AsyncIterable<ScanEntry> {
    const channels = channel === undefined ? await this.listChannels() : [channel];
    for (const ch of channels) {
      if (!isValidChannelName(ch)) continue;
      const channelDir = join(this.queueDir, ch);
      const top = await this.readDirSafe(channelDir);
      yield* this.statEntries(ch, channelDir, top.filter((e) => !e.isDirectory()));
      for (const e of top) {
        if (!e.isDirectory() || isTemporaryName(e.name)) continue;
        if (!isSubdirName(e.name)) {
          this.opts.logger?.warn({ dir: join(channelDir, e.name) }, 'unexpected directory in a channel queue, skipped');
          continue;
        }
        const subdir = join(channelDir, e.name);
        const inner = await this.readDirSafe(subdir);
        yield* this.statEntries(ch, subdir, inner.filter((x) => !x.isDirectory()));
      }
    }
  }

  async findById(id: string): Promise<ScanEntry | null> {
    const wanted = id.toUpperCase();
    for await (const entry of this.scan()) if (entry.id === wanted) return entry;
    return null;
  }

  private async readDirSafe(dir: string) {
    try {
      return await readdir(dir, { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') this.opts.logger?.error({ dir, err: (err as Error).message }, 'cannot read queue directory, skipped');
      return [];
    }
  }

  /**
   * Regular files whose id carries its creation time (every id this store makes) are taken from
   * the directory entry alone: at 100,000 files the stat calls were a third of the job
   * controller's start-up scan. Other entries are stat'ed as before (their time, their type).
   */
  private async *statEntries(channel: string, dir: string, entries: Dirent[]): AsyncIterable<ScanEntry> {
    const wanted: Array<{ name: string; id: string; attempts: number; held: boolean }> = [];
    for (const e of entries) {
      const name = e.name;
      if (isTemporaryName(name)) continue;
      const parsed = parseQueueFileName(name);
      if (!parsed) {
        await this.quarantine(join(dir, name), 'not a queue file name').catch(() => {});
        continue;
      }
      const born = e.isFile() ? queueIdTimeMs(parsed.id) : null;
      if (born !== null) yield { id: parsed.id, channel, path: join(dir, name), held: parsed.held, attempts: parsed.attempts, mtimeMs: born };
      else wanted.push({ name, ...parsed });
    }
    for (let i = 0; i < wanted.length; i += STAT_BATCH) {
      const batch = wanted.slice(i, i + STAT_BATCH);
      const stats = await Promise.all(batch.map((w) => lstat(join(dir, w.name)).catch(() => null)));
      for (let k = 0; k < batch.length; k++) {
        const st = stats[k];
        if (!st) continue; // removed since readdir (delivered, moved): not an error
        const w = batch[k]!;
        if (!st.isFile()) {
          await this.quarantine(join(dir, w.name), 'not a regular file').catch(() => {});
          continue;
        }
        yield { id: w.id, channel, path: join(dir, w.name), held: w.held, attempts: w.attempts, mtimeMs: st.mtimeMs };
      }
    }
  }

  // ------------------------------------------------------------ corrupt

  /** Moves an unreadable file to corrupt/ (same name, plus NAME.reason), logs it. */
  async quarantine(path: string, reason: string): Promise<void> {
    await mkdir(this.corruptDir, { recursive: true });
    const base = basename(path);
    let name = base;
    for (let n = 1; await exists(join(this.corruptDir, name)); n++) name = `${base}-${n}`;
    const target = join(this.corruptDir, name);
    try {
      await rename(path, target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      await copyFile(path, target);
      await unlink(path);
    }
    await writeFile(join(this.corruptDir, `${name}.reason`), `${reason.replace(/[\r\n]+/g, ' ')}\npath ${path}\ntime ${new Date().toISOString()}\n`);
    this.opts.logger?.warn({ path, moved_to: target, reason }, 'corrupt queue file moved aside');
  }

  async listCorrupt(): Promise<CorruptEntry[]> {
    let names: string[];
    try {
      names = (await readdir(this.corruptDir)).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: CorruptEntry[] = [];
    for (const name of names) {
      if (name.endsWith('.reason')) continue;
      let reason = 'unknown (no reason file)';
      let originalPath: string | null = null;
      try {
        const lines = (await readFile(join(this.corruptDir, `${name}.reason`), 'utf8')).split('\n');
        reason = lines[0] || reason;
        const p = lines.find((l) => l.startsWith('path '));
        if (p) originalPath = p.slice(5);
      } catch {
        /* no reason file: put there by hand */
      }
      out.push({ name, reason, originalPath });
    }
    return out;
  }

  // ---------------------------------------------------------- housekeeping

  /**
   * Removes temporary files left by writers that died (their pid is gone), and those untouched
   * for `maxAgeMs` that their writer does not hold open (a writer that lost track of one). The job
   * controller calls it at start-up and at every SYNCH_TIME rescan. Returns how many were removed.
   */
  async sweepTemporary(maxAgeMs = 24 * 3600_000): Promise<number> {
    await this.spares.sweepOtherBoots();
    let names: string[];
    try {
      names = await readdir(this.tmpDir);
    } catch {
      return 0;
    }
    let removed = 0;
    for (const name of names) {
      const pid = Number(name.split('.')[1]);
      const path = join(this.tmpDir, name);
      const st = await lstat(path).catch(() => null);
      if (!st) continue;
      const writer = Number.isInteger(pid) && pid > 0 ? pid : null;
      const dead = writer !== null && !processAlive(writer);
      const stale = !dead && Date.now() - st.mtimeMs > maxAgeMs && !(writer !== null && (await holdsOpen(writer, path)));
      if (dead || stale) {
        await unlink(path).then(() => removed++, () => {});
      }
    }
    return removed;
  }

  /** Runs the removals' fsyncs owed, then releases cached directory handles. */
  async close(): Promise<void> {
    await this.removals.close();
    await this.syncer.close();
  }

  // ------------------------------------------------------------ helpers

  /** queue/<channel>[/<subdir>] for a new message. */
  private messageDir(channel: string, id: string): string {
    const n = this.opts.subdirs(channel);
    const index = subdirIndex(id, n);
    return index === null ? join(this.queueDir, channel) : join(this.queueDir, channel, subdirName(index));
  }

  /** Creates a directory once per process; new directories are made durable in their parents. */
  private ensureDir(dir: string): Promise<void> {
    let ready = this.readyDirs.get(dir);
    if (!ready) {
      ready = (async () => {
        const first = await mkdir(dir, { recursive: true });
        if (first) {
          // fsync every parent whose entry list gained a directory
          const parents: string[] = [];
          for (let d = dir; ; d = dirname(d)) {
            parents.push(dirname(d));
            if (d === first || dirname(d) === d) break;
          }
          await Promise.all(parents.map((p) => this.syncer.sync(p)));
        }
      })();
      this.readyDirs.set(dir, ready);
      ready.catch(() => this.readyDirs.delete(dir)); // try again next time (e.g. after the operator fixed it)
    }
    return ready;
  }

  private heldFromName(path: string): boolean {
    return path.endsWith(HELD_SUFFIX);
  }

  private fixIdentity(env: Envelope, path: string): Envelope {
    return identityFromPath(env, path, this.queueDir);
  }

  private parseRefName(ref: QueueRef) {
    const parsed = parseQueueFileName(basename(ref.path));
    if (!parsed) throw new QueueFileError(ref.path, 'not a queue file name');
    return parsed;
  }
}

async function copyRange(src: FileHandle, dst: FileHandle, srcOffset: number, length: number, dstOffset: number): Promise<void> {
  const buf = Buffer.allocUnsafe(Math.min(length, 1024 * 1024));
  let done = 0;
  while (done < length) {
    const { bytesRead } = await src.read(buf, 0, Math.min(buf.length, length - done), srcOffset + done);
    if (bytesRead === 0) throw new Error('queue file shrank while being copied');
    await writeFully(dst.fd, [buf.subarray(0, bytesRead)], dstOffset + done);
    done += bytesRead;
  }
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** Whether process `pid` has `path` open (its /proc/PID/fd links); when that cannot be read, assume it does. */
async function holdsOpen(pid: number, path: string): Promise<boolean> {
  let fds: string[];
  try {
    fds = await readdir(`/proc/${pid}/fd`);
  } catch {
    return true;
  }
  const real = await realpath(path).catch(() => path); // fd links name the resolved path
  for (const fd of fds) {
    if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')) === real) return true;
  }
  return false;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function isValidChannelName(name: string): boolean {
  return /^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}$/.test(name);
}

function checkChannelName(name: string): void {
  if (!isValidChannelName(name)) throw new TypeError(`queue: "${name}" is not a usable channel name`);
}
