// `imsimta cnbuild [--json]`: checks every configuration file and prints each error and warning
// as `file:line: severity: message`. Exit 1 on any error. (Messaging Server compiles the files
// here; tsubame reads them directly, so this is the check an operator runs before a reload.)
// It also warns when the host name in use is not a fully qualified domain name (LOCAL_HOST unset
// on a machine with a short name): the running instance works, but says that name to the world;
// and for every member of etc/aliases that would get nothing (directory/alias-check.ts).
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseArgs } from '../args.js';
import { instancePaths, resolveRoot } from '../../common/instance.js';
import { loadInstanceConfig } from '../../config/load.js';
import { checkAliasMembers } from '../../directory/alias-check.js';
import { localHostProblem } from '../../config/option-dat.js';
import { formatDiagnostic, type Diagnostic, type ServiceOff } from '../../config/types.js';

export async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, [], ['json']);
  const root = resolveRoot(args.values.get('root'));
  const { config, diagnostics } = loadInstanceConfig(root);
  if (config) {
    const warning = localHostWarning(instancePaths(root).optionDat, config.options.raw.LOCAL_HOST);
    if (warning) diagnostics.push(warning);
    diagnostics.push(...(await checkAliasMembers(config, instancePaths(root).aliases)));
  }
  const errors = diagnostics.filter((d) => d.severity === 'error').length;
  const warnings = diagnostics.length - errors;
  // Services left off for want of a certificate: a note each, with how to turn it on.
  const notes = (config?.dispatcher.off ?? []).map((o) => ({ file: o.file, line: o.line, message: o.message }));
  if (args.flags.has('json')) {
    process.stdout.write(`${JSON.stringify({ ok: errors === 0, errors, warnings, diagnostics, notes })}\n`);
  } else {
    for (const d of diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
    if (config) {
      const c = config;
      process.stdout.write(
        `configuration OK: ${c.imta.rules.length} rewrite rules, ${c.imta.channels.length} channels, ` +
          `${c.dispatcher.services.length} services${servicesOff(c.dispatcher.off ?? [])}, ${c.jobController.pools.length} pools` +
          (c.mappings.file !== null ? `, ${c.mappings.tables.size} mapping table${c.mappings.tables.size === 1 ? '' : 's'}` : '') +
          (c.users.users.size ? `, ${c.users.users.size} user${c.users.users.size === 1 ? '' : 's'}` : '') +
          (c.dkim.keys.length > 0 ? `, ${c.dkim.keys.length} DKIM key${c.dkim.keys.length === 1 ? '' : 's'}` : '') +
          (c.shaping?.sections.length ? `, ${c.shaping.sections.length} shaping destination${c.shaping.sections.length === 1 ? '' : 's'}` : '') +
          (warnings ? `, ${warnings} warning${warnings === 1 ? '' : 's'}` : '') + '\n',
      );
      for (const n of notes) process.stdout.write(`${n.file}:${n.line}: note: ${n.message}\n`);
    } else {
      process.stderr.write(`${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}: configuration not usable\n`);
    }
  }
  return errors === 0 ? 0 : 1;
}

/** ` (SUBMISSION, SUBMISSIONS off: no certificate)`: the services left off, whose warnings say how to turn them on. */
function servicesOff(off: ServiceOff[]): string {
  const names = off.filter((o) => o.whole).map((o) => o.service);
  return names.length ? ` (${names.join(', ')} off: no certificate)` : '';
}

/** The LOCAL_HOST warning, at its line of option.dat (line 0 when it is not set). */
function localHostWarning(optionDat: string, setting: string | undefined): Diagnostic | null {
  const message = localHostProblem(setting, hostname());
  if (!message) return null;
  let line = 0;
  if (setting !== undefined) {
    try {
      line = readFileSync(optionDat, 'utf8').split(/\r?\n/).findLastIndex((l) => /^\s*LOCAL_HOST\s*=/i.test(l)) + 1;
    } catch {
      /* line 0 */
    }
  }
  return { file: optionDat, line, severity: 'warning', message };
}
