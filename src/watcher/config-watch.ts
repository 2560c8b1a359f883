// Watches the configuration files of etc/ and calls `onChange` once per burst of edits (an
// editor's temp file and rename, several files saved together). etc/dkim/ is configuration as a
// whole: the keys file and the private keys it names (a key replaced under the same name is a
// change too).
import { readdirSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { Logger } from '../common/logger.js';
import { Debouncer } from './debounce.js';

/** The files of etc/ that make the configuration. */
const CONFIG_FILES: ReadonlySet<string> = new Set(['imta.cnf', 'dispatcher.cnf', 'job_controller.cnf', 'option.dat', 'aliases', 'mappings', 'users', 'shaping.cnf', 'srs.secrets', 'client_auth']);
/** The directories of etc/ whose files are all configuration (not their subdirectories). */
const CONFIG_DIRS: ReadonlySet<string> = new Set(['dkim']);

/** Editors' swap, backup and temporary files are not configuration. */
function isScratch(name: string): boolean {
  return name.startsWith('.') || name.endsWith('~') || name.endsWith('.swp') || name.endsWith('.tmp');
}

/**
 * The name of a configuration path under `etcDir` (`imta.cnf`, `dkim/keys`; `dkim` for the
 * directory itself), or null when the path is not configuration.
 */
function configName(etcDir: string, path: string): string | null {
  const rel = relative(etcDir, path);
  if (!rel || rel.startsWith('..')) return null;
  const parts = rel.split(sep);
  if (parts.length === 1) return CONFIG_FILES.has(rel) || CONFIG_DIRS.has(rel) ? rel : null;
  if (parts.length === 2 && CONFIG_DIRS.has(parts[0]!) && !isScratch(parts[1]!)) return parts.join('/');
  return null;
}

/** Every configuration file of `etcDir` by its configName (those of CONFIG_FILES whether they exist or not), sorted. */
export function configFileNames(etcDir: string): string[] {
  const names = [...CONFIG_FILES];
  for (const dir of CONFIG_DIRS) {
    try {
      for (const e of readdirSync(join(etcDir, dir), { withFileTypes: true })) if (e.isFile() && !isScratch(e.name)) names.push(`${dir}/${e.name}`);
    } catch {
      // no such directory: nothing of it is configuration
    }
  }
  return names.sort();
}

const RELOAD_QUIET_MS = 300;
const RELOAD_MAX_WAIT_MS = 3000;

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
    depth: 1,
    // Only the configuration files; the directory itself must pass or nothing is watched.
    ignored: (path) => path !== etcDir && configName(etcDir, path) === null,
  });
  watcher.on('all', (event, path) => {
    const name = configName(etcDir, path);
    if (name === null) return;
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
