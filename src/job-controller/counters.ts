// Per-channel counters of the job controller (messages and recipients enqueued, delivered,
// deferred, returned). Kept in log/counters.json so that a restart of the job controller does not
// zero them; written a moment after a change (and at exit), atomically.
import { readFileSync } from 'node:fs';
import { open, rename, mkdir, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export const COUNTER_FIELDS = ['enqueued', 'delivered', 'deferred', 'returned'] as const;
export type CounterField = (typeof COUNTER_FIELDS)[number];

export interface ChannelCounters {
  enqueued: number;
  delivered: number;
  deferred: number;
  returned: number;
  recipients: Record<CounterField, number>;
}

export type CounterTable = Record<string, ChannelCounters>;

export function countersPath(logDir: string): string {
  return join(logDir, 'counters.json');
}

export function emptyCounters(): ChannelCounters {
  return { enqueued: 0, delivered: 0, deferred: 0, returned: 0, recipients: { enqueued: 0, delivered: 0, deferred: 0, returned: 0 } };
}

/** Reads a counters file leniently: anything unreadable counts as zero. */
export function parseCounters(text: string): CounterTable {
  const out: CounterTable = {};
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return out;
  }
  if (!data || typeof data !== 'object') return out;
  const channels = (data as { channels?: unknown }).channels ?? data;
  if (!channels || typeof channels !== 'object') return out;
  for (const [name, value] of Object.entries(channels as Record<string, unknown>)) {
    if (!value || typeof value !== 'object') continue;
    const v = value as Record<string, unknown>;
    const c = emptyCounters();
    const rec = (v.recipients ?? {}) as Record<string, unknown>;
    for (const f of COUNTER_FIELDS) {
      c[f] = nonNegative(v[f]);
      c.recipients[f] = nonNegative(rec[f]);
    }
    out[name] = c;
  }
  return out;
}

function nonNegative(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : 0;
}

export class CounterBook {
  private table: CounterTable = {};
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly path: string, private readonly saveDelayMs = 1000) {}

  load(): void {
    try {
      this.table = parseCounters(readFileSync(this.path, 'utf8'));
    } catch {
      this.table = {};
    }
  }

  add(channel: string, field: CounterField, messages: number, recipients: number): void {
    if (messages === 0 && recipients === 0) return;
    const c = (this.table[channel] ??= emptyCounters());
    c[field] += messages;
    c.recipients[field] += recipients;
    this.saveSoon();
  }

  snapshot(): CounterTable {
    return JSON.parse(JSON.stringify(this.table)) as CounterTable;
  }

  private saveSoon(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.save();
    }, this.saveDelayMs);
    this.timer.unref();
  }

  /** Writes now (temporary file, then rename); errors are reported to the caller. */
  save(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const text = JSON.stringify({ version: 1, saved: new Date().toISOString(), channels: this.table }) + '\n';
    this.writing = this.writing.catch(() => {}).then(async () => {
      await mkdir(dirname(this.path), { recursive: true });
      const tmp = `${this.path}.${process.pid}.tmp`;
      const fh = await open(tmp, 'w', 0o644);
      try {
        // writeFile writes to the end (or fails: a full disk leaves the old counters in place);
        // the data is on disk before the rename, so a crash never leaves an empty counters.json.
        await fh.writeFile(text);
        await fh.datasync();
      } catch (err) {
        await fh.close().catch(() => {});
        await unlink(tmp).catch(() => {});
        throw err;
      }
      await fh.close();
      await rename(tmp, this.path);
    });
    return this.writing;
  }
}
