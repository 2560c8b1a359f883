// How far a queue scan of the job controller has got, for the operator of a large queue: the
// start-up scan of 100,000 files takes a while, and meanwhile the log says every few seconds
// how many files it has listed and read, `imsimta process` and the status page show it, and
// start-msg on a terminal says that it is under way. Pure: the controller counts, this keeps
// the numbers and says when a log line is due.

export interface ScanProgressView {
  /** Why the scan runs: start, synch (SYNCH_TIME), room, flush, request. */
  reason: string;
  /** ISO time. */
  started: string;
  /** listing: walking the channel directories; reading: reading the envelopes of the files chosen. */
  phase: 'listing' | 'reading';
  /** Queue files listed so far (held ones and the ones already in the index not counted). */
  listed: number;
  /** Files chosen to read (the oldest the index has room for); 0 while listing. */
  toRead: number;
  read: number;
}

/** A progress line in the log at most this often. */
const SCAN_LOG_EVERY_MS = 5000;

export class ScanProgress {
  private phase: ScanProgressView['phase'] = 'listing';
  private listed = 0;
  private toRead = 0;
  private read = 0;
  private nextLog: number;

  constructor(private readonly reason: string, private readonly startedMs: number, private readonly logEveryMs = SCAN_LOG_EVERY_MS) {
    this.nextLog = startedMs + logEveryMs;
  }

  listedOne(): void {
    this.listed++;
  }

  reading(files: number): void {
    this.phase = 'reading';
    this.toRead = files;
  }

  /** Returns the files read so far. */
  readOne(): number {
    return ++this.read;
  }

  /** Whether a progress line is due at `nowMs` (then the next one is due logEveryMs later). */
  logDue(nowMs: number): boolean {
    if (nowMs < this.nextLog) return false;
    this.nextLog = nowMs + this.logEveryMs;
    return true;
  }

  view(): ScanProgressView {
    return { reason: this.reason, started: new Date(this.startedMs).toISOString(), phase: this.phase, listed: this.listed, toRead: this.toRead, read: this.read };
  }
}

/** `scanning the queue (start, 12 s): 45,000 files listed` / `…: reading 20,000 of the oldest, 5,000 read`. */
export function describeScan(s: ScanProgressView, nowMs: number): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const secs = Math.max(0, Math.round((nowMs - Date.parse(s.started)) / 1000));
  const head = `scanning the queue (${s.reason}, ${secs} s): ${n(s.listed)} file${s.listed === 1 ? '' : 's'} listed`;
  return s.phase === 'listing' ? head : `${head}, ${n(s.read)} of ${n(s.toRead)} read`;
}

/** A scan view from another process's JSON, or null. */
export function readScanView(v: unknown): ScanProgressView | null {
  if (!v || typeof v !== 'object') return null;
  const o = v as Record<string, unknown>;
  const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : 0);
  if (typeof o.reason !== 'string' || typeof o.started !== 'string') return null;
  return { reason: o.reason, started: o.started, phase: o.phase === 'reading' ? 'reading' : 'listing', listed: num(o.listed), toRead: num(o.toRead), read: num(o.read) };
}
