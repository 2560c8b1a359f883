// The last records of one kind in log/mail.log (the status page's recent deferrals), read from
// the end of the file backwards in blocks, so that a large log costs no more than the records
// wanted (bounded by maxBytes).
import { open } from 'node:fs/promises';
import { parseMailLogLine, type MailLogEvent, type ParsedMailLogRecord } from '../common/mail-log.js';

export interface TailOptions {
  events: readonly MailLogEvent[];
  limit: number;
  /** Read no more than this from the end of the file. */
  maxBytes?: number;
  blockSize?: number;
}

/** Newest first; an empty list when the file does not exist. */
export async function readRecentMailLog(path: string, opts: TailOptions): Promise<ParsedMailLogRecord[]> {
  const maxBytes = opts.maxBytes ?? 4 * 1024 * 1024;
  const blockSize = opts.blockSize ?? 64 * 1024;
  const wanted = new Set(opts.events);
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  try {
    const size = (await fh.stat()).size;
    const found: ParsedMailLogRecord[] = [];
    let end = size;
    let carry = Buffer.alloc(0); // the start of a line whose beginning lies in an earlier block
    while (end > 0 && size - end < maxBytes && found.length < opts.limit) {
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
      for (let i = lines.length - 1; i >= 0 && found.length < opts.limit; i--) {
        const record = lines[i] ? parseMailLogLine(lines[i]!) : null;
        if (record && wanted.has(record.event)) found.push(record);
      }
    }
    return found;
  } finally {
    await fh.close();
  }
}
