// A small argument parser shared by the commands: `--root DIR`, `--json`, flags and positionals.
import { UsageError } from './errors.js';

export interface ParsedArgs {
  positionals: string[];
  flags: Set<string>; // boolean options given, without leading dashes (e.g. "json", "foreground")
  values: Map<string, string>; // options with a value (e.g. "root" → "/x", "from" → "a@b")
}

/**
 * Parses argv. `valueOptions` names the options that take a value (`--root DIR` or `--root=DIR`);
 * `booleanOptions` the ones that do not. Messaging Server's single-dash forms (`-rewrite`) are
 * accepted too. Anything else is a UsageError.
 */
export function parseArgs(argv: string[], valueOptions: string[], booleanOptions: string[]): ParsedArgs {
  const out: ParsedArgs = { positionals: [], flags: new Set(), values: new Map() };
  const takesValue = new Set(['root', ...valueOptions]);
  const bool = new Set(booleanOptions);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      out.positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      out.positionals.push(arg);
      continue;
    }
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = (eq >= 0 ? body.slice(0, eq) : body).toLowerCase();
    if (takesValue.has(name)) {
      const value = eq >= 0 ? body.slice(eq + 1) : argv[++i];
      if (value === undefined) throw new UsageError(`option --${name} needs a value`);
      out.values.set(name, value);
    } else if (bool.has(name) && eq < 0) {
      out.flags.add(name);
    } else {
      throw new UsageError(`unknown option ${arg}`);
    }
  }
  return out;
}
