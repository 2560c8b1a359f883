// `imsimta dkim keygen DOMAIN SELECTOR [--algorithm rsa|ed25519] [--bits 2048]`: creates a DKIM
// signing key for mail from DOMAIN in etc/dkim/ (mode 0600), adds its line to etc/dkim/keys (a
// running instance reloads it by itself), and prints the DNS TXT record to publish on stdout;
// what was done, and what is still missing (a channel with `dkimsign`), goes to stderr.
import { parseArgs } from '../args.js';
import { CommandError, UsageError } from '../errors.js';
import { instancePaths, resolveRoot } from '../../common/instance.js';
import { dkimName } from '../../config/dkim.js';
import { loadInstanceConfig } from '../../config/load.js';
import { formatDiagnostic } from '../../config/types.js';
import { keygen, KeygenError } from '../../dkim/keygen.js';
import { serviceGroup } from '../service-group.js';

const USAGE = 'imsimta dkim keygen DOMAIN SELECTOR [--algorithm rsa|ed25519] [--bits 2048] [--root DIR]';

export async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['algorithm', 'bits'], []);
  const [sub, ...rest] = args.positionals;
  if (sub?.toLowerCase() !== 'keygen') throw new UsageError(sub ? `unknown dkim command "${sub}"` : 'dkim needs a command (keygen)');
  if (rest.length !== 2) throw new UsageError(`dkim keygen needs DOMAIN and SELECTOR (${USAGE})`);
  const domain = dkimName(rest[0]!);
  if (!domain?.includes('.')) throw new UsageError(`"${rest[0]}" is not a domain name`);
  const selector = dkimName(rest[1]!);
  if (selector === null) throw new UsageError(`"${rest[1]}" is not a selector (letters, digits and hyphens, labels separated by dots)`);
  const algorithm = (args.values.get('algorithm') ?? 'rsa').toLowerCase().replace(/-sha256$/, '');
  if (algorithm !== 'rsa' && algorithm !== 'ed25519') throw new UsageError(`--algorithm is rsa or ed25519 (found "${args.values.get('algorithm')}")`);
  const bitsText = args.values.get('bits') ?? '2048';
  const bits = Number(bitsText);
  if (!/^\d+$/.test(bitsText) || bits < 1024 || bits > 4096) throw new UsageError(`--bits is a number from 1024 to 4096 (found "${bitsText}")`);
  if (algorithm === 'ed25519' && args.values.has('bits')) throw new UsageError('--bits is for RSA keys (an Ed25519 key has no length to choose)');

  const root = resolveRoot(args.values.get('root'));
  const paths = instancePaths(root);
  let result;
  try {
    result = await keygen({ domain, selector, type: algorithm, bits, dkimDir: paths.dkimDir, serviceGid: serviceGroup(root) });
  } catch (err) {
    if (err instanceof KeygenError) throw new CommandError(err.message);
    const e = err as NodeJS.ErrnoException;
    throw new CommandError(`cannot create the key in ${paths.dkimDir}: ${e.code ?? e.message}`);
  }
  process.stderr.write(`imsimta dkim: wrote ${result.keyFile} and its line in ${result.keysFile}\n`);
  for (const w of result.warnings) process.stderr.write(`${formatDiagnostic(w)}\n`);
  const { config, diagnostics } = loadInstanceConfig(root);
  if (!config) {
    const first = diagnostics.find((d) => d.severity === 'error');
    process.stderr.write(`imsimta dkim: note: the configuration does not load (${first ? formatDiagnostic(first) : 'errors'}); imsimta cnbuild lists the problems\n`);
  } else if (!config.imta.channels.some((c) => c.dkimSign)) {
    process.stderr.write('imsimta dkim: note: no channel of imta.cnf has the dkimsign keyword: add it to the outbound channel (e.g. tcp_local) to sign\n');
  }
  process.stderr.write(`imsimta dkim: publish this DNS record, then mail from ${domain} is signed with selector ${selector}:\n`);
  process.stdout.write(`${result.record}\n`);
  return 0;
}
