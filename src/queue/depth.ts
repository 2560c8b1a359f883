// Queue depth and the age of the oldest message per channel, from the queue directories' names
// alone: a queue id starts with its creation time (base-36 milliseconds), so neither a file nor
// (but for the rare id that does not parse) a stat is read. Read-only: unlike a full queue scan
// it never sets anything aside. Counts what `imsimta qm summarize` counts as messages. For the
// metrics endpoint (src/metrics/gather.ts), kept here so that only src/queue knows the layout.
import { readdir, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { isSubdirName, isTemporaryName, parseQueueFileName } from './file-name.js';
import { isValidChannelName } from './store.js';
import { queueIdTimeMs } from './message-id.js';

export interface ChannelQueueDepth {
  channel: string;
  /** Queue files, held ones included. */
  messages: number;
  held: number;
  /** Creation time of the oldest message (ms since the epoch), null when the queue is empty. */
  oldestMs: number | null;
}


/** Every channel that has a directory or is named in `channelNames`, sorted, empty ones with zeros. */
export async function readQueueDepth(queueDir: string, channelNames: Iterable<string> = []): Promise<ChannelQueueDepth[]> {
  const byName = new Map<string, ChannelQueueDepth>();
  for (const name of channelNames) byName.set(name, { channel: name, messages: 0, held: 0, oldestMs: null });
  for (const name of await listDirs(queueDir)) {
    if (isTemporaryName(name) || !isValidChannelName(name)) continue;
    const depth = byName.get(name) ?? { channel: name, messages: 0, held: 0, oldestMs: null };
    byName.set(name, depth);
    await countDir(join(queueDir, name), depth, true);
  }
  return [...byName.values()].sort((a, b) => a.channel.localeCompare(b.channel));
}

async function countDir(dir: string, depth: ChannelQueueDepth, descend: boolean): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return; // removed meanwhile, or unreadable: the queue's own scans report that
  }
  for (const e of entries) {
    if (isTemporaryName(e.name)) continue;
    if (e.isDirectory()) {
      if (descend && isSubdirName(e.name)) await countDir(join(dir, e.name), depth, false);
      continue;
    }
    const parsed = parseQueueFileName(e.name);
    if (!parsed) continue;
    depth.messages++;
    if (parsed.held) depth.held++;
    const born = queueIdTimeMs(parsed.id) ?? (await lstat(join(dir, e.name)).then((st) => st.mtimeMs, () => null));
    if (born !== null && (depth.oldestMs === null || born < depth.oldestMs)) depth.oldestMs = born;
  }
}

async function listDirs(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}
