// Writes etc/users for `imsimta passwd`: the new text goes to etc/.users.new, created
// exclusively so it doubles as the lock (as vipw's /etc/ptmp: two runs at once cannot lose one
// another's change), fsynced, given the old file's mode and owner (a new file: 0600, and as root
// the owner of etc/, the instance's user), then renamed over etc/users and the directory fsynced.
// A reader — the watcher, a server process starting — sees the old file or the new, never half.
import { open, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { applyUserChange, type UserChange } from './users-edit.js';

export class UsersFileError extends Error {}

export interface UsersFileUpdate {
  action: 'created' | 'updated';
  line: number;
}

/** The lock and temporary file next to `path`. */
export function usersTempPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.new`);
}

export async function updateUsersFile(path: string, name: string, change: UserChange): Promise<UsersFileUpdate> {
  const tmp = usersTempPath(path);
  let fh: FileHandle;
  try {
    fh = await open(tmp, 'wx', 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new UsersFileError(`${tmp} exists: another imsimta passwd is running, or one was interrupted (remove the file if none is running)`);
    throw new UsersFileError(`cannot create ${tmp}: ${code ?? (err as Error).message}`);
  }
  let renamed = false;
  try {
    const old = await currentFile(path);
    const edit = applyUserChange(old.text, name, change);
    if (!edit.ok) throw new UsersFileError(`${path}: ${edit.error}`);
    await fh.writeFile(edit.text, 'utf8');
    await fh.chmod(old.mode);
    await keepOwner(fh, old.owner, path);
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
    renamed = true;
    await syncDirectory(dirname(path));
    return { action: edit.action, line: edit.line };
  } finally {
    if (!renamed) {
      await fh.close().catch(() => {});
      await unlink(tmp).catch(() => {});
    }
  }
}

interface CurrentFile {
  text: string;
  mode: number;
  /** Who must own the new file; null: whoever runs the command. */
  owner: { uid: number; gid: number } | null;
}

async function currentFile(path: string): Promise<CurrentFile> {
  try {
    const st = await stat(path);
    return { text: await readFile(path, 'utf8'), mode: st.mode & 0o7777, owner: { uid: st.uid, gid: st.gid } };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new UsersFileError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  // A new file: as root, it belongs to the instance's user (the owner of etc/), who runs the MTA.
  const etc = await stat(dirname(path));
  return { text: '', mode: 0o600, owner: process.getuid?.() === 0 ? { uid: etc.uid, gid: etc.gid } : null };
}

async function keepOwner(fh: FileHandle, owner: CurrentFile['owner'], path: string): Promise<void> {
  if (!owner) return;
  const now = await fh.stat();
  if (now.uid === owner.uid && now.gid === owner.gid) return;
  try {
    await fh.chown(owner.uid, owner.gid);
  } catch (err) {
    throw new UsersFileError(`cannot give the new ${path} its owner ${owner.uid}:${owner.gid} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): run imsimta passwd as root or as the file's owner`);
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

