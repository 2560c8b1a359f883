// `imsimta reload [--root DIR]`: validates etc/ and applies it to the running instance (as an
// edit in etc/ does by itself): new SMTP sessions use the new rewrite rules and channels,
// dispatcher.cnf changes take effect without dropping a session, the job controller reloads.
// Exit 0 with a one-line summary; 1 with every error as file:line when the configuration is
// rejected (the instance keeps its last good one), or when tsubame is not running.
import { parseArgs } from '../args.js';
import { CommandError, UsageError } from '../errors.js';
import { instancePaths, resolveRoot } from '../../common/instance.js';
import { askWatcher } from '../../watcher/client.js';

export async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, [], []);
  if (args.positionals.length > 0) throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
  const paths = instancePaths(resolveRoot(args.values.get('root')));
  const reply = await askWatcher(paths, { op: 'reload' }).catch((err: Error) => {
    throw new CommandError(err.message);
  });
  if (!reply) throw new CommandError(`tsubame is not running (no watcher on ${paths.controlSocket}): nothing to reload; start-msg reads the configuration when it starts`);
  if (reply.ok) {
    process.stdout.write(`${reply.message}\n`);
    return 0;
  }
  const errors = 'errors' in reply && Array.isArray(reply.errors) ? reply.errors.map(String) : [reply.error];
  process.stderr.write(`imsimta: reload rejected, the running instance keeps its last good configuration:\n${errors.map((e) => `${e}\n`).join('')}`);
  return 1;
}
