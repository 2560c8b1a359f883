// Finding a queued message's file when the name recorded for it may be out of date: the name
// carries the attempt count, which changes at every deferral (file-name.ts).
import { access, readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parseQueueFileName } from './file-name.js';

/**
 * The file of a message as of now: `ref.path`, or (its attempt count changed since that path was
 * recorded) the scheduled file of the same id in the same directory — a message never moves
 * between directories. null when it is gone or held.
 */
export async function locateQueueFile(ref: { id: string; path: string }): Promise<string | null> {
  const parsed = parseQueueFileName(basename(ref.path));
  if (parsed && !parsed.held && (await exists(ref.path))) return ref.path;
  try {
    const name = (await readdir(dirname(ref.path))).find((n) => {
      const p = parseQueueFileName(n);
      return p !== null && p.id === ref.id && !p.held;
    });
    return name ? join(dirname(ref.path), name) : null;
  } catch {
    return null;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
