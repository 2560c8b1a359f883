// Writes that either complete or fail. write(2) may write fewer bytes than asked without an error:
// a file system that fills up mid-write returns what still fitted (tmpfs and ext4 both do), and
// only the next call reports ENOSPC. Node's fs.write/writev and FileHandle.write/writev hand that
// short count back and stop, so a caller that does not loop keeps a truncated file and believes it
// whole. Everything that must be whole on disk (queue files, Maildir messages, journals, logs)
// is written through these loops, which write the rest and so meet the error the short count hid.
import { writev, writevSync } from 'node:fs';
import { promisify } from 'node:util';

const writevAsync = promisify(writev);

/**
 * Writes every buffer in full, at `position` (null: the file position, as with O_APPEND), through
 * libuv's thread pool.
 */
export async function writeFully(fd: number, chunks: readonly Buffer[], position: number | null = null): Promise<void> {
  let pending = chunks.filter((c) => c.length > 0);
  let at = position;
  while (pending.length > 0) {
    const { bytesWritten } = await writevAsync(fd, pending, at ?? undefined);
    if (at !== null) at += bytesWritten;
    pending = unwritten(pending, bytesWritten);
  }
}

/** The same on the caller's thread (small writes into the page cache). */
export function writeFullySync(fd: number, chunks: readonly Buffer[], position: number | null = null): void {
  let pending = chunks.filter((c) => c.length > 0);
  let at = position;
  while (pending.length > 0) {
    const written = writevSync(fd, pending, at ?? undefined);
    if (at !== null) at += written;
    pending = unwritten(pending, written);
  }
}

/**
 * What is left of `chunks` after `written` bytes. A write that made no progress at all is an error
 * (it would loop forever): EIO, as the kernel gives for a device that stops taking data.
 */
function unwritten(chunks: readonly Buffer[], written: number): Buffer[] {
  const total = chunks.reduce((n, c) => n + c.length, 0);
  if (written >= total) return [];
  if (written <= 0) throw Object.assign(new Error('write made no progress (short write)'), { code: 'EIO' });
  const out: Buffer[] = [];
  let skip = written;
  for (const c of chunks) {
    if (skip >= c.length) {
      skip -= c.length;
      continue;
    }
    out.push(c.subarray(skip));
    skip = 0;
  }
  return out;
}
