// `imsimta report [--since WHEN] [--until WHEN] [--top N] [--json] [--root DIR] [FILE…]`: the
// mail report of log/mail.log and its rotated copies (or of the files named), pflogsumm's daily
// summary for tsubame. The files are read as a stream, oldest first; the aggregation
// (src/report/aggregate.ts) keeps its memory bounded. A progress line on a terminal.
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from '../args.js';
import { CommandError, UsageError } from '../errors.js';
import { instancePaths, resolveRoot } from '../../common/instance.js';
import { terminalProgress } from '../progress.js';
import { ReportAggregator } from '../../report/aggregate.js';
import { formatReport } from '../../report/format.js';
import { parsePeriod, PeriodError } from '../../report/period.js';
import { readLines, selectMailLogs, type LogFile } from '../../report/read-logs.js';

export async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['since', 'until', 'top'], ['json']);
  const topText = args.values.get('top');
  const top = topText === undefined ? 10 : Number(topText);
  if (!Number.isInteger(top) || top < 1 || top > 10_000) throw new UsageError(`--top "${topText}": give a whole number from 1 to 10000`);
  let period;
  try {
    period = parsePeriod(args.values.get('since'), args.values.get('until'), Date.now());
  } catch (err) {
    if (err instanceof PeriodError) throw new UsageError(err.message);
    throw err;
  }

  let files: LogFile[];
  if (args.positionals.length > 0) {
    files = [];
    for (const name of args.positionals) {
      const path = resolve(name);
      const st = await stat(path).catch((err: NodeJS.ErrnoException) => {
        throw new CommandError(`cannot read ${path}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
      });
      files.push({ path, size: st.size, mtimeMs: st.mtimeMs });
    }
  } else {
    const paths = instancePaths(resolveRoot(args.values.get('root')));
    const selection = await selectMailLogs(paths.mailLog, period.since === null ? null : Date.parse(period.since));
    for (const line of selection.skipped) process.stderr.write(`imsimta report: ${line}\n`);
    files = selection.files;
  }

  const aggregator = new ReportAggregator({ since: period.since, until: period.until, top });
  const total = files.reduce((sum, f) => sum + f.size, 0);
  const progress = terminalProgress('imsimta report: reading mail.log', 'bytes');
  let before = 0;
  try {
    for (const file of files) {
      await readLines(file.path, (line) => aggregator.addLine(line), (bytes) => progress.update(before + bytes, total)).catch((err: NodeJS.ErrnoException) => {
        throw new CommandError(`cannot read ${file.path}: ${err.message}`);
      });
      before += file.size;
    }
  } finally {
    progress.end();
  }
  const report = aggregator.result();
  process.stdout.write(args.flags.has('json') ? JSON.stringify({ ...report, files: files.map((f) => f.path) }) + '\n' : formatReport(report, files.map((f) => f.path)));
  return 0;
}
