// Runs a command's main function and turns failures into one line on stderr and an exit code.
// `--help` (or `-h`) prints the command's help (usage.ts) and exits 0 without doing anything.
import { UsageError, CommandError } from './errors.js';
import { asksForHelp } from './usage.js';

export type CommandMain = (argv: string[]) => Promise<number | void>;

/** `help`: the command's help text, or a function choosing it from the arguments (imsimta's subcommands). */
export async function runCommand(name: string, usage: string, main: CommandMain, argv: string[], help?: string | ((argv: string[]) => string)): Promise<never> {
  let code: number;
  try {
    if (help !== undefined && asksForHelp(argv)) {
      process.stdout.write(typeof help === 'string' ? help : help(argv));
      code = 0;
    } else {
      code = (await main(argv)) ?? 0;
    }
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
