// The job controller's fast-flush state: the policy (which domains), the per-destination index
// of deferred messages, and its persistence; plus the FlushHost the flush runs against.
//
// Persistence, chosen: an append-only journal `flush/fast-flush.jnl` under the instance root
// (like Postfix's per-site logs in $queue_directory/flush; not run/, which stop-msg leaves
// empty, not queue/, which holds channel queues only). One JSON line per event: `d` = deferred
// (id, channel, path relative to the root, fast-flush domains; replaces earlier lines of the id),
// `x` = left the queue. At open it is replayed (one sequential read, no queue file opened: about
// half a second for 100k messages, so ETRN works right after a restart, before the start-up queue
// scan has read the files) and rewritten compacted when it holds dead lines; it is compacted
// again when dead lines outnumber live ones. Writes are buffered for one event-loop turn and not fsynced: a crash can lose the
// last lines, and a stale line is harmless (a flush checks the file). What a crash loses is
// repaired from the queue itself: every deferred envelope the scheduler reads (the start-up
// scan, rescans) is recorded again (noteAdmitted).
//
// The journal is authoritative: with it, a start indexes every deferred message without opening
// a queue file. Without it (first start, or lost), the domains are only inside the files: the
// scheduler's start-up scan indexes what it reads, and rebuild() then reads the deferred files
// it left on disk (beyond MAX_MESSAGES), a few at a time in the background. A marker file
// (`fast-flush.rebuild`) says a rebuild is owed until it has finished, across restarts.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { writeFullySync } from '../common/write-fully.js';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import type { InstanceConfig } from '../config/types.js';
import type { Logger } from '../common/logger.js';
import { locateQueueFile, type Envelope, type ScanEntry } from '../queue/index.js';
import {
  FastFlushIndex,
  carryOutFlush,
  fastFlushDomainsOf,
  fastFlushPolicy,
  isFastFlushOff,
  parseFlushTarget,
  planFlush,
  type FastFlushPolicy,
  type FlushContext,
  type FlushHost,
  type FlushRef,
  type FlushResult,
  type ScheduleState,
} from './fast-flush.js';
import { domainsOf, type IndexedMessage, type MessageIndex } from './message-index.js';

export function fastFlushJournalPath(root: string): string {
  return join(resolve(root), 'flush', 'fast-flush.jnl');
}

type JournalLine = { op: 'd'; id: string; ch: string; p: string; dom: string[] } | { op: 'x'; id: string };

export interface FastFlushStoreOptions {
  root: string;
  config: Pick<InstanceConfig, 'options' | 'imta'>;
  logger?: Logger;
  /** Journal file (default flush/fast-flush.jnl under the root). */
  path?: string;
  /** Compact when dead lines exceed live entries by this many (default 10000). */
  compactSlack?: number;
}

export interface JournalLoad {
  existed: boolean;
  entries: number;
  lines: number;
  /** Lines that could not be parsed (a torn last line after a crash, edits). */
  skipped: number;
  ms: number;
}

export class FastFlushStore {
  readonly index = new FastFlushIndex();
  policy: FastFlushPolicy;
  readonly path: string;
  readonly loaded: JournalLoad;
  /** The journal was missing (or a rebuild did not finish): rebuild() is owed. */
  readonly rebuildOwed: boolean;
  /** The rebuild owed has finished: the index is complete again. */
  private rebuilt = false;
  private readonly root: string;
  private readonly logger: Logger | undefined;
  private readonly compactSlack: number;
  private fd: number | null = null;
  private pending: string[] = [];
  private flushScheduled = false;
  private deadLines = 0;
  /** The journal read at open ended with a complete line (so appending to it is safe). */
  private endsWithNewline = false;
  private broken = false;

  private constructor(opts: FastFlushStoreOptions) {
    this.root = resolve(opts.root);
    this.path = opts.path ?? fastFlushJournalPath(this.root);
    this.logger = opts.logger;
    this.compactSlack = opts.compactSlack ?? 10_000;
    this.policy = fastFlushPolicy(opts.config.options.fastFlushDomains, opts.config.imta);
    this.loaded = this.load();
    this.rebuildOwed = !this.loaded.existed || existsSync(this.markerPath);
    if (this.rebuildOwed) this.setMarker(true);
  }

