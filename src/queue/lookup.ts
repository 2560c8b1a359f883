// The queue entries behind a group of the status page (its page lists the messages of one
// deferral or return reason): for the queue ids asked for, whether each is still queued, held,
// how many attempts it had and when it is next due, read from the channel directories named and
// the queue files' headers. Read-only, unlike the queue's own scans: nothing is set aside, a file
// that does not parse or went away meanwhile reads as not queued. For the metrics endpoint's
// group page (asked by the watcher's side of it), kept here so that only src/queue knows the layout.
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isSubdirName, isTemporaryName, parseQueueFileName } from './file-name.js';
import { readQueueFileHeader } from './queue-file-reader.js';
import { isValidChannelName } from './store.js';

export interface QueuedEntry {
  id: string;
  channel: string;
  held: boolean;
  attempts: number;
  /** ISO time; null: due at once. */
  nextAttempt: string | null;
  /** Recipients still pending. */
  pending: string[];
}

/** At most this many files' headers are read for one page. */
const MAX_READS = 200;

export async function lookupQueued(queueDir: string, wanted: Array<{ id: string; channel: string }>): Promise<Map<string, QueuedEntry>> {
  const found = new Map<string, QueuedEntry>();
  const byChannel = new Map<string, Set<string>>();
  for (const w of wanted) {
    if (!isValidChannelName(w.channel)) continue;
    const ids = byChannel.get(w.channel) ?? new Set<string>();
    ids.add(w.id.toUpperCase());
    byChannel.set(w.channel, ids);
  }
  let reads = 0;
  for (const [channel, ids] of byChannel) {
    for (const { dir, name } of await listQueueFiles(join(queueDir, channel))) {
      const parsed = parseQueueFileName(name);
      if (!parsed || !ids.has(parsed.id) || reads >= MAX_READS) continue;
      reads++;
      const path = join(dir, name);
      try {
        const fh = await open(path, 'r');
        try {
          const { envelope } = await readQueueFileHeader(fh, path, parsed.held);
          found.set(parsed.id, {
            id: parsed.id,
            channel,
            held: parsed.held,
            attempts: envelope.attempts,
            nextAttempt: envelope.nextAttempt ? envelope.nextAttempt.toISOString() : null,
            pending: envelope.recipients.filter((r) => r.state === 'pending').map((r) => r.address),
          });
        } finally {
          await fh.close();
        }
      } catch {
        // gone (delivered meanwhile) or unreadable: not listed as queued
      }
    }
  }
  return found;
}

async function listQueueFiles(channelDir: string): Promise<Array<{ dir: string; name: string }>> {
  const out: Array<{ dir: string; name: string }> = [];
  const entries = await readdir(channelDir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    if (isTemporaryName(e.name)) continue;
    if (e.isDirectory()) {
      if (!isSubdirName(e.name)) continue;
      const inner = await readdir(join(channelDir, e.name)).catch(() => [] as string[]);
      for (const name of inner) if (!isTemporaryName(name)) out.push({ dir: join(channelDir, e.name), name });
    } else {
      out.push({ dir: channelDir, name: e.name });
    }
  }
  return out;
}
