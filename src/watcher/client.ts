// The command side of the watcher: the one client of run/watcher.sock (control.ts), and launching
// the watcher in the background.
import { fork } from 'node:child_process';
import { closeSync, fchownSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requestJson } from '../common/ipc-socket.js';
import type { InstancePaths } from '../common/instance.js';
import { controlTimeoutMs, type ControlReplyTo, type ControlRequest } from './control.js';
import type { PartName } from './part.js';
import type { WatcherLaunchReport } from './main.js';
import { forkAsServiceUser, type ServiceUser } from '../common/service-user.js';

const WATCHER_MODULE = fileURLToPath(new URL('./main.js', import.meta.url));

/** The watcher's reply, or null when no watcher runs. Throws when it does not answer in the time its kind is given (control.ts). */
export async function askWatcher<R extends ControlRequest>(paths: InstancePaths, request: R): Promise<ControlReplyTo<R['op']> | null> {
  try {
    return (await requestJson(paths.controlSocket, request, controlTimeoutMs(request))) as ControlReplyTo<R['op']> | null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTSOCK' || code === 'ENOTDIR') return null;
    throw new Error(`the watcher does not answer on ${paths.controlSocket}: ${(err as Error).message}`, { cause: err });
  }
}

/** Where the console output of the background processes goes (crash traces end up there). */
function consoleLogPath(paths: InstancePaths): string {
  return join(paths.log, 'console.log');
}

/**
 * Starts a watcher in the background for `parts` and waits until it says whether the instance
 * came up. Resolves with its line; rejects with the one-line reason. With `user` (start-msg as
 * root) the watcher runs as that user.
 */
export function launchWatcher(paths: InstancePaths, parts: readonly PartName[], opts: { timeoutMs?: number; user?: ServiceUser | null } = {}): Promise<string> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  mkdirSync(paths.log, { recursive: true });
  mkdirSync(paths.run, { recursive: true });
  const out = openSync(consoleLogPath(paths), 'a');
  if (opts.user) fchownSync(out, opts.user.uid, opts.user.gid);
  const child = fork(WATCHER_MODULE, [...parts], {
    ...(opts.user ? forkAsServiceUser(opts.user) : {}),
    env: { ...process.env, IMTA_ROOT: paths.root },
    stdio: ['ignore', out, out, 'ipc'],
    detached: true,
    serialization: 'json',
  });
  closeSync(out);
  return new Promise((resolve, reject) => {
    let settled = false;
    const done = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (child.connected) child.disconnect();
      child.unref();
      fn();
    };
    const timer = setTimeout(
      () => done(() => reject(new Error(`tsubame did not start within ${timeoutMs / 1000} s; see ${consoleLogPath(paths)} and log/watcher.log`))),
      timeoutMs,
    );
    // On failure it stops what it started and then exits: wait for the exit, so that nothing is left running.
    let failure: string | null = null;
    child.on('message', (msg: WatcherLaunchReport) => {
      if (msg?.type === 'started') done(() => resolve(msg.line));
      else if (msg?.type === 'failed') failure = msg.message;
    });
    child.on('exit', (code, signal) =>
      done(() => reject(new Error(failure ?? `the watcher exited (${signal ? `signal ${signal}` : `code ${code}`}) while starting; see ${consoleLogPath(paths)}`))),
    );
    child.on('error', (err) => done(() => reject(new Error(`cannot start the watcher: ${err.message}`))));
  });
}

/** The optional part argument of start-msg, stop-msg and imsimta restart; null = all. Throws a plain Error on anything else. */
export function parsePartArgument(positionals: string[]): PartName | null {
  if (positionals.length === 0) return null;
  if (positionals.length > 1) throw new Error(`one part at most, got ${positionals.join(' ')}`);
  const name = positionals[0]!.toLowerCase().replace('-', '_');
  if (name === 'dispatcher' || name === 'job_controller') return name;
  throw new Error(`unknown part "${positionals[0]}" (dispatcher or job_controller)`);
}
