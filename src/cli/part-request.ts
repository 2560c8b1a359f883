// What `start-msg [part]`, `stop-msg [part]` and `imsimta restart [part]` share: the optional part
// argument and the instance; for the last two, then one request to the watcher (a null reply:
// the watcher is not running).
import { parseArgs } from './args.js';
import { CommandError, UsageError } from './errors.js';
import { instancePaths, resolveRoot, type InstancePaths } from '../common/instance.js';
import { askWatcher, parsePartArgument } from '../watcher/client.js';
import type { ControlReplyTo } from '../watcher/control.js';
import type { PartName } from '../watcher/part.js';

/** `[part] [--root DIR]` and the given flags; a bad part is a usage error. */
export function parsePartCommand(argv: string[], flags: string[] = []): { args: ReturnType<typeof parseArgs>; part: PartName | null; paths: InstancePaths } {
  const args = parseArgs(argv, [], flags);
  let part: PartName | null;
  try {
    part = parsePartArgument(args.positionals);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return { args, part, paths: instancePaths(resolveRoot(args.values.get('root'))) };
}

export async function requestForPart(argv: string[], op: 'stop' | 'restart'): Promise<{ paths: InstancePaths; part: PartName | null; reply: ControlReplyTo<'stop' | 'restart'> | null }> {
  const { part, paths } = parsePartCommand(argv);
  const reply = await askWatcher(paths, { op, ...(part ? { part } : {}) }).catch((err: Error) => {
    throw new CommandError(err.message);
  });
  return { paths, part, reply };
}
