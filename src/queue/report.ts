// What `imsimta qm` shows: plain rows built from queue files, and their text and JSON forms
// (DESIGN.md "Contracts": summarize is one JSON object, directory one object per message per line).
import type { Envelope, ScanEntry } from './types.js';

export interface DirectoryRow {
  id: string;
  channel: string;
  /** Envelope From ('' = null reverse path). */
  from: string;
  /** Recipients still to be delivered. */
  recipients: string[];
  attempts: number;
  /** ISO time, or null = at once. */
  next_attempt: string | null;
  held: boolean;
  /** Message size in octets. */
  size: number;
  /** ISO time the MTA accepted it. */
  arrival: string;
  source_channel: string;
  /** Why it waits: the last status of its first pending recipient that has one (a deferral's reply), or null (not tried yet). */
  last_error: string | null;
  /** Each pending recipient with its last status (null: not tried yet). */
  recipient_status: Array<{ address: string; status: string | null }>;
  /** Delivery on its channel is stopped (`qm stop`): nothing is tried, whatever next_attempt says, until `qm start`. */
  channel_stopped: boolean;
}

export interface ChannelSummary {
  name: string;
  messages: number;
  /** Pending recipients. */
  recipients: number;
  /** Held messages. */
  held: number;
  /** Delivery stopped with `qm stop`. */
  stopped: boolean;
}

export interface QueueSummary {
  channels: ChannelSummary[];
  messages: number;
  recipients: number;
  held: number;
}

export function directoryRow(entry: ScanEntry, envelope: Envelope, size: number, channelStopped = false): DirectoryRow {
  const pending = envelope.recipients.filter((r) => r.state === 'pending');
  return {
    id: entry.id,
    channel: entry.channel,
    from: envelope.from,
    recipients: pending.map((r) => r.address),
    attempts: envelope.attempts,
    next_attempt: envelope.nextAttempt ? envelope.nextAttempt.toISOString() : null,
    held: entry.held,
    size,
    arrival: envelope.arrival.toISOString(),
    source_channel: envelope.sourceChannel,
    last_error: pending.find((r) => r.status)?.status ?? null,
    recipient_status: pending.map((r) => ({ address: r.address, status: r.status })),
    channel_stopped: channelStopped,
  };
}

/** Every channel named (configured or with a queue directory) appears, with zeros when empty. */
export function summarize(rows: DirectoryRow[], channelNames: Iterable<string>, stopped: Iterable<string>): QueueSummary {
  const stoppedSet = new Set(stopped);
  const byName = new Map<string, ChannelSummary>();
  const get = (name: string) => {
    let c = byName.get(name);
    if (!c) byName.set(name, (c = { name, messages: 0, recipients: 0, held: 0, stopped: stoppedSet.has(name) }));
    return c;
  };
  for (const name of channelNames) get(name);
  for (const row of rows) {
    const c = get(row.channel);
    c.messages++;
    c.recipients += row.recipients.length;
    if (row.held) c.held++;
  }
  const channels = [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  return {
    channels,
    messages: channels.reduce((n, c) => n + c.messages, 0),
    recipients: channels.reduce((n, c) => n + c.recipients, 0),
    held: channels.reduce((n, c) => n + c.held, 0),
  };
}

/** Oldest first, as an operator reads a queue. */
export function sortRows(rows: DirectoryRow[]): DirectoryRow[] {
  return [...rows].sort((a, b) => a.channel.localeCompare(b.channel) || a.arrival.localeCompare(b.arrival) || a.id.localeCompare(b.id));
}

export function formatSummaryTable(s: QueueSummary): string {
  const width = Math.max(20, ...s.channels.map((c) => c.name.length + (c.stopped ? 10 : 0)));
  const line = (name: string, m: number, r: number, h: number) =>
    `${name.padEnd(width)}  ${String(m).padStart(9)}  ${String(r).padStart(10)}  ${String(h).padStart(6)}`;
  const out = [`${'Channel'.padEnd(width)}  ${'Messages'.padStart(9)}  ${'Recipients'.padStart(10)}  ${'Held'.padStart(6)}`];
  out.push('-'.repeat(width + 33));
  for (const c of s.channels) out.push(line(c.stopped ? `${c.name} (stopped)` : c.name, c.messages, c.recipients, c.held));
  out.push('-'.repeat(width + 33));
  out.push(line('Total', s.messages, s.recipients, s.held));
  return out.join('\n') + '\n';
}

/**
 * One block per message: a header row, then the envelope From and the pending recipients, each
 * group of them under the reason it waits for (Postfix's mailq does the same).
 */
export function formatDirectoryTable(rows: DirectoryRow[]): string {
  if (rows.length === 0) return 'No messages queued.\n';
  const idWidth = Math.max(...rows.map((r) => r.id.length), 2);
  const chWidth = Math.max(...rows.map((r) => r.channel.length), 7);
  const out = [
    `${'ID'.padEnd(idWidth)}  ${'Channel'.padEnd(chWidth)}  ${'Size'.padStart(9)}  ${'Tries'.padStart(5)}  ${'Arrived'.padEnd(20)}  Next attempt`,
  ];
  for (const r of rows) {
    const next = r.held ? 'held' : r.channel_stopped ? 'channel stopped (qm start)' : r.next_attempt ? shortTime(r.next_attempt) : 'now';
    out.push(`${r.id.padEnd(idWidth)}  ${r.channel.padEnd(chWidth)}  ${String(r.size).padStart(9)}  ${String(r.attempts).padStart(5)}  ${shortTime(r.arrival).padEnd(20)}  ${next}`);
    out.push(`    from <${r.from}>`);
    const byStatus = new Map<string | null, string[]>();
    for (const { address, status } of r.recipient_status) byStatus.set(status, [...(byStatus.get(status) ?? []), address]);
    for (const [status, addresses] of byStatus) {
      if (status) out.push(`    (${status})`);
      for (const rcpt of addresses) out.push(`      to <${rcpt}>`);
    }
    if (r.recipients.length === 0) out.push('      (no pending recipients: waiting for the job controller to finish it)');
  }
  out.push(`${rows.length} message${rows.length === 1 ? '' : 's'}.`);
  return out.join('\n') + '\n';
}

function shortTime(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}
