// The watcher process as start-msg launches it in the background (detached). It tells
// start-msg over IPC whether the instance came up: {type:'started', line} or {type:'failed', message}.
import { resolveRoot } from '../common/instance.js';
import { reopenLogsOnHangup } from '../common/logger.js';
import { PART_NAMES, type PartName } from './part.js';
import { runWatcher } from './watcher.js';

export type WatcherLaunchReport = { type: 'started'; line: string } | { type: 'failed'; message: string };

function report(msg: WatcherLaunchReport): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected) return resolve();
    try {
      process.send!(msg, undefined, {}, () => resolve());
    } catch {
      resolve();
    }
  });
}

// start-msg goes away once it has the report; the watcher stays.
process.on('disconnect', () => {});
// A SIGHUP (logrotate) while it starts must not end it.
reopenLogsOnHangup();

const requested = process.argv.slice(2).filter((a): a is PartName => (PART_NAMES as readonly string[]).includes(a));
let code = 0;
try {
  await runWatcher({
    root: resolveRoot(undefined),
    parts: requested.length ? requested : PART_NAMES,
    onStarted: (line) => void report({ type: 'started', line }),
  });
} catch (err) {
  await report({ type: 'failed', message: (err as Error).message });
  code = 1;
}
process.exit(code);
