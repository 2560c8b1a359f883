// The delivery planner (pure): which host a recipient goes to, and what waits for each host.
// SMTPfeed §3.1–3.2: a recipient goes to its first usable MX host (not known down, not already
// tried for it); recipients of every domain whose first usable host is the same wait together for
// that host (piggybacking across domains: the caller's host key is the host's address, and the
// traffic-shaping destination, which never shares a connection with another). A transaction is
// made only when a connection is ready for it: the first message waiting (messages in the order
// they arrived) whose recipients are all placed gives up to rcptPerTransaction of its recipients
// (one for a VERPed message: the caller says how many per message),
// so that recipients placed while the connection was being set up still ride in it, and messages
// that arrive later ride the same connection. After a host failure the caller takes the host's
// recipients back and places them again: they fall to their next MX, and a backup MX that is
// another domain's primary gets them piggybacked onto its own transactions.
import type { Target } from './mx.js';

/** The first target not `unavailable` (tried for the recipient, or known down), or null when none is left. */
export function firstUsableTarget(targets: readonly Target[], unavailable: (target: Target) => boolean): Target | null {
  for (const t of targets) if (!unavailable(t)) return t;
  return null;
}

/** Most recipients in one transaction: for all messages, or per message. */
export type PerTransaction = number | ((message: number) => number);

function perMessage(max: PerTransaction, message: number): number {
  return Math.max(1, Math.floor(typeof max === 'number' ? max : max(message)));
}

/** One transaction: recipients of one message (never mixed). */
export interface PlannedTransaction {
  message: number;
  recipients: number[];
}

/** What waits for one host: recipient handles by message, messages in the order they first came. */
export class HostBacklog {
  private byMessage = new Map<number, number[]>();
  private count = 0;

  /** Recipients waiting. */
  get size(): number {
    return this.count;
  }

  add(message: number, id: number): void {
    const list = this.byMessage.get(message);
    if (list) list.push(id);
    else this.byMessage.set(message, [id]);
    this.count++;
  }

  /**
   * The next transaction: up to `max` (a number, or the number for a message) recipients of the first message that is `ready` (all its
   * recipients placed), recipients that are `gone` (decided meanwhile) dropped; null when no
   * ready message has any.
   */
  next(max: PerTransaction, ready: (message: number) => boolean, gone: (id: number) => boolean): PlannedTransaction | null {
    for (const [message, ids] of this.byMessage) {
      if (!ready(message)) continue;
      const per = perMessage(max, message);
      const taken: number[] = [];
      while (ids.length && taken.length < per) {
        const id = ids.shift()!;
        this.count--;
        if (!gone(id)) taken.push(id);
      }
      if (ids.length === 0) this.byMessage.delete(message);
      if (taken.length) return { message, recipients: taken };
    }
    return null;
  }

  /** A transaction not sent after all (or recipients to go in the next one): back in front of its message's queue. */
  putBack(tx: PlannedTransaction): void {
    if (tx.recipients.length === 0) return;
    const list = this.byMessage.get(tx.message);
    if (list) list.unshift(...tx.recipients);
    else this.byMessage = new Map([[tx.message, [...tx.recipients]], ...this.byMessage]);
    this.count += tx.recipients.length;
  }

  /** Transactions that the ready messages would make now. */
  transactionsWaiting(max: PerTransaction, ready: (message: number) => boolean): number {
    let n = 0;
    for (const [message, ids] of this.byMessage) if (ready(message)) n += Math.ceil(ids.length / perMessage(max, message));
    return n;
  }

  /** Drops the recipients that are `gone` (decided elsewhere: a batch that ran out of time). */
  drop(gone: (id: number) => boolean): void {
    for (const [message, ids] of this.byMessage) {
      const kept = ids.filter((id) => !gone(id));
      this.count -= ids.length - kept.length;
      if (kept.length) this.byMessage.set(message, kept);
      else this.byMessage.delete(message);
    }
  }

  /** Takes every recipient out (a host failure, a pause): their handles, messages in order. */
  takeAll(): number[] {
    const all = [...this.byMessage.values()].flat();
    this.byMessage.clear();
    this.count = 0;
    return all;
  }

  /** The messages waiting, in order. */
  messages(): number[] {
    return [...this.byMessage.keys()];
  }
}
