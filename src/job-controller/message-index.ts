// The job controller's bounded index of queued messages (Messaging Server's queue cache, §2.5):
// never more than MAX_MESSAGES entries; per channel a FIFO of messages due now and a heap of
// messages waiting for their backoff. When a message cannot be added for lack of room the index
// remembers that it overflowed, so that the controller rescans the disk once room frees up.
// Plain data and no I/O.
import { Heap } from './heap.js';

export interface IndexedMessage {
  id: string;
  channel: string;
  path: string;
  attempts: number;
  /** When the MTA accepted it (oldest first). */
  arrivalMs: number;
  /** When the next attempt is due; 0 = now. */
  dueMs: number;
  pendingRecipients: number;
  /** Lower-case domains of the pending recipients (flush by destination). */
  domains: string[];
}

interface Entry extends IndexedMessage {
  inFlight: boolean;
  /** Identifies the entry's current heap item (older heap items for it are stale). */
  heapSeq: number;
}

interface DelayedItem {
  dueMs: number;
  id: string;
  seq: number;
}

class ChannelQueue {
  readonly ready = new Map<string, Entry>();
  readonly delayed = new Heap<DelayedItem>((a, b) => a.dueMs < b.dueMs);
  messages = 0;
  recipients = 0;
  inFlight = 0;
  delayedCount = 0;
}

export interface ChannelIndexStats {
  messages: number;
  recipients: number;
  ready: number;
  delayed: number;
  inFlight: number;
}

export type UpdateFields = Partial<Pick<IndexedMessage, 'path' | 'attempts' | 'dueMs' | 'pendingRecipients' | 'domains'>>;

export class MessageIndex {
  private readonly entries = new Map<string, Entry>();
  private readonly queues = new Map<string, ChannelQueue>();
  private seq = 0;
  /** An add was refused for lack of room since the last complete rescan. */
  overflowed = false;
  /** The most entries ever held at once (for tests and status). */
  highWater = 0;

  constructor(public maxMessages: number) {}

  get size(): number {
    return this.entries.size;
  }

  get room(): number {
    return Math.max(0, this.maxMessages - this.entries.size);
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  get(id: string): Readonly<IndexedMessage> & { inFlight: boolean } | undefined {
    return this.entries.get(id);
  }

  /**
   * Adds the message (due at `dueMs`); false when the index is full (it then counts as overflowed)
   * or already knows it. `overLimit`: a message an operator or ETRN named (a flush) is taken even
   * when the index is full; the excess is bounded by what the flush names and leaves as it is tried.
   */
  add(msg: IndexedMessage, nowMs: number, overLimit = false): boolean {
    if (this.entries.has(msg.id)) return false;
    if (this.entries.size >= this.maxMessages && !overLimit) {
      this.overflowed = true;
      return false;
    }
    const entry: Entry = { ...msg, domains: [...msg.domains], inFlight: false, heapSeq: 0 };
    this.entries.set(entry.id, entry);
    this.highWater = Math.max(this.highWater, this.entries.size);
    const q = this.queue(entry.channel);
    q.messages++;
    q.recipients += entry.pendingRecipients;
    this.place(q, entry, nowMs);
    return true;
  }

  /**
   * Makes room for new mail in a full index: removes up to `count` waiting (not in flight) entries
   * whose next attempt is the furthest away. They stay on disk and come back with a rescan; the
   * index counts as overflowed. Without this, an index full of long-deferred mail would keep new
   * mail out until half of it left. Returns the ids removed.
   */
  evictFurthestWaiting(count: number, nowMs: number): string[] {
    const waiting: Entry[] = [];
    for (const entry of this.entries.values()) if (!entry.inFlight && entry.dueMs > nowMs) waiting.push(entry);
    waiting.sort((a, b) => b.dueMs - a.dueMs);
    const victims = waiting.slice(0, Math.max(0, count)).map((e) => e.id);
    for (const id of victims) this.remove(id);
    if (victims.length > 0) this.overflowed = true;
    return victims;
  }

  remove(id: string): boolean {
    const entry = this.entries.get(id);
    if (!entry) return false;
    this.entries.delete(id);
    const q = this.queue(entry.channel);
    q.messages--;
    q.recipients -= entry.pendingRecipients;
    if (entry.inFlight) q.inFlight--;
    else if (!q.ready.delete(id)) q.delayedCount--;
    entry.heapSeq = -1;
    if (q.messages === 0) this.queues.delete(entry.channel);
    return true;
  }

  /** Moves messages whose backoff has expired to their channel's ready list. */
  promoteDue(nowMs: number): void {
    for (const q of this.queues.values()) {
      for (let top = q.delayed.peek(); top && top.dueMs <= nowMs; top = q.delayed.peek()) {
        q.delayed.pop();
        const entry = this.entries.get(top.id);
        if (entry?.heapSeq !== top.seq || entry.inFlight) continue; // stale item
        entry.heapSeq = 0;
        q.delayedCount--;
        q.ready.set(entry.id, entry);
      }
    }
  }

  /** The earliest time a waiting message becomes due, or null when none waits. */
  nextDueMs(): number | null {
    let best: number | null = null;
    for (const q of this.queues.values()) {
      // Drop stale tops so that they do not cause useless wake-ups.
      for (let top = q.delayed.peek(); top; top = q.delayed.peek()) {
        const entry = this.entries.get(top.id);
        if (entry?.heapSeq === top.seq && !entry.inFlight) break;
        q.delayed.pop();
      }
      const top = q.delayed.peek();
      if (top && (best === null || top.dueMs < best)) best = top.dueMs;
    }
    return best;
  }

  /** Hands up to `max` ready messages of the channel to a job (they are in flight until rescheduled or removed). */
  take(channel: string, max: number): IndexedMessage[] {
    const q = this.queues.get(channel);
    if (!q) return [];
    const out: IndexedMessage[] = [];
    for (const entry of q.ready.values()) {
      if (out.length >= max) break;
      q.ready.delete(entry.id);
      entry.inFlight = true;
      q.inFlight++;
      out.push({ ...entry, domains: [...entry.domains] });
    }
    return out;
  }

  /** After an attempt (or when a message taken could not be tried): new state, waiting until `dueMs`. */
  reschedule(id: string, fields: UpdateFields, nowMs: number): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    const q = this.queue(entry.channel);
    if (entry.inFlight) {
      entry.inFlight = false;
      q.inFlight--;
    } else if (!q.ready.delete(id)) {
      q.delayedCount--;
    }
    entry.heapSeq = 0;
    if (fields.pendingRecipients !== undefined) {
      q.recipients += fields.pendingRecipients - entry.pendingRecipients;
      entry.pendingRecipients = fields.pendingRecipients;
    }
    if (fields.path !== undefined) entry.path = fields.path;
    if (fields.attempts !== undefined) entry.attempts = fields.attempts;
    if (fields.dueMs !== undefined) entry.dueMs = fields.dueMs;
    if (fields.domains !== undefined) entry.domains = [...fields.domains];
    this.place(q, entry, nowMs);
  }