  /** Replays the journal (and rewrites it compacted when needed). Never throws: without a usable journal the index starts empty. */
  static open(opts: FastFlushStoreOptions): FastFlushStore {
    const store = new FastFlushStore(opts);
    // Rewritten only when it holds dead or torn lines: at 100k entries the rewrite costs as much as the replay.
    if (store.loaded.existed && store.loaded.lines === store.loaded.entries && store.loaded.skipped === 0 && store.endsWithNewline) store.openForAppend();
    else store.compact();
    store.logger?.info(
      { ...store.loaded, domains: store.index.domainCount, policy: store.policy.source, off: isFastFlushOff(store.policy) },
      'fast-flush index loaded',
    );
    return store;
  }

  /** A new configuration: FAST_FLUSH_DOMAINS or the rewrite rules may have changed. */
  configure(config: Pick<InstanceConfig, 'options' | 'imta'>): void {
    this.policy = fastFlushPolicy(config.options.fastFlushDomains, config.imta);
  }

  // ------------------------------------------------------------------ events

  /** After an attempt left recipients pending: index the message under its fast-flush domains. */
  deferred(ref: FlushRef, domains: readonly string[]): void {
    const fast = fastFlushDomainsOf(this.policy, domains);
    if (fast.length === 0) {
      this.gone(ref.id);
      return;
    }
    const before = this.index.get(ref.id);
    this.index.record(ref, fast);
    if (before) this.deadLines++;
    this.append({ op: 'd', id: ref.id, ch: ref.channel, p: this.relativePath(ref.path), dom: fast });
  }

  /** The message left the queue (delivered, returned, deleted) or is no longer deferred. */
  gone(id: string): void {
    if (!this.index.remove(id)) return;
    this.deadLines += 2;
    this.append({ op: 'x', id });
  }

  /** The scheduler read an envelope (scan, notice): a message that was tried before and still waits is indexed (repairs a lost journal line). */
  /** `pendingDomains`: the domains of its pending recipients, when the caller has them already. */
  noteAdmitted(path: string, envelope: Envelope, pendingDomains?: string[]): void {
    // New mail is not deferred yet; a message not tried because its host was down (attempts 0, a next attempt set) is.
    if ((envelope.attempts === 0 && envelope.nextAttempt === null) || envelope.held || !envelope.recipients.some((r) => r.state === 'pending')) return;
    const domains = pendingDomains ?? domainsOf(envelope.recipients.filter((r) => r.state === 'pending').map((r) => r.address));
    const fast = fastFlushDomainsOf(this.policy, domains);
    const known = this.index.get(envelope.id);
    if (known?.ref.path === path && sameSet(known.domains, fast)) return; // nothing new: no journal line
    this.deferred({ id: envelope.id, channel: envelope.channel, path }, fast);
  }

  // ------------------------------------------------------------------- flush

  /** `imsimta flush` / ETRN: the target as given (`domain`, `@domain`, `#channel`, null = all). */
  async flush(target: string | null, host: FlushHost, origin: FlushContext['origin'] = 'operator', client: string | null = null): Promise<FlushResult> {
    const parsed = parseFlushTarget(target);
    if (!parsed) return { ok: false, code: 501, count: 0, text: `bad flush target ${JSON.stringify(target)}: expected domain, @domain or #channel` };
    const started = Date.now();
    const result = await carryOutFlush(planFlush(parsed, this.policy, this.index), host, { origin, fastIndexComplete: !this.rebuildOwed || this.rebuilt });
    for (const id of result.stale ?? []) this.gone(id);
    this.logger?.info({ target, origin, client, way: result.way, code: result.code, count: result.count, stale: result.stale?.length ?? 0, ms: Date.now() - started }, 'flush');
    const { stale: _stale, ...reply } = result;
    return reply;
  }

