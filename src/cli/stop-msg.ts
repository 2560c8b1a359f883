// `stop-msg [dispatcher|job_controller] [--root DIR]`: stops gracefully and returns when
// stopped. Without a part: everything, the watcher too. When nothing runs it says so and exits
// 0 (stopping a stopped instance is not an error, as with `systemctl stop`), after stopping any
// part a killed watcher left behind and removing stale pid files and sockets.
import { runCommand } from './run-command.js';
import { STOP_MSG_HELP } from './usage.js';
import { CommandError } from './errors.js';
import { requestForPart } from './part-request.js';
import { reapLeftovers, waitGone } from '../watcher/pid-files.js';

const USAGE = 'stop-msg [dispatcher|job_controller] [--root DIR]';

async function main(argv: string[]): Promise<number> {
  const { paths, part, reply } = await requestForPart(argv, 'stop');
  if (!reply) {
    const leftovers = await reapLeftovers(paths);
    if (leftovers.length > 0) {
      process.stdout.write(`stopped what a killed watcher left running: ${leftovers.map((l) => `${l.role} pid ${l.pid}`).join(', ')}\n`);
    } else {
      process.stdout.write('tsubame is not running\n');
    }
    return 0;
  }
  if (!reply.ok) throw new CommandError(String(reply.error));
  if (!part && typeof reply.pid === 'number') {
    if (!(await waitGone(reply.pid, 15_000))) throw new CommandError(`the watcher (pid ${reply.pid}) stopped its parts but did not exit`);
  }
  process.stdout.write(`${String(reply.message)}\n`);
  return 0;
}

await runCommand('stop-msg', USAGE, main, process.argv.slice(2), STOP_MSG_HELP);
