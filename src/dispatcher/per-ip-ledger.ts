// MAX_CONNS_PER_IP across the server processes of one service, as pure bookkeeping (the
// dispatcher carries out the messages it returns). A connection reaches a process without the
// dispatcher seeing it (shared accept) or is handed to it (hand-off); either way only the process
// knows when the session ends, so the count is shared like this:
// - Each process may hold up to `allowance` = floor(MAX_CONNS_PER_IP / MAX_PROCS) sessions of one
//   address on its own: however the kernel spreads them, the processes together hold at most
//   the limit, and the common case (a client with a few connections) costs no message at all.
// - A process about to go beyond that asks the dispatcher, and the address becomes *tracked*:
//   the dispatcher asks every other process how many it holds (a census, answered once per
//   epoch), from then on each process asks before each new session of that address and reports
//   each end, and the dispatcher grants while the total is below the limit.
// - Once every process holds at most half its allowance again, the address is untracked.
// A process that does not answer a census within CENSUS_TIMEOUT_MS is counted at its allowance
// (never below what it may hold), so a hung process cannot hold connections waiting.

export type ProcessId = number;

/** What the dispatcher sends to a server process for this ledger. */
export type LedgerMessage =
  | { type: 'ip-track'; ip: string; epoch: number }
  | { type: 'ip-untrack'; ip: string; epoch: number }
  | { type: 'ip-answer'; id: number; ok: boolean };

export interface LedgerSend {
  to: ProcessId;
  msg: LedgerMessage;
}

export const CENSUS_TIMEOUT_MS = 2000;

interface Tracked {
  epoch: number;
  /** Sessions of this address per process, as granted and reported. */
  counts: Map<ProcessId, number>;
  /** Processes whose census answer has not come yet. */
  awaiting: Set<ProcessId>;
  /** Asks waiting for the census. */
  queue: Array<{ proc: ProcessId; id: number }>;
  startedAt: number;
}

export class PerIpLedger {
  private readonly tracked = new Map<string, Tracked>();
  private epochs = 0;

  /**
   * `limit`: MAX_CONNS_PER_IP (0: none); `maxProcs`: the most processes that may hold sessions at once.
   * `live()`: the processes that may hold sessions now (ready ones).
   */
  constructor(
    private limit: number,
    private maxProcs: number,
    private readonly live: () => readonly ProcessId[],
  ) {}

  /** What each process may hold of one address without asking. */
  get allowance(): number {
    return this.limit > 0 ? Math.floor(this.limit / Math.max(1, this.maxProcs)) : Number.MAX_SAFE_INTEGER;
  }

  /** New limits (a reload): tracked addresses are decided by them from now on. */
  configure(limit: number, maxProcs: number): void {
    this.limit = limit;
    this.maxProcs = maxProcs;
  }

  /** Addresses tracked now (tests, status). */
  trackedAddresses(): string[] {
    return [...this.tracked.keys()];
  }

  /** The count the ledger holds for an address (tracked ones only; tests). */
  total(ip: string): number | null {
    const t = this.tracked.get(ip);
    return t ? sum(t.counts) : null;
  }

  /**
   * A process asks for one more session of `ip`. `have` is its count when it starts asking
   * (it held the address on its own until now); absent when the address is tracked for it.
   */
  acquire(proc: ProcessId, ip: string, id: number, have: number | undefined, now: number): LedgerSend[] {
    const out: LedgerSend[] = [];
    let t = this.tracked.get(ip);
    if (!t) {
      t = this.startCensus(ip, proc, have ?? null, now, out);
    } else if (t.awaiting.has(proc) && have !== undefined) {
      // Its ask crossed our census question: the count it sent is its answer.
      t.awaiting.delete(proc);
      t.counts.set(proc, have);
    }
    t.queue.push({ proc, id });
    this.settle(ip, t, out);
    return out;
  }

