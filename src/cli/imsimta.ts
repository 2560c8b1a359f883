// `imsimta SUBCOMMAND …`: each subcommand lives in its own module under commands/.
import { runCommand } from './run-command.js';
import { UsageError } from './errors.js';

const USAGE = 'imsimta <test -rewrite|test -mapping|cnbuild|qm|submit|counters|process|flush|restart|reload|purge|dkim keygen> [--root DIR] …';

/** Subcommand → module (loaded on demand so that one command's start-up does not pay for the others). */
const COMMANDS: Record<string, () => Promise<{ main: (argv: string[]) => Promise<number | void> }>> = {
  test: () => import('./commands/test.js'),
  cnbuild: () => import('./commands/cnbuild.js'),
  qm: () => import('./commands/qm.js'),
  submit: () => import('./commands/submit.js'),
  counters: () => import('./commands/counters.js'),
  process: () => import('./commands/process.js'),
  flush: () => import('./commands/flush.js'),
  restart: () => import('./commands/restart.js'),
  reload: () => import('./commands/reload.js'),
  purge: () => import('./commands/purge.js'),
  dkim: () => import('./commands/dkim.js'),
};

await runCommand('imsimta', USAGE, async (argv) => {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === '-h') throw new UsageError('a subcommand is needed');
  const load = COMMANDS[sub.toLowerCase()];
  if (!load) throw new UsageError(`unknown command "${sub}"`);
  const mod = await load();
  return mod.main(rest);
}, process.argv.slice(2));
