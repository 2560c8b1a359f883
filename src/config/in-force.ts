// The configuration in force: a copy of etc/ as it was when the watcher last accepted it (at
// start and at each applied reload). A part that starts later — a new SMTP server process, a
// dispatcher or job controller restarted after a crash — loads etc/ as usual, but when etc/
// holds an edit that was rejected it falls back to this copy, so a broken file left on disk
// does not take the service down. The copy lives in run/ and is removed when the watcher stops.
import { cpSync, existsSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { instancePaths } from '../common/instance.js';
import { ConfigError, loadInstanceConfigOrThrow } from './load.js';
import type { InstanceConfig } from './types.js';

const LINK = 'config-in-force';
const PREFIX = 'config-';

/** Copies etc/ into run/ and points run/config-in-force at the copy (an atomic switch). */
export function recordConfigInForce(root: string): void {
  const paths = instancePaths(root);
  mkdirSync(paths.run, { recursive: true });
  const name = `${PREFIX}${Date.now()}-${process.pid}`;
  cpSync(paths.etc, join(paths.run, name), { recursive: true });
  const tmpLink = join(paths.run, `.${LINK}.${process.pid}`);
  rmSync(tmpLink, { force: true });
  symlinkSync(name, tmpLink);
  const previous = currentTarget(paths.run);
  renameSync(tmpLink, join(paths.run, LINK));
  // Keep the previous copy too: a process may be reading it at this moment.
  for (const entry of readdirSync(paths.run)) {
    if (entry.startsWith(PREFIX) && entry !== LINK && entry !== name && entry !== previous) rmSync(join(paths.run, entry), { recursive: true, force: true });
  }
}

/** Removes the copies (the watcher's exit: run/ is left empty). */
export function removeConfigInForce(root: string): void {
  const run = instancePaths(root).run;
  if (!existsSync(run)) return;
  for (const entry of readdirSync(run)) if (entry.startsWith(PREFIX) || entry.startsWith(`.${LINK}`)) rmSync(join(run, entry), { recursive: true, force: true });
}

export interface ConfigInForce {
  config: InstanceConfig;
  /** The errors of etc/ when the copy in force was used instead; null when etc/ itself loaded. */
  etcErrors: string | null;
}

/** etc/ when it is valid; else the configuration in force, when the watcher recorded one; else the errors of etc/. */
export function loadConfigInForce(root: string): ConfigInForce {
  try {
    return { config: loadInstanceConfigOrThrow(root), etcErrors: null };
  } catch (err) {
    const copy = join(instancePaths(root).run, LINK);
    if (!(err instanceof ConfigError) || !existsSync(copy)) throw err;
    return { config: loadInstanceConfigOrThrow(root, copy), etcErrors: err.message };
  }
}

function currentTarget(run: string): string | null {
  try {
    return readlinkSync(join(run, LINK));
  } catch {
    return null;
  }
}
