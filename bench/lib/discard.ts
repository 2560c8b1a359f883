// Removes a benchmark's instance directory, or, with BENCH_TRASH=DIR, moves it there to be
// deleted after a series of runs. On ext4 without a journal, deleting thousands of files makes
// every file creation of the next few minutes slower (docs/BENCHMARKS.md, "Durable enqueue"):
// runs compared with each other should not pay for their predecessors' clean-up.
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';

export function discardDir(dir: string): void {
  const trash = process.env.BENCH_TRASH;
  if (trash) {
    try {
      mkdirSync(trash, { recursive: true });
      renameSync(dir, join(trash, `${basename(dir)}-${process.pid}-${Date.now()}`));
      return;
    } catch {
      // another file system, or no such directory: delete it after all
    }
  }
  rmSync(dir, { recursive: true, force: true });
}
