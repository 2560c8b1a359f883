// `imsimta flush [TARGET] [--json] [--root DIR]`: retry now. Without a target everything that
// waits for its backoff; `#channel` one channel; `domain` or `@domain` (with subdomains) the
// messages with recipients there.
import { parseArgs } from '../args.js';
import { CommandError, UsageError } from '../errors.js';
import { instancePaths, resolveRoot } from '../../common/instance.js';
import { askJobController } from '../../job-controller/client.js';

export async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, [], ['json']);
  if (args.positionals.length > 1) throw new UsageError(`flush takes at most one target, got "${args.positionals.join(' ')}"`);
  const target = args.positionals[0] ?? null;
  const paths = instancePaths(resolveRoot(args.values.get('root')));
  const reply = await askJobController(paths.jobControllerSocket, { op: 'flush', target }).catch((err: Error) => {
    throw new CommandError(`the job controller did not answer: ${err.message}`);
  });
  if (!reply) throw new CommandError('the job controller is not running');
  const text = 'text' in reply ? reply.text : reply.error;
  if (reply.ok !== true && !args.flags.has('json')) throw new CommandError(String(text ?? 'the job controller refused the flush'));
  process.stdout.write(args.flags.has('json') ? JSON.stringify(reply) + '\n' : `${String(text)}\n`);
  return reply.ok === true ? 0 : 1;
}
