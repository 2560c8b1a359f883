// `imsimta SUBCOMMAND …`: each subcommand lives in its own module under commands/.
import { runCommand } from './run-command.js';
import { UsageError } from './errors.js';
import { IMSIMTA_HELP, IMSIMTA_SUBCOMMANDS } from './usage.js';

const USAGE = 'imsimta <test -rewrite|test -mapping|test -alias|cnbuild|qm|submit|counters|report|process|flush|restart|reload|purge|passwd|dkim keygen|bounces|srs|help> [--root DIR] … (imsimta help: the list)';

/** Subcommand → module (loaded on demand so that one command's start-up does not pay for the others). */
const COMMANDS: Record<string, () => Promise<{ main: (argv: string[]) => Promise<number | void> }>> = {
  test: () => import('./commands/test.js'),
  cnbuild: () => import('./commands/cnbuild.js'),
  qm: () => import('./commands/qm.js'),
  submit: () => import('./commands/submit.js'),
  counters: () => import('./commands/counters.js'),
  report: () => import('./commands/report.js'),
  process: () => import('./commands/process.js'),
  flush: () => import('./commands/flush.js'),
  restart: () => import('./commands/restart.js'),
  reload: () => import('./commands/reload.js'),
  purge: () => import('./commands/purge.js'),
  passwd: () => import('./commands/passwd.js'),
  dkim: () => import('./commands/dkim.js'),
  bounces: () => import('./commands/bounces.js'),
  srs: () => import('./commands/srs.js'),
};

/** The help of the subcommand named first (`imsimta qm --help`), else the list of commands. */
function helpFor(argv: string[]): string {
  return IMSIMTA_SUBCOMMANDS[argv[0]?.toLowerCase() ?? '']?.help ?? IMSIMTA_HELP;
}

await runCommand('imsimta', USAGE, async (argv) => {
  const [sub, ...rest] = argv;
  if (!sub) throw new UsageError('a subcommand is needed');
  if (sub.toLowerCase() === 'help') {
    const topic = rest[0]?.toLowerCase();
    if (topic !== undefined && !IMSIMTA_SUBCOMMANDS[topic]) throw new UsageError(`unknown command "${rest[0]}"`);
    process.stdout.write(topic ? IMSIMTA_SUBCOMMANDS[topic]!.help : IMSIMTA_HELP);
    return 0;
  }
  const load = COMMANDS[sub.toLowerCase()];
  if (!load) throw new UsageError(`unknown command "${sub}"`);
  const mod = await load();
  return mod.main(rest);
}, process.argv.slice(2), helpFor);
