// `imsimta test -rewrite [--from ADDR] [--channel SRC] [--json] [ADDRESS…]`: shows how the
// rewrite rules route each address (addresses from the arguments, else one per line on stdin);
// rules with $V/$Z ask the directory's hosted domains, read once before the first address.
// `imsimta test -mapping …` is test-mapping.ts, `imsimta test -alias …` test-alias.ts.
import { createInterface } from 'node:readline';
import { parseArgs } from '../args.js';
import { CommandError, UsageError, firstLine } from '../errors.js';
import { resolveRoot } from '../../common/instance.js';
import { loadInstanceConfigOrThrow } from '../../config/load.js';
import type { ImtaConfig, InstanceConfig } from '../../config/types.js';
import { openHostedDomains } from '../../directory/index.js';
import { compileRewriter, type Rewriter } from '../../rewrite/index.js';
import { formatRewriteText, rewriteJson, type RewriteReport } from '../../rewrite/report.js';

/** Messaging Server's `test -rewrite` rewrites as the local channel unless told otherwise. */
const DEFAULT_SOURCE_CHANNEL = 'l';

export async function main(argv: string[]): Promise<number> {
  if (argv.some((a) => /^--?mapping$/i.test(a))) return (await import('./test-mapping.js')).main(argv);
  if (argv.some((a) => /^--?alias$/i.test(a))) return (await import('./test-alias.js')).main(argv);
  const args = parseArgs(argv, ['from', 'channel'], ['rewrite', 'json']);
  if (!args.flags.has('rewrite')) throw new UsageError('test needs -rewrite, -mapping or -alias (imsimta test -rewrite [--json] ADDRESS…, imsimta test -mapping -table NAME PROBE…, imsimta test -alias ADDRESS…)');
  const root = resolveRoot(args.values.get('root'));
  let config: InstanceConfig;
  try {
    config = loadInstanceConfigOrThrow(root);
  } catch (err) {
    if (err instanceof CommandError || err instanceof UsageError) throw err;
    throw new CommandError(firstLine((err as Error).message));
  }
  const imta = config.imta;
  const sourceChannel = args.values.get('channel') ?? DEFAULT_SOURCE_CHANNEL;
  if (!imta.channelByName.has(sourceChannel.toLowerCase())) throw new CommandError(`no channel named "${sourceChannel}" in imta.cnf`);
  // Rules with $V/$Z ask the directory's hosted domains (LDAP: read once, LDAP_TIMEOUT at most).
  const hostedDomains = openHostedDomains(config);
  try {
    await hostedDomains.ready();
    const tester = new RewriteTester(compileRewriter(imta, { hostedDomains }), imta, sourceChannel, args.values.get('from') ?? null, args.flags.has('json'));
    return await testAddresses(tester, args.positionals);
  } finally {
    await hostedDomains.close();
  }
}

async function testAddresses(tester: RewriteTester, positionals: readonly string[]): Promise<number> {
  if (positionals.length > 0) {
    for (const address of positionals) tester.show(address);
  } else {
    const interactive = process.stdin.isTTY === true;
    const rl = createInterface({ input: process.stdin, output: interactive ? process.stdout : undefined, terminal: interactive });
    if (interactive) rl.setPrompt('Address: ');
    if (interactive) rl.prompt();
    for await (const line of rl) {
      const address = line.trim();
      if (address) tester.show(address);
      if (interactive) rl.prompt();
    }
  }
  return tester.allRouted ? 0 : 1;
}


/** Rewrites addresses one by one and prints each result. */
class RewriteTester {
  allRouted = true;

  constructor(
    private readonly rewriter: Rewriter,
    private readonly imta: ImtaConfig,
    private readonly sourceChannel: string,
    private readonly from: string | null,
    private readonly json: boolean,
  ) {}

  show(address: string): void {
    const to = this.rewriter.rewrite(address, { sourceChannel: this.sourceChannel, direction: 'to' });
    const from = this.from === null
      ? null
      : this.rewriter.rewrite(this.from, { sourceChannel: this.sourceChannel, direction: 'from', destinationChannel: to.channel ?? undefined });
    if (to.channel === null || to.error !== null || (from !== null && from.error !== null)) this.allRouted = false;
    const report: RewriteReport = { to, from, channel: to.channel ? (this.imta.channelByName.get(to.channel.toLowerCase()) ?? null) : null };
    process.stdout.write(this.json ? `${JSON.stringify(rewriteJson(report))}\n` : `${formatRewriteText(report)}\n`);
  }
}
