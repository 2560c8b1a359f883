// The last records of log/mail.log (the status page's recent deferrals), read from the end of the
// file backwards in blocks, so that a large log costs no more than the records wanted (bounded by
// maxBytes). For each recent deferral, what became of that recipient afterwards (delivered,
// returned, deleted by the operator) is found on the way: those records are newer, so the
// backward read meets them first.
import { open } from 'node:fs/promises';
import { parseMailLogLine, type MailLogEvent, type ParsedMailLogRecord } from '../common/mail-log.js';

export interface TailOptions {
  events: readonly MailLogEvent[];
  limit: number;
  /** Read no more than this from the end of the file. */
  maxBytes?: number;
  blockSize?: number;
}

/** A deferral, and the record that settled that recipient later (null: none in the part of the log read). */
export type RecentDeferral = ParsedMailLogRecord & { later: { event: 'D' | 'R' | 'X'; time: Date; status: string } | null };

/** Newest first; an empty list when the file does not exist. */
export async function readRecentMailLog(path: string, opts: TailOptions): Promise<ParsedMailLogRecord[]> {
  const wanted = new Set(opts.events);
  const found: ParsedMailLogRecord[] = [];
  await scanBackward(path, opts, (record) => {
    if (wanted.has(record.event)) found.push(record);
    return found.length < opts.limit;
  });
  return found;
}

/** The last `limit` deferrals (Q), newest first, each with what became of its recipient afterwards. */
export async function readRecentDeferrals(path: string, opts: Omit<TailOptions, 'events'>): Promise<RecentDeferral[]> {
  const found: RecentDeferral[] = [];
  /** id + recipient → the oldest settling record seen so far (the backward read goes from new to old). */
  const settled = new Map<string, RecentDeferral['later']>();
  await scanBackward(path, opts, (record) => {
    const key = `${record.id} ${record.recipient.toLowerCase()}`;
    if (record.event === 'D' || record.event === 'R' || record.event === 'X') settled.set(key, { event: record.event, time: record.time, status: record.status });
    else if (record.event === 'Q') found.push({ ...record, later: settled.get(key) ?? null });
    return found.length < opts.limit;
  });
  return found;
}

/** Calls `visit` with each record from the newest back, until it returns false, the file starts or maxBytes are read. */
async function scanBackward(path: string, opts: Pick<TailOptions, 'maxBytes' | 'blockSize' | 'limit'>, visit: (record: ParsedMailLogRecord) => boolean): Promise<void> {
  const maxBytes = opts.maxBytes ?? 4 * 1024 * 1024;
  const blockSize = opts.blockSize ?? 64 * 1024;
  if (opts.limit <= 0) return;
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    const size = (await fh.stat()).size;
    let end = size;
    let carry = Buffer.alloc(0); // the start of a line whose beginning lies in an earlier block
    while (end > 0 && size - end < maxBytes) {
      const start = Math.max(0, end - blockSize);
      const block = Buffer.alloc(end - start);
      await fh.read(block, 0, block.length, start);
      const text = Buffer.concat([block, carry]);
      end = start;
      // Everything after the first line feed is made of whole lines; what comes before it may
      // continue into the next (earlier) block, unless this block starts the file.
      const firstNl = start === 0 ? -1 : text.indexOf(0x0a);
      if (firstNl < 0 && start > 0) {
        carry = text;
        continue;
      }
      carry = start === 0 ? Buffer.alloc(0) : text.subarray(0, firstNl);
      const lines = text.subarray(firstNl + 1).toString('utf8').split('\n');
      for (let i = lines.length - 1; i >= 0; i--) {
        const record = lines[i] ? parseMailLogLine(lines[i]!) : null;
        if (record && !visit(record)) return;
      }
    }
  } finally {
    await fh.close();
  }
}
