// Watches the configuration files of etc/ and calls `onChange` once per burst of edits (an
// editor's temp file and rename, several files saved together).
import { basename } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { Logger } from '../common/logger.js';
import { Debouncer } from './debounce.js';

/** The files of etc/ that make the configuration. */
export const CONFIG_FILES: ReadonlySet<string> = new Set(['imta.cnf', 'dispatcher.cnf', 'job_controller.cnf', 'option.dat', 'aliases', 'mappings', 'users']);

export const RELOAD_QUIET_MS = 300;
export const RELOAD_MAX_WAIT_MS = 3000;

export interface ConfigWatch {
  /** A reload is waiting for the end of a burst. */
  readonly pending: boolean;
  close(): Promise<void>;
}

/** Starts watching `etcDir`; resolves once the watch is in place. */
export async function watchConfig(etcDir: string, logger: Logger, onChange: (files: string[]) => void): Promise<ConfigWatch> {
  const changed = new Set<string>();
  const debouncer = new Debouncer({ quietMs: RELOAD_QUIET_MS, maxWaitMs: RELOAD_MAX_WAIT_MS }, () => {
    const files = [...changed].sort();
    changed.clear();
    onChange(files);
  });
  const watcher: FSWatcher = watch(etcDir, {
    ignoreInitial: true,
    depth: 0,
    // Only the configuration files; the directory itself must pass or nothing is watched.
    ignored: (path) => path !== etcDir && !CONFIG_FILES.has(basename(path)),
  });
  watcher.on('all', (event, path) => {
    const name = basename(path);
    if (!CONFIG_FILES.has(name)) return;
    logger.debug({ event, file: name }, 'configuration file changed');
    changed.add(name);
    debouncer.poke();
  });
  watcher.on('error', (err) => logger.warn({ err: (err as Error).message }, 'watching etc/ failed'));
  await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  return {
    get pending() {
      return debouncer.pending;
    },
    async close() {
      debouncer.cancel();
      await watcher.close();
    },
  };
}
