// The status page's recent past, kept in memory at a fixed size by the metrics side: per minute
// of the last HISTORY_MINUTES, the messages received, delivered, deferred and returned and the
// recipients rejected (counted from mail.log records as `imsimta report` counts them), and the
// last queue depth per channel, oldest message's age and open SMTP sessions sampled in that
// minute; and the last deferral and return records, for grouping by reason and destination with
// the queue ids of each group. Rings of fixed length: memory does not grow with traffic or time.
// Pure: records and samples in, plain data out.
import { detach, MessageRuns, type LooseMailLogRecord } from '../common/mail-log-read.js';
import { statusReason } from '../common/mail-log-reasons.js';

const HISTORY_MINUTES = 360;
/** Channels with a queue-depth series; the ones seen later are left out of the chart. */
const HISTORY_CHANNELS = 32;
/** Deferral and return records kept for the groups. */
const OUTCOME_RECORDS = 10_000;
/** Queue ids kept per group for its page. */
export const GROUP_IDS = 200;

export const EVENT_SERIES = ['received', 'delivered', 'deferred', 'returned', 'rejected'] as const;
export type EventSeries = (typeof EVENT_SERIES)[number];

export interface GaugeSample {
  /** Messages per channel, held ones included; null: the queue could not be read. */
  queue: Array<{ channel: string; messages: number; oldestMs: number | null }> | null;
  /** Open SMTP sessions over all services; null: the dispatcher did not answer. */
  connections: number | null;
}

/** The charts' data: one entry per minute from `from` to `to` (ms at the minute's start). */
export interface HistoryView {
  from: number;
  to: number;
  /** Start of each minute (ms). */
  minutes: number[];
  events: Record<EventSeries, number[]>;
  /** Per channel, null where no sample was taken. */
  queue: Array<{ channel: string; values: Array<number | null> }>;
  /** Seconds, the largest over the channels. */
  oldestAge: Array<number | null>;
  connections: Array<number | null>;
}

export interface OutcomeGroup {
  event: 'Q' | 'R';
  /** The remote host, or the recipients' domain when no host answered. */
  destination: string;
  reason: string;
  recipients: number;
  messages: number;
  /** ISO time of the newest record. */
  last: string;
}

export interface OutcomeRecord {
  event: 'Q' | 'R';
  time: string;
  id: string;
  channel: string;
  recipient: string;
  destination: string;
  reason: string;
  /** The first record of its message in this group (counts the message). */
  first: boolean;
}

const MINUTE = 60_000;

interface Slot {
  /** The minute (ms) the slot holds; another value: stale. */
  minute: number;
  events: Record<EventSeries, number>;
  sampled: boolean;
  queue: Map<string, number>;
  oldestAge: number | null;
  connections: number | null;
}

function emptyEvents(): Record<EventSeries, number> {
  return { received: 0, delivered: 0, deferred: 0, returned: 0, rejected: 0 };
}

export class TrafficHistory {
  private readonly slots: Slot[];
  private readonly channels: string[] = [];
  private readonly runs = new MessageRuns();
  private readonly outcomes: Array<OutcomeRecord | undefined>;
  private outcomeNext = 0;
  /** The last Q/R message (event + id + group key): its next records are the same message. */
  private lastOutcomeKey = '';

  constructor(private readonly minutes = HISTORY_MINUTES, private readonly outcomeCapacity = OUTCOME_RECORDS) {
    this.slots = Array.from({ length: minutes }, () => ({ minute: -1, events: emptyEvents(), sampled: false, queue: new Map(), oldestAge: null, connections: null }));
    this.outcomes = new Array<OutcomeRecord | undefined>(outcomeCapacity);
  }

  private slot(ms: number): Slot {
    const minute = Math.floor(ms / MINUTE) * MINUTE;
    const s = this.slots[Math.floor(minute / MINUTE) % this.minutes]!;
    if (s.minute !== minute) {
      s.minute = minute;
      s.events = emptyEvents();
      s.sampled = false;
      s.queue = new Map();
      s.oldestAge = null;
      s.connections = null;
    }
    return s;
  }

  /** One mail.log record; `nowMs` leaves out records older than the history (a backlog read at start). */
  addRecord(r: LooseMailLogRecord, nowMs: number): void {
    const run = this.runs.next(r);
    const ms = Date.parse(r.time);
    if (!Number.isFinite(ms) || ms <= nowMs - this.minutes * MINUTE || ms > nowMs + MINUTE) return;
    const s = this.slot(ms);
    switch (r.event) {
      case 'E':
        if (run.received) s.events.received++;
        break;
      case 'D':
        if (run.message) s.events.delivered++;
        break;
      case 'Q':
      case 'R': {
        if (run.message) s.events[r.event === 'Q' ? 'deferred' : 'returned']++;
        const { reason, host } = statusReason(r.status);
        const destination = host || domainOf(r.recipient);
        const key = `${r.event}\n${r.id}\n${destination}\n${reason}`;
        const first = key !== this.lastOutcomeKey || r.id === '';
        this.lastOutcomeKey = key;
        // Copies: a piece of the line would keep the whole chunk of mail.log it came in alive.
        this.outcomes[this.outcomeNext] = { event: r.event, time: detach(r.time), id: detach(r.id), channel: detach(r.destination), recipient: detach(r.recipient), destination: detach(destination), reason: detach(reason), first };
        this.outcomeNext = (this.outcomeNext + 1) % this.outcomeCapacity;
        break;
      }
      case 'J':
        s.events.rejected++;
        break;
    }
  }

