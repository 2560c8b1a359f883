// `imsimta srs keygen`: a new SRS secret, first in etc/srs.secrets (a running instance reloads it
// by itself); the older secrets stay and still verify. `imsimta srs forward SENDER` and
// `imsimta srs reverse ADDRESS`: what the instance's settings make of an address now (to check a
// set-up, or where a bounce to an SRS address goes); a reverse that does not verify exits 1 with
// the reason. No secret is ever printed.
import { parseArgs } from '../args.js';
import { CommandError, UsageError } from '../errors.js';
import { serviceGroup } from '../service-group.js';
import { instancePaths, resolveRoot } from '../../common/instance.js';
import { SecretFileError } from '../../config/secret-file.js';
import { loadInstanceConfig } from '../../config/load.js';
import { formatDiagnostic } from '../../config/types.js';
import { addSrsSecret, srsForward, srsReverse, srsSettingsOf } from '../../srs/index.js';

export async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, [], []);
  const [sub, ...rest] = args.positionals;
  const root = resolveRoot(args.values.get('root'));
  switch (sub?.toLowerCase()) {
    case 'keygen':
      if (rest.length) throw new UsageError('srs keygen takes no argument');
      return keygen(root);
    case 'forward':
    case 'reverse':
      if (rest.length !== 1) throw new UsageError(`srs ${sub.toLowerCase()} needs one address`);
      return convert(root, sub.toLowerCase() as 'forward' | 'reverse', rest[0]!);
    default:
      throw new UsageError(sub ? `unknown srs command "${sub}"` : 'srs needs a command (keygen, forward, reverse)');
  }
}

async function keygen(root: string): Promise<number> {
  const file = instancePaths(root).srsSecrets;
  let result;
  try {
    result = await addSrsSecret(file, serviceGroup(root));
  } catch (err) {
    if (err instanceof SecretFileError) throw new CommandError(err.message);
    throw err;
  }
  const older = result.secrets - 1;
  process.stderr.write(
    `imsimta srs: ${result.created ? 'created' : 'updated'} ${file}: a new secret (line ${result.line}) signs from now on` +
      (older > 0 ? `; the ${older} older one${older > 1 ? 's' : ''} still verif${older > 1 ? 'y' : 'ies'} bounces: delete ${older > 1 ? 'each' : 'it'} SRS_MAXAGE days after it stopped signing\n` : '\n'),
  );
  const { config, diagnostics } = loadInstanceConfig(root);
  for (const d of diagnostics.filter((x) => x.file === file)) process.stderr.write(`${formatDiagnostic(d)}\n`);
  if (config && !config.imta.channels.some((c) => c.srs?.source || c.srs?.destination || c.srs?.address)) {
    process.stderr.write('imsimta srs: note: no channel of imta.cnf has sourcesrs, destinationsrs and addresssrs: nothing is rewritten yet (bounces to SRS addresses are decoded)\n');
  }
  return 0;
}

async function convert(root: string, direction: 'forward' | 'reverse', address: string): Promise<number> {
  const { config, diagnostics } = loadInstanceConfig(root);
  if (!config) {
    const first = diagnostics.find((d) => d.severity === 'error');
    throw new CommandError(`the configuration does not load (${first ? formatDiagnostic(first) : 'errors'}); imsimta cnbuild lists the problems`);
  }
  const settings = srsSettingsOf(config);
  if (!settings) throw new CommandError(`${instancePaths(root).srsSecrets} holds no SRS secret: imsimta srs keygen makes one`);
  const now = Date.now();
  if (direction === 'forward') {
    const r = srsForward(address, settings, now);
    if (r.kind === 'unchanged') process.stderr.write(`imsimta srs: not rewritten: ${r.reason}\n`);
    process.stdout.write(`${r.kind === 'rewritten' ? r.address : address}\n`);
    return 0;
  }
  const r = srsReverse(address, settings, now);
  if (r.kind === 'not-srs') throw new CommandError(`${address} is not an SRS address at ${settings.domain} (SRS_DOMAIN)`);
  if (r.kind === 'invalid') throw new CommandError(`${address} is refused (550 5.1.1): ${r.reason}`);
  process.stdout.write(`${r.address}\n`);
  return 0;
}
