// `imsimta counters [--json] [--root DIR]`: per-channel counts of messages (and recipients)
// enqueued, delivered, deferred and returned, from the job controller, and the queue depth now,
// from the queue directories. With the job controller down only the queue depth is known.
// --json: one object keyed by channel: {enqueued, delivered, deferred, returned, queued, held, recipients}.
import { parseArgs } from '../args.js';
import { CommandError, UsageError } from '../errors.js';
import { instancePaths, resolveRoot } from '../../common/instance.js';
import { askJobController } from '../../job-controller/client.js';
import { loadConfigIfPossible } from '../../queue/load-config.js';
import { queueStoreFor } from '../../queue/index.js';
import { COUNTER_FIELDS, emptyCounters, parseCounters, type ChannelCounters, type CounterTable } from '../../job-controller/counters.js';

export interface CounterRow {
  enqueued: number | null;
  delivered: number | null;
  deferred: number | null;
  returned: number | null;
  queued: number;
  held: number;
  recipients: ChannelCounters['recipients'] | null;
}

export async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, [], ['json']);
  if (args.positionals.length > 0) throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
  const root = resolveRoot(args.values.get('root'));
  const paths = instancePaths(root);

  let counters: CounterTable | null = null;
  let unavailable: string | null = null;
  try {
    const reply = await askJobController(paths.jobControllerSocket, { op: 'counters' });
    if (!reply) unavailable = 'the job controller is not running';
    else if (reply.ok !== true) unavailable = `the job controller answered: ${reply.error}`;
    else counters = parseCounters(JSON.stringify({ channels: reply.counters }));
  } catch (err) {
    unavailable = `the job controller did not answer (${(err as Error).message})`;
  }

  const { config } = loadConfigIfPossible(root);
  const store = queueStoreFor(paths, config);
  const depth = new Map<string, { queued: number; held: number }>();
  try {
    for await (const e of store.scan()) {
      const d = depth.get(e.channel) ?? { queued: 0, held: 0 };
      d.queued++;
      if (e.held) d.held++;
      depth.set(e.channel, d);
    }
  } catch (err) {
    throw new CommandError(`cannot read the queue: ${(err as Error).message}`);
  } finally {
    await store.close();
  }

  const names = new Set<string>([...(config?.imta.channels.map((c) => c.name) ?? []), ...depth.keys(), ...Object.keys(counters ?? {})]);
  const table: Record<string, CounterRow> = {};
  for (const name of [...names].sort()) {
    const c = counters ? (counters[name] ?? emptyCounters()) : null;
    const d = depth.get(name) ?? { queued: 0, held: 0 };
    table[name] = {
      enqueued: c?.enqueued ?? null,
      delivered: c?.delivered ?? null,
      deferred: c?.deferred ?? null,
      returned: c?.returned ?? null,
      queued: d.queued,
      held: d.held,
      recipients: c ? c.recipients : null,
    };
  }
  if (unavailable) process.stderr.write(`imsimta counters: ${unavailable}: only the queue depth is shown; the other counters are unavailable\n`);
  process.stdout.write(args.flags.has('json') ? JSON.stringify(table) + '\n' : formatCounters(table));
  return 0;
}

/** A table: messages, with recipients in parentheses; `-` where the job controller could not say. */
export function formatCounters(table: Record<string, CounterRow>): string {
  const header = ['CHANNEL', ...COUNTER_FIELDS.map((f) => f.toUpperCase()), 'QUEUED', 'HELD'];
  const rows = Object.entries(table).map(([name, r]) => [
    name,
    ...COUNTER_FIELDS.map((f) => (r[f] === null ? '-' : `${r[f]} (${r.recipients?.[f] ?? 0})`)),
    String(r.queued),
    String(r.held),
  ]);
  if (rows.length === 0) return 'No channels.\n';
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((c) => c[i]!.length)));
  const line = (cells: string[]) => cells.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ') + '\n';
  return line(header) + rows.map(line).join('') + 'Messages, with recipients in parentheses; QUEUED and HELD are messages in the queue now.\n';
}