  /** A process's census answer. */
  census(proc: ProcessId, ip: string, epoch: number, count: number): LedgerSend[] {
    const out: LedgerSend[] = [];
    const t = this.tracked.get(ip);
    // An answer to an older census, or one already given with an ask, changes nothing.
    if (t?.epoch !== epoch || !t.awaiting.has(proc)) return out;
    t.awaiting.delete(proc);
    t.counts.set(proc, count);
    this.settle(ip, t, out);
    return out;
  }

  /** A session of a tracked address ended in a process. */
  release(proc: ProcessId, ip: string): LedgerSend[] {
    const out: LedgerSend[] = [];
    const t = this.tracked.get(ip);
    // Untracked: the process counts it alone. Awaiting: its census answer will reflect it.
    if (!t || t.awaiting.has(proc)) return out;
    t.counts.set(proc, Math.max(0, (t.counts.get(proc) ?? 0) - 1));
    this.settle(ip, t, out);
    return out;
  }

  /** A process exited: its sessions are gone, and so are its asks. */
  processGone(proc: ProcessId): LedgerSend[] {
    const out: LedgerSend[] = [];
    for (const [ip, t] of this.tracked) {
      t.counts.delete(proc);
      t.awaiting.delete(proc);
      t.queue = t.queue.filter((q) => q.proc !== proc);
      this.settle(ip, t, out);
    }
    return out;
  }

  /** A process became ready: it holds nothing yet, and must ask for the tracked addresses. */
  processReady(proc: ProcessId): LedgerSend[] {
    const out: LedgerSend[] = [];
    for (const [ip, t] of this.tracked) {
      t.counts.set(proc, 0);
      out.push({ to: proc, msg: { type: 'ip-track', ip, epoch: t.epoch } });
    }
    return out;
  }

  /** Censuses that have waited too long: the silent processes are counted at their allowance. */
  expire(now: number): LedgerSend[] {
    const out: LedgerSend[] = [];
    for (const [ip, t] of this.tracked) {
      if (t.awaiting.size === 0 || now - t.startedAt < CENSUS_TIMEOUT_MS) continue;
      for (const proc of t.awaiting) t.counts.set(proc, this.allowance);
      t.awaiting.clear();
      this.settle(ip, t, out);
    }
    return out;
  }

  private startCensus(ip: string, asker: ProcessId, have: number | null, now: number, out: LedgerSend[]): Tracked {
    const t: Tracked = { epoch: ++this.epochs, counts: new Map(), awaiting: new Set(), queue: [], startedAt: now };
    this.tracked.set(ip, t);
    for (const proc of this.live()) {
      // The asker's count came with its ask (and it counts with us already); when it did not (it
      // asks from an older epoch's tracking, its untrack still on the way), it is asked like the others.
      if (proc === asker && have !== null) {
        t.counts.set(proc, have);
        continue;
      }
      t.awaiting.add(proc);
      out.push({ to: proc, msg: { type: 'ip-track', ip, epoch: t.epoch } });
    }
    if (!this.live().includes(asker)) {
      if (have !== null) t.counts.set(asker, have);
      else t.counts.set(asker, this.allowance);
    }
    return t;
  }

  /** Decides the asks once the census is complete, then untracks the address when it is quiet. */
  private settle(ip: string, t: Tracked, out: LedgerSend[]): void {
    if (t.awaiting.size > 0) return;
    for (const { proc, id } of t.queue.splice(0)) {
      const ok = this.limit <= 0 || sum(t.counts) < this.limit;
      if (ok) t.counts.set(proc, (t.counts.get(proc) ?? 0) + 1);
      out.push({ to: proc, msg: { type: 'ip-answer', id, ok } });
    }
    const quiet = Math.floor(this.allowance / 2);
    if ([...t.counts.values()].every((n) => n <= quiet)) {
      this.tracked.delete(ip);
      for (const proc of this.live()) out.push({ to: proc, msg: { type: 'ip-untrack', ip, epoch: t.epoch } });
    }
  }
}

function sum(counts: Map<ProcessId, number>): number {
  let n = 0;
  for (const v of counts.values()) n += v;
  return n;
}
