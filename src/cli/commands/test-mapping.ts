// `imsimta test -mapping -table NAME [--flags LETTERS] [--mapping_file FILE] [--json] [PROBE…]`:
// shows what a mapping table makes of each probe string (from the arguments, else one per line
// on stdin): every entry that matched with file:line, the output string and flags, and for the
// access tables the decision and the SMTP reply a refusal gives.
import { createInterface } from 'node:readline';
import { parseArgs } from '../args.js';
import { CommandError, UsageError, firstLine } from '../errors.js';
import { resolveRoot } from '../../common/instance.js';
import { loadInstanceConfigOrThrow } from '../../config/load.js';
import { parseMappings } from '../../config/mappings.js';
import { formatDiagnostic, type Diagnostic, type MappingsConfig } from '../../config/types.js';
import { accessDecision, accessStage, applyMapping, compileMappings, isAccessTable, type AccessTable, type CompiledMappings } from '../../mappings/index.js';
import { formatMappingText, mappingJson, type MappingReport } from '../../mappings/report.js';

const USAGE = 'imsimta test -mapping -table NAME [--flags LETTERS] [--mapping_file FILE] [--json] [PROBE…]';

export async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['table', 'flags', 'mapping_file'], ['mapping', 'json']);
  const table = args.values.get('table');
  if (!table) throw new UsageError(`test -mapping needs -table NAME (${USAGE})`);
  const flags = (args.values.get('flags') ?? '').toUpperCase();
  if (!/^[A-Z]*$/.test(flags)) throw new UsageError(`--flags takes letters, e.g. --flags AT (found "${flags}")`);

  const mappings = compileMappings(loadMappings(args.values.get('root'), args.values.get('mapping_file')));
  if (!mappings.tables.has(table.toUpperCase())) {
    const names = [...mappings.tables.keys()];
    throw new CommandError(`no mapping table named ${table}${mappings.file ? ` in ${mappings.file}` : ' (there is no mappings file)'}${names.length ? ` (tables: ${names.join(', ')})` : ''}`);
  }
  const tester = new MappingTester(mappings, table.toUpperCase(), new Set(flags), args.flags.has('json'));
  if (args.positionals.length > 0) {
    for (const probe of args.positionals) tester.show(probe);
  } else {
    const interactive = process.stdin.isTTY === true;
    const rl = createInterface({ input: process.stdin, output: interactive ? process.stdout : undefined, terminal: interactive });
    if (interactive) rl.setPrompt('Input string: ');
    if (interactive) rl.prompt();
    for await (const line of rl) {
      if (line.trim()) tester.show(line.trim());
      if (interactive) rl.prompt();
    }
  }
  return tester.failed ? 1 : 0;
}

/** The instance's mappings (loaded with the rest of etc/, as the servers load it), or one file given. */
function loadMappings(rootFlag: string | undefined, file: string | undefined): MappingsConfig {
  if (file) {
    const diagnostics: Diagnostic[] = [];
    const config = parseMappings(file, diagnostics);
    const errors = diagnostics.filter((d) => d.severity === 'error');
    if (errors.length) throw new CommandError(`${formatDiagnostic(errors[0]!)}${errors.length > 1 ? ` (and ${errors.length - 1} more; imsimta cnbuild lists them)` : ''}`);
    return config;
  }
  try {
    return loadInstanceConfigOrThrow(resolveRoot(rootFlag)).mappings;
  } catch (err) {
    throw new CommandError(firstLine((err as Error).message));
  }
}

/** Maps probes one by one and prints each result. */
class MappingTester {
  failed = false;

  constructor(
    private readonly mappings: CompiledMappings,
    private readonly table: string,
    private readonly flags: ReadonlySet<string>,
    private readonly json: boolean,
  ) {}

  show(probe: string): void {
    const result = applyMapping(this.mappings, this.table, probe, { flags: this.flags });
    if (result.error) this.failed = true;
    const access = isAccessTable(this.table) ? accessDecision(this.table, result, replyAddress(this.table, probe)) : null;
    const report: MappingReport = { result, access };
    process.stdout.write(this.json ? `${JSON.stringify(mappingJson(report))}\n` : formatMappingText(report));
  }
}

/** The address a refusal names: the recipient (last field) at RCPT, the sender (next to last) at MAIL. */
function replyAddress(table: AccessTable, probe: string): string | null {
  const fields = probe.split('|');
  const stage = accessStage(table);
  if (stage === 'rcpt') return fields.at(-1) ?? null;
  if (stage === 'mail') return fields.length >= 2 ? fields.at(-2)! : null;
  return null;
}
