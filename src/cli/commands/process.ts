// `imsimta process [--json] [--root DIR]`: the processes of the running instance — watcher,
// dispatcher, SMTP server processes (with open and total connections), job controller and
// channel jobs. --json: one object per process per line (the job controller's with `scan` while
// a queue scan is under way, and on a farm's node `node` and `redis`: up or down); otherwise a
// ps-like table, a line saying how far a scan is, and on a farm's node which node it is.
import { parseArgs } from '../args.js';
import { CommandError, UsageError } from '../errors.js';
import { instancePaths, resolveRoot } from '../../common/instance.js';
import { askWatcher } from '../../watcher/client.js';
import type { ProcessRow } from '../../watcher/control.js';
import { describeScan, readScanView } from '../../job-controller/scan-progress.js';

export async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, [], ['json']);
  if (args.positionals.length > 0) throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
  const paths = instancePaths(resolveRoot(args.values.get('root')));
  const reply = await askWatcher(paths, { op: 'processes' }).catch((err: Error) => {
    throw new CommandError(err.message);
  });
  if (!reply) throw new CommandError('tsubame is not running');
  if (!reply.ok) throw new CommandError(reply.error);
  const rows: ProcessRow[] = reply.processes;
  process.stdout.write(args.flags.has('json') ? rows.map((r) => JSON.stringify(r) + '\n').join('') : formatTable(rows) + scanLines(rows, Date.now()) + farmLine(rows));
  return 0;
}

/** A ps-like table: ROLE PID SERVICE/CHANNEL CONNS SERVED STARTED. */
export function formatTable(rows: ProcessRow[]): string {
  const cells = rows.map((r) => [
    r.role,
    r.pid === null ? '-' : String(r.pid),
    r.role === 'job' ? `${r.channel ?? '-'}${r.pool ? ` (pool ${r.pool})` : ''}` : (r.service ?? '-'),
    r.connections === undefined ? '-' : String(r.connections),
    r.served === undefined ? '-' : String(r.served),
    r.started ? String(r.started) : '-',
  ]);
  const header = ['ROLE', 'PID', 'SERVICE/CHANNEL', 'CONNS', 'SERVED', 'STARTED'];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  return [header, ...cells].map((c) => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i]!))).join('  ') + '\n').join('');
}

/** `job controller: scanning the queue (start, 12 s): 45,000 files listed…` when a scan is under way. */
export function scanLines(rows: ProcessRow[], nowMs: number): string {
  return rows
    .filter((r) => r.role === 'job_controller')
    .map((r) => readScanView(r.scan))
    .filter((v) => v !== null)
    .map((v) => `job controller: ${describeScan(v, nowMs)}\n`)
    .join('');
}

/** `farm node mx-2: Redis reached` (or `unreachable: shaping with this node's share`) on a farm's node. */
function farmLine(rows: ProcessRow[]): string {
  const jc = rows.find((r) => r.role === 'job_controller' && typeof r.node === 'string');
  if (!jc) return '';
  return `farm node ${String(jc.node)}: Redis ${jc.redis === 'up' ? 'reached' : "unreachable (shaping with this node's share of each limit)"}\n`;
}
