// `imsimta restart [dispatcher|job_controller] [--root DIR]`: stops and starts that part (both
// when none is named) while the watcher and the other part keep running. A configuration with
// errors is refused before anything is stopped.
import { CommandError } from '../errors.js';
import { requestForPart } from '../part-request.js';

export async function main(argv: string[]): Promise<number> {
  const { reply } = await requestForPart(argv, 'restart');
  if (!reply) throw new CommandError('tsubame is not running; start it with start-msg');
  if (!reply.ok) throw new CommandError(String(reply.error));
  process.stdout.write(`${String(reply.message)}\n`);
  return 0;
}