  /** What a snapshot saw at `ms`: the minute keeps the last sample taken in it. */
  addSample(ms: number, sample: GaugeSample): void {
    const s = this.slot(ms);
    s.sampled = true;
    if (sample.queue) {
      let oldest: number | null = null;
      for (const q of sample.queue) {
        if (!this.channels.includes(q.channel)) {
          if (this.channels.length >= HISTORY_CHANNELS) continue;
          this.channels.push(q.channel);
        }
        s.queue.set(q.channel, q.messages);
        if (q.oldestMs !== null) oldest = Math.max(oldest ?? 0, Math.max(0, (ms - q.oldestMs) / 1000));
      }
      s.oldestAge = oldest ?? 0;
    }
    s.connections = sample.connections;
  }

  /** The charts' data from the first minute with anything (at most the whole history) to now. */
  view(nowMs: number): HistoryView {
    const to = Math.floor(nowMs / MINUTE) * MINUTE;
    const earliest = to - (this.minutes - 1) * MINUTE;
    let from = to;
    for (const s of this.slots) if (s.minute >= earliest && s.minute < from && (s.sampled || EVENT_SERIES.some((e) => s.events[e] > 0))) from = s.minute;
    const minutes: number[] = [];
    for (let m = from; m <= to; m += MINUTE) minutes.push(m);
    const at = (m: number) => {
      const s = this.slots[Math.floor(m / MINUTE) % this.minutes]!;
      return s.minute === m ? s : null;
    };
    const events = Object.fromEntries(EVENT_SERIES.map((e) => [e, minutes.map((m) => at(m)?.events[e] ?? 0)])) as Record<EventSeries, number[]>;
    const queue = this.channels.map((channel) => ({ channel, values: minutes.map((m) => { const s = at(m); return s?.sampled && s.queue.size ? (s.queue.get(channel) ?? 0) : null; }) }));
    return {
      from,
      to,
      minutes,
      events,
      queue,
      oldestAge: minutes.map((m) => at(m)?.oldestAge ?? null),
      connections: minutes.map((m) => at(m)?.connections ?? null),
    };
  }

  /** The deferral and return records kept, oldest first, within the history's window. */
  private records(nowMs: number): OutcomeRecord[] {
    const since = new Date(nowMs - this.minutes * MINUTE).toISOString();
    const out: OutcomeRecord[] = [];
    for (let i = 0; i < this.outcomeCapacity; i++) {
      const r = this.outcomes[(this.outcomeNext + i) % this.outcomeCapacity];
      if (r && r.time > since) out.push(r);
    }
    return out;
  }

  /** Deferrals and returns grouped by event, destination and reason, the largest first. */
  groups(nowMs: number): OutcomeGroup[] {
    const byKey = new Map<string, OutcomeGroup>();
    for (const r of this.records(nowMs)) {
      const key = groupKey(r);
      const g = byKey.get(key) ?? { event: r.event, destination: r.destination, reason: r.reason, recipients: 0, messages: 0, last: r.time };
      g.recipients++;
      if (r.first) g.messages++;
      if (r.time > g.last) g.last = r.time;
      byKey.set(key, g);
    }
    return [...byKey.values()].sort((a, b) => b.messages - a.messages || b.recipients - a.recipients || compare(b.last, a.last) || compare(groupKey(a), groupKey(b)));
  }

  /** The newest records of one group (at most GROUP_IDS messages), newest first. */
  groupRecords(nowMs: number, group: Pick<OutcomeGroup, 'event' | 'destination' | 'reason'>): OutcomeRecord[] {
    const key = groupKey(group);
    const out: OutcomeRecord[] = [];
    const ids = new Set<string>();
    const all = this.records(nowMs);
    for (let i = all.length - 1; i >= 0; i--) {
      const r = all[i]!;
      if (groupKey(r) !== key) continue;
      if (!ids.has(r.id) && ids.size >= GROUP_IDS) break;
      ids.add(r.id);
      out.push(r);
    }
    return out;
  }
}

function groupKey(g: Pick<OutcomeGroup, 'event' | 'destination' | 'reason'>): string {
  return `${g.event}\n${g.destination}\n${g.reason}`;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '(local)' : address.slice(at + 1).toLowerCase();
}
