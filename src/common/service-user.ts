// The service user: when tsubame is started as root, every long-running process runs as this
// unprivileged user (option.dat SERVER_USER, default `tsubame`; Messaging Server's mail server
// user, `mailsrv`). The switch is made by util-linux's setpriv when the watcher is started: the
// watcher keeps CAP_NET_BIND_SERVICE and CAP_CHOWN in the ambient set and passes on to each part
// only what it needs (capabilities.ts): the dispatcher CAP_NET_BIND_SERVICE (so a restarted
// dispatcher and a reload can bind ports below 1024), the job controller CAP_CHOWN (Maildir files
// given to the mailbox's owner); the SMTP server processes get none (forkOptionsKeeping).
// Pure parts (parsing, argument lists) are exported for tests; the look-ups read the system.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { capabilitiesToKeep, setprivCapabilityArgs, SERVICE_CAPABILITIES, type Capability } from './capabilities.js';

const DEFAULT_SERVER_USER = 'tsubame';

export interface ServiceUser {
  name: string;
  uid: number;
  /** Primary group. */
  gid: number;
  /** Every group id it is a member of (primary first). */
  groups: number[];
}

/** The name to run as: TSUBAME_SERVER_USER (environment) over option.dat SERVER_USER over `tsubame`. */
export function serverUserName(options: Record<string, string>, env: NodeJS.ProcessEnv = process.env): string {
  return (env.TSUBAME_SERVER_USER ?? options.SERVER_USER ?? '').trim() || DEFAULT_SERVER_USER;
}

/** A passwd(5) line (as `getent passwd NAME` prints it) → the user, or null when it is not one. */
export function parsePasswdLine(line: string): Omit<ServiceUser, 'groups'> | null {
  const f = line.trim().split(':');
  if (f.length < 7) return null;
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (!f[0] || !Number.isInteger(uid) || !Number.isInteger(gid) || f[2] === '' || f[3] === '') return null;
  return { name: f[0], uid, gid };
}

/** The user named `name` (through NSS, so LDAP users count), or null when there is none. */
export function lookupUser(name: string): ServiceUser | null {
  let entry: Omit<ServiceUser, 'groups'> | null = null;
  try {
    entry = parsePasswdLine(execFileSync('getent', ['passwd', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0] ?? '');
  } catch {
    // getent exits 2 for an unknown name; without getent, /etc/passwd is all there is.
    if (!commandPath('getent')) {
      for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
        const e = parsePasswdLine(line);
        if (e?.name === name) entry = e;
      }
    }
  }
  if (!entry) return null;
  let groups = [entry.gid];
  try {
    const ids = execFileSync('id', ['-G', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split(/\s+/).map(Number);
    groups = [entry.gid, ...ids.filter((g) => Number.isInteger(g) && g !== entry.gid)];
  } catch {
    /* the primary group alone */
  }
  return { ...entry, groups };
}

/** The line an operator sees when the service user is missing. */
export function missingUserMessage(name: string): string {
  return `the service user "${name}" does not exist (option.dat SERVER_USER); create it with ` +
    `\`useradd --system --user-group --home-dir /nonexistent --shell /usr/sbin/nologin ${name}\` ` +
    '(npm start does this), or name an existing unprivileged user in SERVER_USER';
}

/** Where an executable is on PATH, or null. */
export function commandPath(name: string, path: string = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'): string | null {
  for (const dir of path.split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return null;
}

/**
 * setpriv's arguments (before the program) that switch to `user` with its groups, keeping `caps`
 * (ambient, so the programs it starts have them too).
 */
export function switchUserArgs(user: ServiceUser, caps: readonly Capability[]): string[] {
  return [`--reuid=${user.uid}`, `--regid=${user.gid}`, `--groups=${user.groups.join(',')}`, ...setprivCapabilityArgs(caps), '--'];
}

/** Options for child_process.fork that start a Node module as `user` with the capabilities its parts need (the watcher). */
export function forkAsServiceUser(user: ServiceUser): { execPath: string; execArgv: string[] } {
  return { execPath: commandPath('setpriv') ?? 'setpriv', execArgv: [...switchUserArgs(user, SERVICE_CAPABILITIES), process.execPath, ...process.execArgv] };
}

/**
 * Options for child_process.fork that start the child with no more of this process's ambient
 * capabilities than `keep`: the dispatcher keeps CAP_NET_BIND_SERVICE, the job controller
 * CAP_CHOWN, the SMTP server processes nothing. Empty when there is nothing to give up (started
 * as an ordinary user, or as root without the switch: root's children are root).
 */
export function forkOptionsKeeping(keep: readonly Capability[]): { execPath?: string; execArgv?: string[] } {
  if (process.platform !== 'linux') return {};
  let status: string;
  try {
    status = readFileSync('/proc/self/status', 'utf8');
  } catch {
    return {};
  }
  const kept = capabilitiesToKeep(status, keep);
  if (!kept) return {};
  const setpriv = commandPath('setpriv');
  if (!setpriv) return {};
  return { execPath: setpriv, execArgv: [...setprivCapabilityArgs(kept), '--', process.execPath, ...process.execArgv] };
}
