// Rewrites a secret file of etc/ (the users file, the SRS secrets) for the commands that edit one:
// the new text goes to `.NAME.new` next to it, created exclusively so it doubles as the lock (as
// vipw's /etc/ptmp: two runs at once cannot lose one another's change), fsynced, given the old
// file's mode and owner (a new file: 0600; made by root, the owner of etc/ and, when the instance
// runs as a service user, 0640 in that user's group so the server processes can read it), then
// renamed over the file and the directory fsynced. A reader — the watcher, a server process
// starting — sees the old file or the new, never half, and never a moment readable by others.
import { open, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export class SecretFileError extends Error {}

/** The lock and temporary file next to `path`. */
function secretTempPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.new`);
}

/**
 * Replaces `path` with `edit(current text)` ('' when there is no file yet); `edit` throws
 * SecretFileError to give up. `serviceGid`: the group of the service user the instance runs as.
 * `command` names the command in messages (`imsimta passwd`).
 */
export async function rewriteSecretFile<T>(path: string, edit: (text: string, exists: boolean) => { text: string; result: T }, serviceGid: number | null, command: string): Promise<T> {
  const tmp = secretTempPath(path);
  let fh: FileHandle;
  try {
    fh = await open(tmp, 'wx', 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new SecretFileError(`${tmp} exists: another ${command} is running, or one was interrupted (remove the file if none is running)`);
    throw new SecretFileError(`cannot create ${tmp}: ${code ?? (err as Error).message}`);
  }
  let renamed = false;
  try {
    const old = await currentFile(path, serviceGid);
    const { text, result } = edit(old.text, old.exists);
    await fh.writeFile(text, 'utf8');
    await fh.chmod(old.mode);
    await keepOwner(fh, old.owner, path, command);
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
    renamed = true;
    await syncDirectory(dirname(path));
    return result;
  } finally {
    if (!renamed) {
      await fh.close().catch(() => {});
      await unlink(tmp).catch(() => {});
    }
  }
}

interface CurrentFile {
  text: string;
  exists: boolean;
  mode: number;
  /** Who must own the new file; null: whoever runs the command. */
  owner: { uid: number; gid: number } | null;
}

async function currentFile(path: string, serviceGid: number | null): Promise<CurrentFile> {
  try {
    const st = await stat(path);
    return { text: await readFile(path, 'utf8'), exists: true, mode: st.mode & 0o7777, owner: { uid: st.uid, gid: st.gid } };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new SecretFileError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  // A new file: as root, it belongs to the owner of etc/, readable by the service user's group.
  const etc = await stat(dirname(path));
  if (process.getuid?.() !== 0) return { text: '', exists: false, mode: 0o600, owner: null };
  if (serviceGid === null) return { text: '', exists: false, mode: 0o600, owner: { uid: etc.uid, gid: etc.gid } };
  return { text: '', exists: false, mode: 0o640, owner: { uid: etc.uid, gid: serviceGid } };
}

async function keepOwner(fh: FileHandle, owner: CurrentFile['owner'], path: string, command: string): Promise<void> {
  if (!owner) return;
  const now = await fh.stat();
  if (now.uid === owner.uid && now.gid === owner.gid) return;
  try {
    await fh.chown(owner.uid, owner.gid);
  } catch (err) {
    throw new SecretFileError(`cannot give the new ${path} its owner ${owner.uid}:${owner.gid} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): run ${command} as root or as the file's owner`);
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
