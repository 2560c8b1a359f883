// `imsimta purge [--days N] [--root DIR]`: removes the rotated logs of log/ (mail.log.1,
// mail.log-20261130, tcp_smtp_server.log.3.gz …) last written more than N days ago. N defaults
// to LOG_KEEP_DAYS of option.dat, else 7. The live logs are never touched.
import { existsSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from '../args.js';
import { CommandError, UsageError } from '../errors.js';
import { instancePaths, resolveRoot } from '../../common/instance.js';
import { parseOptionDat } from '../../config/option-dat.js';
import type { Diagnostic } from '../../config/types.js';
import { logsToPurge, parseLogNumber, type LogFileEntry } from '../../common/log-files.js';

export const DEFAULT_KEEP_DAYS = 7;

export async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['days'], []);
  if (args.positionals.length > 0) throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
  const paths = instancePaths(resolveRoot(args.values.get('root')));
  const days = keepDays(args.values.get('days'), paths.optionDat);

  let names: string[];
  try {
    names = readdirSync(paths.log);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') names = [];
    else throw new CommandError(`cannot read ${paths.log}: ${(err as Error).message}`);
  }
  const entries: LogFileEntry[] = [];
  for (const name of names) {
    try {
      const st = statSync(join(paths.log, name));
      if (st.isFile()) entries.push({ name, size: st.size, mtimeMs: st.mtimeMs });
    } catch {
      /* gone meanwhile */
    }
  }
  let removed = 0;
  let bytes = 0;
  const failures: string[] = [];
  for (const name of logsToPurge(entries, Date.now(), days)) {
    try {
      unlinkSync(join(paths.log, name));
      removed++;
      bytes += entries.find((e) => e.name === name)!.size;
    } catch (err) {
      failures.push(`cannot remove ${join(paths.log, name)}: ${(err as Error).message}`);
    }
  }
  process.stdout.write(`purged ${removed} rotated log file${removed === 1 ? '' : 's'} (${bytes} bytes) older than ${days} day${days === 1 ? '' : 's'} from ${paths.log}\n`);
  if (failures.length > 0) throw new CommandError(failures.join('\n'));
  return 0;
}

/** --days wins; then LOG_KEEP_DAYS of option.dat; then 7. */
function keepDays(flag: string | undefined, optionDat: string): number {
  if (flag !== undefined) {
    const parsed = parseLogNumber('--days', flag);
    if (parsed.problem || parsed.value === null) throw new UsageError(`--days must be a whole number of days ≥ 0, found "${flag}"`);
    return parsed.value;
  }
  const diagnostics: Diagnostic[] = [];
  const options = parseOptionDat(existsSync(optionDat) ? optionDat : null, diagnostics);
  const configured = parseLogNumber('LOG_KEEP_DAYS', options.raw.LOG_KEEP_DAYS);
  if (configured.problem) throw new CommandError(`${optionDat}: ${configured.problem}`);
  return configured.value ?? DEFAULT_KEEP_DAYS;
}
