// The files `imsimta report` reads: log/mail.log and its rotated copies (mail.log.1,
// mail.log.2.gz, mail.log-20261207 …, as the watcher's rotation and logrotate name them), oldest
// first, leaving out those last written before the period starts; and reading them as a stream
// of lines in chunks (gzip undone on the way), so that memory stays bounded whatever their size.
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { isRotatedLog } from '../common/log-files.js';

export interface LogFile {
  path: string;
  size: number;
  mtimeMs: number;
}

export interface LogSelection {
  files: LogFile[];
  /** Rotated copies that cannot be read (a compression other than gzip), one line each. */
  skipped: string[];
}

/** The rotation number of `mail.log.3[.gz]` (0 for the live log and dated copies): a tie-break of equal mtimes. */
function rotationNumber(name: string, live: string): number {
  const m = new RegExp(`^${live.replace(/[.]/g, '\\.')}\\.(\\d+)`).exec(name);
  return m ? Number(m[1]) : 0;
}

/**
 * mail.log and its rotated copies, oldest first (by the time they were last written, then the
 * higher rotation number first). `sinceMs`: leave out copies last written before it.
 */
export async function selectMailLogs(mailLog: string, sinceMs: number | null): Promise<LogSelection> {
  const dir = dirname(mailLog);
  const live = basename(mailLog);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { files: [], skipped: [] };
    throw err;
  }
  const files: Array<LogFile & { rotation: number }> = [];
  const skipped: string[] = [];
  for (const name of names) {
    if (name !== live && !(name.startsWith(`${live}.`) || name.startsWith(`${live}-`))) continue;
    if (name !== live && !isRotatedLog(name)) continue;
    const path = join(dir, name);
    if (/\.(bz2|xz|zst|lz4|Z)$/.test(name)) {
      skipped.push(`${path}: only gzip-compressed copies can be read; decompress it to include it`);
      continue;
    }
    const st = await stat(path).catch(() => null);
    if (!st?.isFile()) continue;
    if (sinceMs !== null && st.mtimeMs < sinceMs) continue;
    files.push({ path, size: st.size, mtimeMs: st.mtimeMs, rotation: rotationNumber(name, live) });
  }
  files.sort((a, b) => a.mtimeMs - b.mtimeMs || b.rotation - a.rotation);
  return { files: files.map(({ path, size, mtimeMs }) => ({ path, size, mtimeMs })), skipped };
}

/**
 * Calls `line` for every line of `file` (without its line feed; a last line without one too), and
 * `progress` with the bytes of the file read so far (compressed bytes for a .gz).
 */
export async function readLines(file: string, line: (text: string) => void, progress?: (bytes: number) => void): Promise<void> {
  const raw = createReadStream(file, { highWaterMark: 1 << 20 });
  let bytes = 0;
  const gzip = file.endsWith('.gz');
  const source = gzip ? raw.pipe(createGunzip()) : raw;
  if (gzip) {
    // pipe() reads the file with 'data' events already: one more listener counts the bytes.
    raw.on('data', (chunk) => progress?.((bytes += chunk.length)));
    raw.on('error', (err) => source.destroy(err));
  }
  // Only whole lines are decoded: the bytes after a chunk's last line feed wait for the next chunk
  // (a UTF-8 character is never cut in two that way).
  let carry: Buffer = Buffer.alloc(0);
  for await (const chunk of source as AsyncIterable<Buffer>) {
    if (!gzip) progress?.((bytes += chunk.length));
    const last = chunk.lastIndexOf(0x0a);
    if (last < 0) {
      carry = Buffer.concat([carry, chunk]);
      continue;
    }
    const text = (carry.length ? Buffer.concat([carry, chunk.subarray(0, last)]) : chunk.subarray(0, last)).toString('utf8');
    carry = Buffer.from(chunk.subarray(last + 1));
    let start = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
      line(text.slice(start, nl));
      start = nl + 1;
    }
    line(text.slice(start));
  }
  if (carry.length) line(carry.toString('utf8'));
}
