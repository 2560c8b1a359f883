// Channels stopped with `imsimta qm stop CHANNEL`: kept in <root>/queue/.stopped-channels, one
// channel per line, so that the job controller honours them across restarts: state of the queue,
// kept with it. Not in run/, which holds only what lives as long as the running processes and is
// empty after stop-msg; a file left in run/stopped-channels by an
// earlier version is still read, and moved on the next change. A dot name in queue/ is never a
// channel. Messages to a stopped channel are still accepted and queued; only delivery waits until
// `qm start`.
import { readFile, rename, mkdir, open, unlink } from 'node:fs/promises';
import { join } from 'node:path';

function stoppedChannelsPath(root: string): string {
  return join(root, 'queue', '.stopped-channels');
}

/** Where versions before the move kept the list. */
function legacyPath(root: string): string {
  return join(root, 'run', 'stopped-channels');
}

/** The stopped channels (empty when none or the file is missing). Blank lines and `#` comments are ignored. */
export async function readStoppedChannels(root: string): Promise<string[]> {
  for (const path of [stoppedChannelsPath(root), legacyPath(root)]) {
    try {
      return parseStoppedChannels(await readFile(path, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return [];
}

export function parseStoppedChannels(text: string): string[] {
  const out = new Set<string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line && !line.startsWith('#')) out.add(line);
  }
  return [...out].sort();
}

/** Replaces the file atomically (temporary file, fsync, rename); the legacy file in run/ goes. */
export async function writeStoppedChannels(root: string, channels: Iterable<string>): Promise<void> {
  const path = stoppedChannelsPath(root);
  await mkdir(join(root, 'queue'), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  const list = [...new Set(channels)].sort();
  const fh = await open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(list.map((c) => c + '\n').join(''));
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fh.close();
  await rename(tmp, path);
  await unlink(legacyPath(root)).catch(() => {});
}

/** Adds or removes one channel; returns whether the set changed. */
export async function setChannelStopped(root: string, channel: string, stopped: boolean): Promise<boolean> {
  const current = new Set(await readStoppedChannels(root));
  if (current.has(channel) === stopped) return false;
  if (stopped) current.add(channel);
  else current.delete(channel);
  await writeStoppedChannels(root, current);
  return true;
}
