// `start-msg [dispatcher|job_controller] [--root DIR] [--foreground]`: starts the instance
// (the watcher, which starts the parts) and returns once the ports are bound and the job
// controller is ready; with --foreground it stays attached until SIGTERM/SIGINT.
import { runCommand } from './run-command.js';
import { START_MSG_HELP } from './usage.js';
import { CommandError } from './errors.js';
import { parsePartCommand } from './part-request.js';
import { loadInstanceConfigOrThrow } from '../config/load.js';
import { askWatcher, launchWatcher } from '../watcher/client.js';
import { PART_NAMES, type PartName, type PartStatus } from '../watcher/part.js';
import { runWatcher } from '../watcher/watcher.js';
import { prepareServiceUser, runForegroundAs } from './service-user-start.js';
import type { InstanceConfig } from '../config/types.js';
import type { InstancePaths } from '../common/instance.js';
import { askJobController } from '../job-controller/client.js';
import { describeScan, readScanView } from '../job-controller/scan-progress.js';
import { progressWanted } from './progress.js';

const USAGE = 'start-msg [dispatcher|job_controller] [--root DIR] [--foreground]';
/** How long the line about a queue scan under way waits for the job controller's status. */
const SCAN_LINE_TIMEOUT_MS = 2000;

async function main(argv: string[]): Promise<number> {
  const { args, part, paths } = parsePartCommand(argv, ['foreground']);
  const parts = part ? [part] : [...PART_NAMES];

  // Configuration problems are found before anything is started.
  let config: InstanceConfig;
  try {
    config = loadInstanceConfigOrThrow(paths.root);
  } catch (err) {
    throw new CommandError((err as Error).message);
  }

  const status = await askWatcher(paths, { op: 'status' }).catch((err: Error) => {
    throw new CommandError(err.message);
  });
  if (status && !status.ok) throw new CommandError(`the watcher answered: ${status.error}`);

  if (args.flags.has('foreground')) {
    if (status) throw new CommandError(`tsubame is already running in the background (watcher pid ${status.pid}); stop it with stop-msg first`);
    // As root: the same command again, as the service user.
    const user = prepareServiceUser(paths, config);
    if (user) return runForegroundAs(user, argv, paths.root);
    sayServicesOff(config);
    try {
      await runWatcher({
        root: paths.root,
        parts,
        onStarted: (line) => {
          process.stdout.write(`${line}\n`);
          void sayScanUnderWay(paths);
        },
      });
    } catch (err) {
      throw new CommandError((err as Error).message);
    }
    process.stdout.write('tsubame stopped\n');
    return 0;
  }

  if (status) {
    const states: Partial<Record<PartName, PartStatus>> = status.parts;
    if (parts.every((p) => states[p]?.state === 'running')) {
      process.stdout.write(`tsubame is already running (watcher pid ${status.pid})\n`);
      return 0;
    }
    const reply = await askWatcher(paths, { op: 'start', ...(part ? { part } : {}) });
    if (!reply) throw new CommandError('the watcher stopped while starting');
    if (!reply.ok) throw new CommandError(reply.error);
    process.stdout.write(`${reply.message}\n`);
    return 0;
  }

  sayServicesOff(config);
  try {
    process.stdout.write(`${await launchWatcher(paths, parts, { user: prepareServiceUser(paths, config) })}\n`);
  } catch (err) {
    throw new CommandError((err as Error).message);
  }
  await sayScanUnderWay(paths);
  return 0;
}

/** A service left off for want of a certificate (the shipped submission services on a fresh clone): one line each, with how to turn it on. */
function sayServicesOff(config: InstanceConfig): void {
  for (const off of config.dispatcher.off ?? []) process.stdout.write(`${off.message}\n`);
}

/**
 * On a terminal: when the job controller is still scanning the queue (a large queue at start;
 * it takes mail and delivers meanwhile), one line says so and where to follow it.
 */
async function sayScanUnderWay(paths: InstancePaths): Promise<void> {
  if (!progressWanted()) return;
  // Less than a status request's usual time: start-msg has done its work and only waits for this line.
  const reply = await askJobController(paths.jobControllerSocket, { op: 'status' }, SCAN_LINE_TIMEOUT_MS).catch(() => null);
  const scan = readScanView(reply?.ok ? reply.scan : null);
  if (scan) process.stdout.write(`the job controller is ${describeScan(scan, Date.now())}; imsimta process shows how far it has got\n`);
}

await runCommand('start-msg', USAGE, main, process.argv.slice(2), START_MSG_HELP);
