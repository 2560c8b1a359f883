// Fills a small test file system (a tmpfs the test mounted) with one file, to its last pages: for
// the disk-full tests of the queue.
import { closeSync, openSync, writeSync } from 'node:fs';

/** Writes `path` until ENOSPC (its last pages too). */
export function fillFileSystem(path: string): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(256 * 1024, 0x7a);
  try {
    for (const size of [chunk.length, 4096, 512]) {
      try {
        for (;;) writeSync(fd, chunk, 0, size);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      }
    }
  } finally {
    closeSync(fd);
  }
}
