// What start-msg does as root before it switches to the service user: the directories the
// processes write (queue/, log/, run/, flush/, corrupt/, tls/, mailbox/) are given to the service user
// (files an earlier run as root left there too), and the instance directory and etc/ are checked
// to be reachable and readable by it, so that a problem is one line now rather than a failure
// after the switch. Mailboxes owned by another (non-root) user are left as they are.
import { chownSync, lstatSync, mkdirSync, readdirSync, statSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import type { InstancePaths } from './instance.js';
import type { ServiceUser } from './service-user.js';

/** The directories the processes write in, owned by the service user. */
export function serviceDirectories(paths: InstancePaths): string[] {
  return [paths.queue, paths.log, paths.run, join(paths.root, 'flush'), paths.corrupt, paths.tls, paths.mailbox];
}

const READ = 4;
const SEARCH = 1;

/** Whether `user` may read/write/search (`want`, bits 4/2/1) a file with this owner and mode, as the kernel decides for a non-root user. */
export function canAccess(st: Pick<Stats, 'uid' | 'gid' | 'mode'>, user: Pick<ServiceUser, 'uid' | 'groups'>, want: number): boolean {
  const bits = st.uid === user.uid ? (st.mode >> 6) & 7 : user.groups.includes(st.gid) ? (st.mode >> 3) & 7 : st.mode & 7;
  return (bits & want) === want;
}

function describe(path: string, st: Stats): string {
  return `${path} (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}, owner uid ${st.uid}, group gid ${st.gid})`;
}

/**
 * Checks that `user` can reach the instance and the program (`programDir`, the package) and read
 * the configuration (`readable`: the files it must read, e.g. etc/* and the TLS key). Throws the
 * operator's line otherwise.
 */
export function checkInstanceAccess(paths: InstancePaths, user: ServiceUser, readable: string[], programDir: string): void {
  for (const [start, what] of [[paths.root, 'the instance (IMTA_ROOT)'], [programDir, 'the program']] as const) {
    for (let dir = start; ; dir = dirname(dir)) {
      const st = statSync(dir);
      if (!canAccess(st, user, SEARCH)) {
        throw new Error(`the service user ${user.name} cannot reach ${describe(dir, st)}: allow it (chmod o+x ${dir}) or put ${what} elsewhere`);
      }
      if (dirname(dir) === dir) break;
    }
  }
  for (const file of readable) {
    let st: Stats;
    try {
      st = statSync(file);
    } catch {
      continue; // a missing file is the configuration check's to report
    }
    const need = st.isDirectory() ? READ | SEARCH : READ;
    if (!canAccess(st, user, need)) {
      throw new Error(`the service user ${user.name} cannot read ${describe(file, st)}: make it readable by ${user.name} (for a secret, chgrp ${user.name} and chmod 0640)`);
    }
  }
}

/**
 * Creates the directories the processes write and gives them, with what is in them, to `user`.
 * Under mailbox/ only what root owns is given (an earlier run as root delivered as root);
 * a mailbox another user owns stays theirs.
 */
export function giveDirectoriesTo(paths: InstancePaths, user: ServiceUser): void {
  for (const dir of serviceDirectories(paths)) {
    mkdirSync(dir, { recursive: true });
    chownTree(dir, user, dir === paths.mailbox ? (st) => st.uid === 0 : () => true, true);
  }
}

function chownTree(path: string, user: ServiceUser, take: (st: Stats) => boolean, top = false): void {
  const st = lstatSync(path);
  if (st.isSymbolicLink()) return; // never follow a link out of the instance
  if (!top && !take(st)) return;
  if (st.uid !== user.uid || st.gid !== user.gid) chownSync(path, user.uid, user.gid);
  if (!st.isDirectory()) return;
  for (const name of readdirSync(path)) chownTree(join(path, name), user, take);
}
