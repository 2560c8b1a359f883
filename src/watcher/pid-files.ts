// Pid files in run/ and the questions asked about the processes they name: alive? ours?
import { readFileSync, writeFileSync, unlinkSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import type { InstancePaths } from '../common/instance.js';

export type Role = 'watcher' | 'dispatcher' | 'job_controller';

export function pidFile(paths: InstancePaths, role: Role): string {
  return join(paths.run, `${role}.pid`);
}

/** What a process of each role has in its command line (to tell it from a reused pid). */
const COMMAND_LINE_MARKS: Record<Role, string[]> = {
  watcher: ['watcher/main.js', 'start-msg'],
  dispatcher: ['dispatcher/main.js'],
  job_controller: ['job-controller/main.js'],
};

function readPid(file: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

export function writePid(file: string, pid: number): void {
  writeFileSync(file, `${pid}\n`);
}

/** Removes the pid file, but only while it still names `pid` (when given). */
export function removePid(file: string, pid?: number): void {
  if (pid !== undefined && readPid(file) !== pid) return;
  try {
    unlinkSync(file);
  } catch {
    /* already gone */
  }
}

/** Running (a zombie waiting for its parent counts as gone). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

/** Alive and, where /proc tells, running a tsubame program of that role. */
function isRole(pid: number, role: Role): boolean {
  if (!isAlive(pid)) return false;
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return true;
  }
  return COMMAND_LINE_MARKS[role].some((mark) => cmdline.includes(mark));
}

/**
 * Creates the pid file for `pid` unless a live process of that role holds it.
 * Returns the holder's pid when it is taken.
 */
export function claimPidFile(file: string, role: Role, pid: number): number | null {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, `${pid}\n`);
      closeSync(fd);
      return null;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = readPid(file);
    if (holder !== null && holder !== pid && isRole(holder, role)) return holder;
    removePid(file); // stale: its process is gone
  }
  throw new Error(`cannot create ${file}`);
}

export async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}

/** SIGTERM, then SIGKILL if it is still there after `graceMs`. */
async function terminate(pid: number, graceMs: number): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  if (await waitGone(pid, graceMs)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitGone(pid, 5000);
}

/**
 * Stops a dispatcher or job controller left behind by a watcher that was killed (its pid file
 * names a live process of that role), and removes stale pid files and sockets.
 * Returns what it stopped.
 */
export async function reapLeftovers(paths: InstancePaths, graceMs = 15_000): Promise<Array<{ role: Role; pid: number }>> {
  const stopped: Array<{ role: Role; pid: number }> = [];
  await Promise.all(
    (['dispatcher', 'job_controller'] as const).map(async (role) => {
      const file = pidFile(paths, role);
      const pid = readPid(file);
      if (pid !== null && isRole(pid, role)) {
        await terminate(pid, graceMs);
        stopped.push({ role, pid });
      }
      removePid(file);
    }),
  );
  const watcher = readPid(pidFile(paths, 'watcher'));
  if (watcher === null || !isRole(watcher, 'watcher')) {
    removePid(pidFile(paths, 'watcher'));
    for (const socket of [paths.controlSocket, paths.jobControllerSocket]) {
      try {
        unlinkSync(socket);
      } catch {
        /* not there */
      }
    }
  }
  return stopped;
}