  /** Makes waiting messages due now; returns how many changed. Messages in flight are left alone. */
  makeDue(match: (m: IndexedMessage) => boolean): number {
    let n = 0;
    for (const entry of this.entries.values()) {
      if (entry.inFlight || !match(entry)) continue;
      const q = this.queue(entry.channel);
      if (q.ready.has(entry.id)) continue;
      n++;
      entry.dueMs = 0;
      q.delayedCount--;
      entry.heapSeq = 0;
      q.ready.set(entry.id, entry);
    }
    return n;
  }

  /** Messages that match (e.g. for a flush that counts messages in flight too). */
  count(match: (m: IndexedMessage) => boolean): number {
    let n = 0;
    for (const entry of this.entries.values()) if (match(entry)) n++;
    return n;
  }

  ids(channel?: string): string[] {
    return [...this.entries.values()].filter((e) => channel === undefined || e.channel === channel).map((e) => e.id);
  }

  channels(): string[] {
    return [...this.queues.keys()];
  }

  channelStats(channel: string): ChannelIndexStats {
    const q = this.queues.get(channel);
    if (!q) return { messages: 0, recipients: 0, ready: 0, delayed: 0, inFlight: 0 };
    return { messages: q.messages, recipients: q.recipients, ready: q.ready.size, delayed: q.delayedCount, inFlight: q.inFlight };
  }

  private queue(channel: string): ChannelQueue {
    let q = this.queues.get(channel);
    if (!q) {
      q = new ChannelQueue();
      this.queues.set(channel, q);
    }
    return q;
  }

  private place(q: ChannelQueue, entry: Entry, nowMs: number): void {
    if (entry.dueMs <= nowMs) {
      q.ready.set(entry.id, entry);
    } else {
      entry.heapSeq = ++this.seq;
      q.delayedCount++;
      q.delayed.push({ dueMs: entry.dueMs, id: entry.id, seq: entry.heapSeq });
    }
  }
}

/** The domain of each address, lower-case, without duplicates. */
export function domainsOf(addresses: Iterable<string>): string[] {
  const out = new Set<string>();
  for (const a of addresses) {
    const at = a.lastIndexOf('@');
    if (at >= 0) out.add(a.slice(at + 1).replace(/^\[|\]$/g, '').toLowerCase());
  }
  return [...out];
}

/** Whether a flush target (`domain`, `@domain` with subdomains, `#channel`, null = all) covers the message. */
export function flushMatches(target: string | null, m: Pick<IndexedMessage, 'channel' | 'domains'>): boolean {
  if (target === null || target === '') return true;
  if (target.startsWith('#')) return m.channel.toLowerCase() === target.slice(1).toLowerCase();
  if (target.startsWith('@')) {
    const d = target.slice(1).toLowerCase();
    return m.domains.some((x) => x === d || x.endsWith('.' + d));
  }
  const d = target.toLowerCase();
  return m.domains.includes(d);
}