  /**
   * Indexes the deferred files (not held; a name with attempts 0 may be one whose host was never
   * reachable, so those are read too) that neither the journal nor the scheduler's reads covered. Only when owed (the journal was missing); yields to the
   * event loop between small batches, so that ETRN and deliveries go on meanwhile.
   */
  async rebuild(parts: RebuildParts): Promise<{ read: number; indexed: number; ms: number } | null> {
    if (!this.rebuildOwed) return null;
    const started = Date.now();
    const before = this.index.size;
    let read = 0;
    for await (const e of parts.scan()) {
      if (e.held || this.index.get(e.id) || parts.known(e.id)) continue;
      const file = await parts.read(e.path).catch(() => null);
      read++;
      if (file) this.noteAdmitted(e.path, file.envelope);
      if (read % REBUILD_BATCH === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    if (!this.broken) this.setMarker(false); // a journal that failed meanwhile owes the next start a rebuild
    this.rebuilt = true;
    const result = { read, indexed: this.index.size - before, ms: Date.now() - started };
    this.logger?.info(result, 'fast-flush index rebuilt from the queue files');
    return result;
  }

  stats(): { messages: number; domains: number; policy: string; off: boolean } {
    return { messages: this.index.size, domains: this.index.domainCount, policy: this.policy.source, off: isFastFlushOff(this.policy) };
  }

  /** Writes what is buffered and closes the journal. */
  close(): void {
    this.writePending();
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  // --------------------------------------------------------------- journal

  private load(): JournalLoad {
    const started = Date.now();
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.logger?.warn({ err: (err as Error).message, path: this.path }, 'cannot read the fast-flush journal; starting empty');
      return { existed: false, entries: 0, lines: 0, skipped: 0, ms: Date.now() - started };
    }
    let lines = 0;
    let skipped = 0;
    for (const line of text.split('\n')) {
      if (!line) continue;
      lines++;
      const rec = parseLine(line);
      if (!rec) {
        skipped++;
        continue;
      }
      if (rec.op === 'x') this.index.remove(rec.id);
      else this.index.record({ id: rec.id, channel: rec.ch, path: this.absolutePath(rec.p) }, rec.dom);
    }
    this.endsWithNewline = text.length === 0 || text.endsWith('\n');
    return { existed: true, entries: this.index.size, lines, skipped, ms: Date.now() - started };
  }

  /** Rewrites the journal with one line per live entry (temporary file, then rename). */
  private compact(): void {
    this.writePending();
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    try {
      mkdirSync(dirname(this.path), { recursive: true });
      const tmp = `${this.path}.tmp`;
      const out: string[] = [];
      for (const e of this.index.entries()) out.push(JSON.stringify({ op: 'd', id: e.ref.id, ch: e.ref.channel, p: this.relativePath(e.ref.path), dom: [...e.domains] } satisfies JournalLine));
      writeFileSync(tmp, out.length ? out.join('\n') + '\n' : '');
      renameSync(tmp, this.path);
      this.fd = openSync(this.path, 'a');
      this.deadLines = 0;
      this.broken = false;
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private openForAppend(): void {
    try {
      this.fd = openSync(this.path, 'a');
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private append(rec: JournalLine): void {
    if (this.broken) return;
    this.pending.push(JSON.stringify(rec));
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.writePending();
      if (this.deadLines > this.index.size + this.compactSlack) this.compact();
    });
  }

  private writePending(): void {
    if (this.pending.length === 0 || this.fd === null || this.broken) {
      this.pending = [];
      return;
    }
    const data = this.pending.join('\n') + '\n';
    this.pending = [];
    try {
      writeFullySync(this.fd, [Buffer.from(data)]);
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private fail(err: Error): void {
    if (!this.broken) this.logger?.error({ err: err.message, path: this.path }, 'cannot write the fast-flush journal; the index is kept in memory only until the next start');
    this.broken = true;
    this.pending = [];
    // The journal now misses lines (a disk full, say): the next start rebuilds from the queue files.
    this.setMarker(true);
  }

  private get markerPath(): string {
    return this.path.replace(/\.jnl$/, '') + '.rebuild';
  }

  private setMarker(owed: boolean): void {
    try {
      if (owed) {
        mkdirSync(dirname(this.markerPath), { recursive: true });
        writeFileSync(this.markerPath, '');
      } else unlinkSync(this.markerPath);
    } catch {
      /* without the marker a crash during the rebuild is repaired by the scans only */
    }
  }

  private relativePath(p: string): string {
    return relative(this.root, p);
  }

  private absolutePath(p: string): string {
    return isAbsolute(p) ? p : join(this.root, p);
  }
}

/** Files read by rebuild() before it yields to the event loop. */
const REBUILD_BATCH = 64;

/** What rebuild() needs from the job controller. */
export interface RebuildParts {
  /** Every queue file (names and stat only). */
  scan(): AsyncIterable<ScanEntry>;
  /** The scheduler holds it (so it read the file, and noteAdmitted saw it). */
  known(id: string): boolean;
  /** The job controller's envelope reader; null when the file is gone or corrupt. */
  read(path: string): Promise<{ envelope: Envelope } | null>;
}

function parseLine(line: string): JournalLine | null {
  try {
    const r = JSON.parse(line) as Record<string, unknown>;
    if (typeof r.id !== 'string' || !r.id) return null;
    if (r.op === 'x') return { op: 'x', id: r.id };
    if (r.op === 'd' && typeof r.ch === 'string' && typeof r.p === 'string' && Array.isArray(r.dom) && r.dom.every((d) => typeof d === 'string')) {
      return { op: 'd', id: r.id, ch: r.ch, p: r.p, dom: r.dom };
    }
  } catch {
    /* torn or edited line */
  }
  return null;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

// ------------------------------------------------------------------ the host

/** What the job controller lends a flush (its scheduling index, its envelope reader, and its admission). */
export interface FlushHostParts {
  index: MessageIndex;
  /** The job controller's envelope reader (corrupt files set aside); null when the file is gone. */
  read(path: string): Promise<{ envelope: Envelope; size: number } | null>;
  /**
   * Puts a message read from disk into the scheduler, due now, even when the index is full (the
   * flush named it); with its size, so that the delivery attempt does not read it again. False
   * when it is already there.
   */
  admit(path: string, envelope: Envelope, size: number): boolean;
  rescan: () => void;
  kick: () => void;
  now: () => number;
  /** The channel is in imta.cnf. */
  hasChannel: (name: string) => boolean;
}

/** The FlushHost a flush runs against, on the job controller's own index and queue store. */
export function flushHostFor(parts: FlushHostParts): FlushHost {
  const { index } = parts;
  const each = (match: (m: IndexedMessage) => boolean, inFlightOnly: boolean) =>
    index.count((m) => match(m) && (!inFlightOnly || Boolean(index.get(m.id)?.inFlight)));
  return {
    makeDueNow(id: string): ScheduleState {
      const entry = index.get(id);
      if (!entry) return 'absent';
      if (entry.inFlight) return 'in-flight';
      if (entry.dueMs > 0) index.reschedule(id, { dueMs: 0 }, parts.now());
      return 'made-due';
    },
    async admitNow(ref: FlushRef) {
      const path = await locateQueueFile(ref);
      if (!path) return 'gone';
      const file = await parts.read(path);
      if (!file || file.envelope.held || !file.envelope.recipients.some((r) => r.state === 'pending')) return 'gone';
      // Its envelope as it is (nextAttempt included): a try before that time does not count (outcome.ts).
      if (parts.admit(path, file.envelope, file.size)) return 'admitted';
      return index.has(ref.id) ? 'admitted' : 'no-room';
    },
    makeDue: (match) => index.makeDue(match),
    countInFlight: (match) => each(match, true),
    countKnown: (match) => each(match, false),
    hasChannel: parts.hasChannel,
    get incomplete() {
      return index.overflowed;
    },
    rescan: parts.rescan,
    kick: parts.kick,
  };
}
