// `imsimta qm`: the queue manager. Works on the queue files directly (whether or not the MTA runs)
// and tells a running job controller what it changed.
//   summarize [--json]          messages, pending recipients and held messages per channel
//   directory [CHANNEL] [--json] one entry per queued message
//   hold|release|delete|return ID…
//   start|stop CHANNEL          resume/suspend delivery on a channel (kept in queue/.stopped-channels)
//   corrupt [--json]            files set aside as unreadable
//   shaping [CHANNEL] [--json]  each destination's traffic shaping (asked of the running job controller)
// On a terminal a progress line counts what has been read of a large queue (src/cli/progress.ts).
import { parseArgs } from '../args.js';
import { CommandError, UsageError, firstLine } from '../errors.js';
import { instancePaths, resolveRoot, type InstancePaths } from '../../common/instance.js';
import { MailLog, type MailLogRecord } from '../../common/mail-log.js';
import type { InstanceConfig } from '../../config/types.js';
import { loadConfigIfPossible } from '../../queue/load-config.js';
import type { JobControllerRequest } from '../../job-controller/protocol.js';
import { askJobController } from '../../job-controller/client.js';
import { shapingRateText, shapingStateText, shapingView, type DestinationShaping } from '../../job-controller/shaping-view.js';
import { becomeQueueOwner } from '../service-user-start.js';
import { terminalProgress } from '../progress.js';
import {
  QueueStore,
  queueStoreFor,
  readStoppedChannels,
  setChannelStopped,
  isValidChannelName,
  directoryRow,
  summarize,
  sortRows,
  formatSummaryTable,
  formatDirectoryTable,
  type DirectoryRow,
  type Envelope,
  type ScanEntry,
  type QueueRef,
} from '../../queue/index.js';

/** The status text `qm return` gives every pending recipient (the DSN tells the sender). */
export const RETURNED_STATUS = '5.0.0 returned by the postmaster';

const USAGE = 'imsimta qm [--root DIR] summarize|directory [CHANNEL]|hold ID…|release ID…|delete ID…|return ID…|start CHANNEL|stop CHANNEL|corrupt|shaping [CHANNEL] [--json]';

interface Context {
  root: string;
  paths: InstancePaths;
  config: InstanceConfig | null;
  store: QueueStore;
  json: boolean;
  out: (text: string) => void;
  warn: (text: string) => void;
}

export async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, [], ['json']);
  const [sub, ...rest] = args.positionals;
  if (!sub) throw new UsageError(`a qm command is needed (${USAGE})`);
  const root = resolveRoot(args.values.get('root'));
  const paths = instancePaths(root);
  const warn = (text: string) => void process.stderr.write(`imsimta qm: ${text}\n`);
  // The configuration only adds channel names and subdirs; a broken one must not lock the operator out of the queue.
  const { config, error } = loadConfigIfPossible(root);
  if (error) warn(`configuration not loaded, working from the queue directories only: ${firstLine(error)}`);
  becomeQueueOwner(paths, config?.options ?? null);
  const ctx: Context = { root, paths, config, store: queueStoreFor(paths, config), json: args.flags.has('json'), out: (t) => void process.stdout.write(t), warn };
  try {
    switch (sub.toLowerCase()) {
      case 'summarize':
      case 'summary':
        noMoreThan(rest, 0, 'summarize');
        return await summarizeCommand(ctx);
      case 'directory':
      case 'dir':
        noMoreThan(rest, 1, 'directory');
        return await directoryCommand(ctx, rest[0]);
      case 'hold':
      case 'release':
      case 'delete':
      case 'return':
        if (rest.length === 0) throw new UsageError(`qm ${sub} needs at least one message id`);
        return await messageCommand(ctx, sub.toLowerCase() as MessageAction, rest);
      case 'start':
      case 'stop':
        if (rest.length !== 1) throw new UsageError(`qm ${sub} needs one channel name`);
        return await channelCommand(ctx, sub.toLowerCase() as 'start' | 'stop', rest[0]!);
      case 'corrupt':
        noMoreThan(rest, 0, 'corrupt');
        return await corruptCommand(ctx);
      case 'shaping':
        noMoreThan(rest, 1, 'shaping');
        return await shapingCommand(ctx, rest[0]);
      default:
        throw new UsageError(`unknown qm command "${sub}"`);
    }
  } finally {
    await ctx.store.close();
  }
}

// --------------------------------------------------------------- listings

/**
 * What the SMTP channels' fan-outs hold per destination, as the job controller last heard it from
 * its delivery threads (within a second or so): the shaping state lives there, not on disk.
 */
