// Maildir delivery (the qmail/Courier layout): write tmp/<name>, fsync it, link it into new/,
// fsync new/, remove the tmp name. Names are unique per host, process, thread and delivery:
// `<seconds>.<pid>_<thread>_<counter>.<host>`.
import { promises as fs, constants } from 'node:fs';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { writeFully } from '../common/write-fully.js';

let counter = 0;

export function uniqueName(host: string, now = Date.now()): string {
  // Maildir forbids '/' and ':' in names; escape them as Courier does.
  const safeHost = host.replace(/\//g, '\\057').replace(/:/g, '\\072');
  return `${Math.floor(now / 1000)}.${process.pid}_${threadId}_${++counter}.${safeHost}`;
}

/** Makes <dir>/{tmp,new,cur} (and <dir>) when missing. */
export async function ensureMaildir(dir: string): Promise<void> {
  for (const sub of ['tmp', 'new', 'cur']) await fs.mkdir(join(dir, sub), { recursive: true, mode: 0o700 });
}

/**
 * Delivers `header` followed by `body` into the Maildir at `dir`; returns the file name in new/.
 * Nothing appears in new/ unless it is complete and on disk.
 */
export async function deliverToMaildir(dir: string, host: string, header: string, body: NodeJS.ReadableStream): Promise<string> {
  const name = uniqueName(host);
  const tmpPath = join(dir, 'tmp', name);
  const newPath = join(dir, 'new', name);
  const fh = await fs.open(tmpPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  let linked = false;
  try {
    try {
      // Every byte or an error: a filling disk makes a write short without one (write-fully.ts).
      await writeFully(fh.fd, [Buffer.from(header)]);
      for await (const chunk of body as AsyncIterable<Buffer | string>) await writeFully(fh.fd, [typeof chunk === 'string' ? Buffer.from(chunk) : chunk]);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.link(tmpPath, newPath);
    linked = true;
    await syncDir(join(dir, 'new'));
  } finally {
    await fs.unlink(tmpPath).catch(() => {});
    if (!linked) await fs.unlink(newPath).catch(() => {});
  }
  return name;
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
