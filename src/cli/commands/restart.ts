// `imsimta restart [dispatcher|job_controller] [--root DIR]`: stops and starts that part (both
// when none is named) while the watcher and the other part keep running. A configuration with
// errors is refused before anything is stopped.
import { parseArgs } from '../args.js';
import { CommandError, UsageError } from '../errors.js';
import { instancePaths, resolveRoot } from '../../common/instance.js';
import { askWatcher, parsePartArgument } from '../../watcher/client.js';
import type { PartName } from '../../watcher/part.js';

export async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, [], []);
  let part: PartName | null;
  try {
    part = parsePartArgument(args.positionals);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const paths = instancePaths(resolveRoot(args.values.get('root')));
  const reply = await askWatcher(paths, { op: 'restart', ...(part ? { part } : {}) }, 180_000).catch((err: Error) => {
    throw new CommandError(err.message);
  });
  if (!reply) throw new CommandError('tsubame is not running; start it with start-msg');
  if (!reply.ok) throw new CommandError(String(reply.error));
  process.stdout.write(`${String(reply.message)}\n`);
  return 0;
}