async function shapingCommand(ctx: Context, channel: string | undefined): Promise<number> {
  if (channel !== undefined) await checkChannel(ctx, channel);
  let reply;
  try {
    reply = await askJobController(ctx.paths.jobControllerSocket, { op: 'status' });
  } catch (err) {
    throw new CommandError(`cannot ask the job controller (${firstLine((err as Error).message)})`);
  }
  if (!reply) throw new CommandError('the job controller is not running: traffic shaping is kept by its delivery threads');
  if (!reply.ok) throw new CommandError(`the job controller answered: ${reply.error}`);
  const rows = shapingView(reply.fanout ?? {}).filter((r) => channel === undefined || r.channel.toLowerCase() === channel.toLowerCase());
  ctx.out(ctx.json ? rows.map((r) => JSON.stringify(r) + '\n').join('') : formatShapingTable(rows, Date.now()));
  return 0;
}

function formatShapingTable(rows: DestinationShaping[], nowMs: number): string {
  if (rows.length === 0) return 'No destination in the SMTP channels\' fan-outs.\n';
  const header = ['CHANNEL', 'DESTINATION', 'STATE', 'CONNS', 'RATE', 'WAITING', 'OLDEST', 'DEFERRED', 'THROTTLES', 'LAST THROTTLE'];
  const cells = rows.map((r) => [
    r.channel,
    r.destination,
    shapingStateText(r, nowMs),
    `${r.connections}/${r.connectionWindow}/${r.maxConnections}`,
    shapingRateText(r),
    String(r.waiting),
    r.oldest === null ? '-' : `${Math.max(0, Math.round((nowMs - r.oldest) / 1000))}s`,
    String(r.deferred),
    String(r.throttles),
    r.lastThrottle ? `${new Date(r.lastThrottle.at).toISOString().slice(11, 19)} ${r.lastThrottle.reply}` : '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const lines = [header, ...cells].map((c) => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i]!))).join('  ').trimEnd() + '\n');
  return lines.join('') + 'CONNS: open/window/MAX_CONNECTIONS; RATE: messages per second lately (of the rate allowed now)\n';
}

async function readRows(ctx: Context, channel?: string): Promise<DirectoryRow[]> {
  const rows: DirectoryRow[] = [];
  const stopped = new Set(await readStoppedChannels(ctx.root));
  const progress = terminalProgress('imsimta qm: reading the queue', 'messages');
  try {
    for await (const entry of ctx.store.scan(channel)) {
      const info = await ctx.store.inspect(entry.path); // corrupt files are set aside, gone ones skipped
      if (info) rows.push(directoryRow(entry, info.envelope, info.size, stopped.has(entry.channel)));
      progress.update(rows.length);
    }
  } finally {
    progress.end();
  }
  return sortRows(rows);
}

async function knownChannels(ctx: Context): Promise<string[]> {
  const names = new Set(await ctx.store.listChannels());
  for (const c of ctx.config?.imta.channels ?? []) names.add(c.name);
  return [...names];
}

async function summarizeCommand(ctx: Context): Promise<number> {
  const summary = summarize(await readRows(ctx), await knownChannels(ctx), await readStoppedChannels(ctx.root));
  ctx.out(ctx.json ? JSON.stringify(summary) + '\n' : formatSummaryTable(summary));
  return 0;
}

async function directoryCommand(ctx: Context, channel: string | undefined): Promise<number> {
  if (channel !== undefined) await checkChannel(ctx, channel);
  const rows = await readRows(ctx, channel);
  ctx.out(ctx.json ? rows.map((r) => JSON.stringify(r) + '\n').join('') : formatDirectoryTable(rows));
  return 0;
}

async function corruptCommand(ctx: Context): Promise<number> {
  const list = await ctx.store.listCorrupt();
  if (ctx.json) {
    ctx.out(list.map((c) => JSON.stringify({ name: c.name, reason: c.reason, original_path: c.originalPath }) + '\n').join(''));
  } else if (list.length === 0) {
    ctx.out(`No corrupt queue files in ${ctx.paths.corrupt}.\n`);
  } else {
    const width = Math.max(...list.map((c) => c.name.length));
    ctx.out(`Corrupt queue files in ${ctx.paths.corrupt}:\n`);
    for (const c of list) ctx.out(`${c.name.padEnd(width)}  ${c.reason}${c.originalPath ? `  (was ${c.originalPath})` : ''}\n`);
  }
  return 0;
}

// ---------------------------------------------------------- message actions

type MessageAction = 'hold' | 'release' | 'delete' | 'return';

async function messageCommand(ctx: Context, action: MessageAction, ids: string[]): Promise<number> {
  const wanted = new Set(ids.map((id) => id.toUpperCase()));
  const found = await findEntries(ctx.store, wanted);
  let failures = 0;
  const done: string[] = [];
  for (const id of wanted) {
    const entry = found.get(id);
    if (!entry) {
      ctx.warn(`no queued message with id ${id}`);
      failures++;
      continue;
    }
    try {
      const text = await applyAction(ctx, action, entry);
      done.push(id);
      if (!ctx.json) ctx.out(`${id}: ${text}\n`);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      ctx.warn(e.code === 'ENOENT' ? `${id}: the message left the queue meanwhile (delivered or changed by the job controller)` : `${id}: ${firstLine(e.message)}`);
      failures++;
    }
  }
  if (done.length > 0) await tellJobController(ctx, { op: 'qm', action, ids: done });
  return failures > 0 ? 1 : 0;
}

async function applyAction(ctx: Context, action: MessageAction, entry: ScanEntry): Promise<string> {
  const store = ctx.store;
  const ref: QueueRef = { id: entry.id, channel: entry.channel, path: entry.path };
  switch (action) {
    case 'hold':
      if (entry.held) return 'already held';
      await store.hold(ref);
      return 'held';
    case 'release':
      if (!entry.held) return 'not held';
      await store.release(ref);
      return 'released';
    case 'delete': {
      // Read first: mail.log says what left the queue (its recipients not delivered yet).
      const info = await store.inspect(ref.path);
      await store.remove(ref);
      if (info) logDeleted(ctx, info.envelope, info.size);
      return 'deleted';
    }
    case 'return': {
      const envelope = await store.readEnvelope(ref.path);
      let returned = 0;
      for (const r of envelope.recipients) {
        if (r.state !== 'pending') continue;
        r.state = 'failed';
        r.status = RETURNED_STATUS;
        returned++;
      }
      const current = await store.update(ref, envelope);
      // A held message is never scheduled: release it so that the job controller sends the notice.
      if (entry.held) await store.release(current);
      return returned > 0 ? `${returned} recipient${returned === 1 ? '' : 's'} marked for return to the sender` : 'no pending recipients';
    }
  }
}

/** One X record per recipient not delivered yet: a deleted message is traced in mail.log as the others are. */
function logDeleted(ctx: Context, envelope: Envelope, size: number): void {
  const records: MailLogRecord[] = envelope.recipients
    .filter((r) => r.state !== 'delivered')
    .map((r) => ({ event: 'X', id: envelope.id, source: envelope.sourceChannel, destination: envelope.channel, size: envelope.mailParams.size ?? size, from: envelope.from, recipient: r.address, status: `deleted by the operator (imsimta qm delete)${r.status ? `; last status: ${r.status}` : ''}` }));
  const log = new MailLog(ctx.paths.mailLog);
  try {
    log.write(records);
  } catch (err) {
    ctx.warn(`${envelope.id}: deleted, but mail.log could not be written: ${firstLine((err as Error).message)}`);
  } finally {
    log.close();
  }
}

/** One scan for all the ids asked for. */
async function findEntries(store: QueueStore, ids: Set<string>): Promise<Map<string, ScanEntry>> {
  const found = new Map<string, ScanEntry>();
  const progress = terminalProgress('imsimta qm: looking for the messages', 'queue files');
  let seen = 0;
  try {
    for await (const entry of store.scan()) {
      progress.update(++seen);
      if (ids.has(entry.id)) found.set(entry.id, entry);
      if (found.size === ids.size) break;
    }
  } finally {
    progress.end();
  }
  return found;
}

// ---------------------------------------------------------- channel actions

async function channelCommand(ctx: Context, action: 'start' | 'stop', channel: string): Promise<number> {
  await checkChannel(ctx, channel);
  const changed = await setChannelStopped(ctx.root, channel, action === 'stop');
  if (!ctx.json) ctx.out(`channel ${channel} ${action === 'stop' ? 'stopped' : 'started'}${changed ? '' : ' (it already was)'}\n`);
  await tellJobController(ctx, { op: 'qm', action, channel });
  return 0;
}

async function checkChannel(ctx: Context, channel: string): Promise<void> {
  if (!isValidChannelName(channel)) throw new CommandError(`"${channel}" is not a channel name`);
  const known = await knownChannels(ctx);
  if (!known.includes(channel)) throw new CommandError(`no channel named "${channel}"${ctx.config ? ' in imta.cnf' : ''}`);
}

// -------------------------------------------------------------- helpers

/** The change is on disk already; a job controller that is down picks it up when it starts. */
async function tellJobController(ctx: Context, request: JobControllerRequest): Promise<void> {
  try {
    const reply = await askJobController(ctx.paths.jobControllerSocket, request);
    if (reply?.ok === false) ctx.warn(`the job controller answered: ${reply.error}`);
  } catch (err) {
    ctx.warn(`could not tell the job controller (${firstLine((err as Error).message)}); it will see the change at its next queue scan`);
  }
}

function noMoreThan(rest: string[], n: number, what: string): void {
  if (rest.length > n) throw new UsageError(`qm ${what} takes ${n === 0 ? 'no arguments' : `at most ${n} argument`}, got "${rest.join(' ')}"`);
}

