// Runs a command's main function and turns failures into one line on stderr and an exit code.
import { UsageError, CommandError } from './errors.js';

export type CommandMain = (argv: string[]) => Promise<number | void>;

export async function runCommand(name: string, usage: string, main: CommandMain, argv: string[]): Promise<never> {
  let code: number;
  try {
    code = (await main(argv)) ?? 0;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${name}: ${err.message}\nusage: ${usage}\n`);
      code = 2;
    } else if (err instanceof CommandError) {
      process.stderr.write(`${name}: ${err.message}\n`);
      code = err.exitCode;
    } else {
      const e = err as NodeJS.ErrnoException;
      process.stderr.write(`${name}: ${e?.message ?? String(err)}\n`);
      if (process.env.TSUBAME_DEBUG) process.stderr.write(`${e?.stack}\n`);
      code = 1;
    }
  }
  // Let stdout drain before exiting (pipes are asynchronous).
  await new Promise<void>((resolve) => (process.stdout.writableLength ? process.stdout.once('drain', () => resolve()) : resolve()));
  process.exit(code);
}
