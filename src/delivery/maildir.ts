// Maildir delivery (the qmail/Courier layout): write tmp/<name>, fsync it, link it into new/
// (rename, when the file was given away), fsync new/, remove the tmp name. Names are unique per
// host, process, thread and delivery: `<seconds>.<pid>_<thread>_<counter>.<host>`. Files have
// LF line ends, as Postfix's local and Dovecot write them (the queue keeps the CRLF of the wire);
// every other octet is kept.
// Files are written by the process's user (the service user when started as root): a mailbox
// directory it owns gets 0700 directories and 0600 files, its own. A mailbox directory another
// user owns and lets it write through the directory's group gets setgid 2770 directories in that
// group, and files that are the owner's, 0600 (fchown on the open file before it is renamed into
// new/) when this process holds CAP_CHOWN (the job controller keeps it when started as root,
// capabilities.ts); without it (started as an ordinary user), files of its own, 0640 in the
// directory's group, so that the owner reads them through the group.
// An empty mailbox directory of root's (root ran `mkdir mailbox/joe` after the start) is
// replaced by its own, in one rename, when mailbox/ is its own.
import { promises as fs, constants, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { processHasCapability } from '../common/capabilities.js';
import { writeFully } from '../common/write-fully.js';

let counter = 0;

function uniqueName(host: string, now = Date.now()): string {
  // Maildir forbids '/' and ':' in names; escape them as Courier does.
  const safeHost = host.replace(/\//g, '\\057').replace(/:/g, '\\072');
  return `${Math.floor(now / 1000)}.${process.pid}_${threadId}_${++counter}.${safeHost}`;
}

export interface MaildirModes {
  dirMode: number;
  fileMode: number;
  /** The group files and directories get; null: this process's. */
  gid: number | null;
  /** Whom a delivered file is given to (the mailbox directory's owner and group); null: it stays this process's. */
  fileOwner: { uid: number; gid: number } | null;
}

/**
 * The modes of what is made in a mailbox directory with this owner, by a process of user `uid`
 * that can (`canChown`) or cannot give files away.
 */
export function maildirModes(mailboxDir: Pick<Stats, 'uid' | 'gid'>, uid: number, canChown: boolean): MaildirModes {
  if (mailboxDir.uid === uid) return { dirMode: 0o700, fileMode: 0o600, gid: null, fileOwner: null };
  if (canChown) return { dirMode: 0o2770, fileMode: 0o600, gid: mailboxDir.gid, fileOwner: { uid: mailboxDir.uid, gid: mailboxDir.gid } };
  return { dirMode: 0o2770, fileMode: 0o640, gid: mailboxDir.gid, fileOwner: null };
}

function processUid(): number {
  return process.getuid?.() ?? -1;
}

let chownCapable: boolean | null = null;

/** Whether this process (thread) can give files to another user: read once, capabilities do not change. */
function canChown(): boolean {
  chownCapable ??= processHasCapability('chown');
  return chownCapable;
}

/** Makes <dir>/{tmp,new,cur} (and <dir>) when missing. */
export async function ensureMaildir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  let owner = await fs.stat(dir);
  if (owner.uid !== processUid() && (await adoptEmptyMailbox(dir, owner))) owner = await fs.stat(dir);
  const modes = maildirModes(owner, processUid(), canChown());
  for (const sub of ['tmp', 'new', 'cur']) {
    const path = join(dir, sub);
    try {
      await fs.mkdir(path, { mode: modes.dirMode });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw err;
    }
    if (modes.gid !== null) {
      await fs.chown(path, -1, modes.gid);
      await fs.chmod(path, modes.dirMode); // mkdir leaves out the setgid bit
    }
  }
}

/**
 * An empty mailbox directory of root's, in a mailbox/ this process owns, replaced by a Maildir
 * of its own (rename onto an empty directory is atomic). False when it is not so.
 */
async function adoptEmptyMailbox(dir: string, owner: Stats): Promise<boolean> {
  const parent = await fs.stat(dirname(dir));
  // Only root's: a mailbox another user owns stays theirs.
  if (parent.uid !== processUid() || owner.uid !== 0 || processUid() === 0) return false;
  if ((await fs.readdir(dir).catch(() => null))?.length !== 0) return false;
  const fresh = join(dirname(dir), `.adopt.${basename(dir)}.${process.pid}.${threadId}`);
  try {
    await fs.mkdir(fresh, { mode: 0o755 });
    for (const sub of ['tmp', 'new', 'cur']) await fs.mkdir(join(fresh, sub), { mode: 0o700 });
    await fs.rename(fresh, dir);
    return true;
  } catch {
    await fs.rm(fresh, { recursive: true, force: true }).catch(() => {});
    return false;
  }
}

/**
 * CRLF → LF across the chunks of a stream: a CR that ends one chunk waits for the next to know
 * whether an LF follows it. A CR or LF alone is kept as it is.
 */
export class CrlfToLf {
  private pendingCr = false;

  push(chunk: Buffer): Buffer {
    let data = this.pendingCr ? Buffer.concat([CR, chunk]) : chunk;
    this.pendingCr = data.length > 0 && data[data.length - 1] === 0x0d;
    if (this.pendingCr) data = data.subarray(0, data.length - 1);
    let at = data.indexOf(CRLF);
    if (at < 0) return data;
    const parts: Buffer[] = [];
    let from = 0;
    for (; at >= 0; at = data.indexOf(CRLF, at + 2)) {
      parts.push(data.subarray(from, at));
      from = at + 1; // keep the LF
    }
    parts.push(data.subarray(from));
    return Buffer.concat(parts);
  }

  /** What is still held back at the end of the input (a final lone CR). */
  end(): Buffer {
    const rest = this.pendingCr ? CR : Buffer.alloc(0);
    this.pendingCr = false;
    return rest;
  }
}

const CR = Buffer.from('\r');
const CRLF = Buffer.from('\r\n');

/**
 * Delivers `header` followed by `body` (the queued message, CRLF lines) into the Maildir at
 * `dir`, with LF line ends; returns the file name in new/. Nothing appears in new/ unless it is
 * complete and on disk.
 */
export async function deliverToMaildir(dir: string, host: string, header: string, body: Buffer | NodeJS.ReadableStream): Promise<string> {
  const name = uniqueName(host);
  const tmpPath = join(dir, 'tmp', name);
  const newPath = join(dir, 'new', name);
  const modes = maildirModes(await fs.stat(dir), processUid(), canChown());
  const fh = await fs.open(tmpPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, modes.fileMode);
  let linked = false;
  try {
    try {
      // chmod first: once the file is given away, only its new owner (or CAP_FOWNER) may chmod it.
      await fh.chmod(modes.fileMode); // the umask may have taken bits away
      // The descriptor stays writable after the file changes hands.
      if (modes.fileOwner) await fh.chown(modes.fileOwner.uid, modes.fileOwner.gid);
      else if (modes.gid !== null) await fh.chown(-1, modes.gid);
      const lf = new CrlfToLf();
      // Every byte or an error: a filling disk makes a write short without one (write-fully.ts).
      await writeFully(fh.fd, [lf.push(Buffer.from(header, 'utf8'))]);
      const chunks: AsyncIterable<Buffer | string> | Buffer[] = Buffer.isBuffer(body) ? [body] : (body as AsyncIterable<Buffer | string>);
      for await (const chunk of chunks) await writeFully(fh.fd, [lf.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk)]);
      await writeFully(fh.fd, [lf.end()]);
      await fh.sync();
    } finally {
      await fh.close();
    }
    // A file given away cannot be linked (fs.protected_hardlinks refuses a link to another user's
    // file this process cannot read and write): it is renamed, which cannot replace anything
    // either, as the name is this process's, thread's and delivery's alone.
    if (modes.fileOwner) await fs.rename(tmpPath, newPath);
    else await fs.link(tmpPath, newPath);
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
