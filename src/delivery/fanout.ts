// A channel's fan-out (SMTPfeed: one event-driven program for the whole list): every batch of
// messages the channel's jobs hand over joins one set of host queues, served by one set of
// connections, under one traffic shaper. A recipient's destination is looked up (destinations.ts,
// all at once, each destination once) and the recipient placed at once on its first usable host
// (planner.ts): the host gets a connection while the rest of the list is still being looked up,
// and the recipients of later messages to the same host ride the same connection, whatever batch
// or job they came in. Hosts are served in parallel up to the channel's connection limit
// (maxclientthreads), each by as few connections as pays (fanout-policy.ts) and as its shaping
// destination allows (src/shaping: leases, messages per connection, rates, backoff on 421). A host
// that cannot be reached, or whose connection breaks mid-transaction, is given up for the
// recipients waiting on it, which fall to their next MX (reachability.ts keeps it down for the
// others). A destination that asks to slow down (421) is paused: what waits for it is deferred
// without counting as a try, and no other destination waits for it. A batch is answered when each
// of its recipients has an outcome; its time limit (the signal) defers what it has left, closing
// the connections carrying its transactions (a transaction cut off is not known to have happened).
import { abortStatus, type EngineContext } from './engine-context.js';
import type { ConnectionCache } from './connection-cache.js';
import { Destinations, type Resolution } from './destinations.js';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { averageMs, CPU_BOUND_UTILIZATION, wantsAnotherConnection } from './fanout-policy.js';
import type { Target } from './mx.js';
import { firstUsableTarget, HostBacklog, type PlannedTransaction } from './planner.js';
import type { ReachabilityCache } from './reachability.js';
import { RecipientBook, type RunRecipient } from './recipients.js';
import { connectFailure } from './reply-policy.js';
import { ConnectError, openSession, type SendOutcome, type SmtpSession } from './smtp-client.js';
import { runTransaction } from './transaction.js';
import type { DeliveryItem, MessageOutcome } from './types.js';
import type { ConnectionLease, Shaper, ShapingSnapshot, ShapingState } from '../shaping/index.js';

/** A transaction that would wait longer than this for its destination's message rate is deferred until then instead. */
const MAX_SHAPING_WAIT_MS = 30_000;

export interface FanoutContext extends EngineContext {
  shaper: Shaper;
  /** Most connections at once, in use or idle (maxclientthreads). */
  maxConnections: number;
  now?: () => number;
}

/** What the fan-out has in hand, per shaping destination (for the status page, metrics and qm). */
export interface FanoutDestination {
  destination: string;
  /** MX hosts (names) of its queues. */
  hosts: string[];
  /** Recipients waiting for it in the channel's fan-out. */
  waiting: number;
  /** Arrival (epoch ms) of the oldest message with a recipient waiting for it, or null. */
  oldest: number | null;
  /** Recipients deferred by shaping (paused, or a rate wait too long) since the channel's job started. */
  deferred: number;
}

export interface FanoutStatus {
  batches: number;
  messages: number;
  /** Recipients in hand: waiting for a host, in a transaction, or being looked up. */
  recipients: number;
  hostsWaiting: number;
  connections: { open: number; busy: number; idle: number; limit: number };
  destinations: FanoutDestination[];
  shaping: ShapingSnapshot[];
}

interface Batch {
  readonly items: DeliveryItem[];
  readonly book: RecipientBook;
  /** Global message handle of each item. */
  readonly messages: number[];
  undecided: number;
  finished: boolean;
  readonly finish: (outcomes: MessageOutcome[]) => void;
  readonly stopListening: () => void;
}

interface MessageEntry {
  readonly batch: Batch;
  readonly index: number;
  readonly arrival: number;
  /** Recipients whose destination is still being looked up: its transactions wait for them. */
  unplaced: number;
}

interface RecipientEntry {
  readonly batch: Batch;
  readonly r: RunRecipient;
}

interface HostQueue {
  /** The shaping destination and the host's address: what shares connections. */
  readonly key: string;
  readonly target: Target;
  readonly state: ShapingState;
  readonly backlog: HostBacklog;
  /** Serving loops (each holds a connection, or is opening one). */
  loops: number;
  setupMs: number | null;
  transactionMs: number | null;
  /** Loops waiting for a message of the backlog to be looked up whole. */
  readonly wakers: Array<() => void>;
  /** Connection attempts under way: each one's cancel (a batch that ran out of time gives up the attempts it waits on). */
  readonly connecting: Set<() => void>;
  timer: NodeJS.Timeout | null;
}

/** A connection's shaping slot. */
interface Slot {
  state: ShapingState;
  lease: ConnectionLease;
}

export class ChannelFanout {
  private readonly destinations: Destinations;
  private readonly hosts = new Map<string, HostQueue>();
  /** Hosts with recipients waiting, in the order they began to wait. */
  private readonly needy = new Set<HostQueue>();
  private readonly messages = new Map<number, MessageEntry>();
  private readonly recipients = new Map<number, RecipientEntry>();
  private readonly batches = new Set<Batch>();
  /** Transactions in flight: the batch each connection carries now (an abort closes those of its batch). */
  private readonly inFlight = new Map<SmtpSession, Batch>();
  private readonly slots = new Map<SmtpSession, Slot>();
  /** Message bodies read once for all their transactions (small ones: buffers), by path. */
  private readonly bodies = new Map<string, Promise<NodeJS.ReadableStream | Buffer>>();
  private readonly deferredByShaping = new Map<string, number>();
  private readonly ctx: EngineContext;
  private readonly now: () => number;
  private readonly rcptPerTransaction: number;
  private nextRecipient = 0;
  private nextMessage = 0;
  private loops = 0;
  private pumpQueued = false;
  private closing = false;
  private drained: (() => void) | null = null;
  private readonly sweeper: NodeJS.Timeout;
  /** The event loop's utilization, sampled at most every half second. */
  private elu: { mark: EventLoopUtilization; at: number; cpuBound: boolean } = { mark: performance.eventLoopUtilization(), at: 0, cpuBound: false };

  constructor(
    private readonly fctx: FanoutContext,
    readonly connections: ConnectionCache,
  ) {
    this.now = fctx.now ?? Date.now;
    this.ctx = { ...fctx, readMessage: (path) => this.readBody(path) };
    this.destinations = new Destinations(fctx, fctx.settings.dnsReuseMs, this.now);
    // `verp`: every recipient has an envelope sender of its own, so a transaction of its own (a
    // message that asked for XVERP gets the same, alone: perTransaction).
    this.rcptPerTransaction = fctx.channel.copies === 'single' || fctx.channel.verp ? 1 : fctx.channel.rcptPerTransaction || 100;
    // Idle destinations are forgotten now and then (their slow start begins again).
    this.sweeper = setInterval(() => fctx.shaper.sweep(this.now()), 60_000);
    this.sweeper.unref();
  }

  /** The connection cache calls this for every connection it closes: its shaping slot is free. */
  connectionClosed(session: SmtpSession): void {
    const slot = this.slots.get(session);
    if (!slot) return;
    this.slots.delete(session);
    slot.state.connectionClosed(slot.lease, this.now());
    this.schedulePump();
  }

  /** Delivers a batch: resolves with every message's outcomes once each of its recipients has one. */
  deliver(items: DeliveryItem[], signal?: AbortSignal): Promise<MessageOutcome[]> {
    if (this.closing) throw new Error('job closed');
    return new Promise<MessageOutcome[]>((resolve) => {
      // The callbacks run only once the batch below is made.
      const onAbort = () => this.abort(batch, abortStatus(signal!));
      const book = new RecipientBook(items, {
        nextId: () => this.nextRecipient++,
        onDecided: () => {
          // After the turn that decided it: the transaction that decided the last recipient finishes its work first.
          if (--batch.undecided === 0) setImmediate(() => this.finish(batch));
        },
      });
      const batch: Batch = {
        items,
        book,
        messages: items.map(() => this.nextMessage++),
        undecided: 0,
        finished: false,
        finish: resolve,
        stopListening: () => signal?.removeEventListener('abort', onAbort),
      };
      const arrival = this.now();
      batch.messages.forEach((id, index) => this.messages.set(id, { batch, index, arrival: items[index]!.envelope.arrival?.getTime?.() ?? arrival, unplaced: 0 }));
      const distinct = book.distinct();
      batch.undecided = distinct.length;
      this.batches.add(batch);
      for (const r of distinct) this.recipients.set(r.id, { batch, r });
      if (distinct.length === 0) return this.finish(batch);
      if (signal?.aborted) return this.abort(batch, abortStatus(signal));
      signal?.addEventListener('abort', onAbort, { once: true });
      for (const r of distinct) {
        const m = this.messages.get(batch.messages[r.message]!)!;
        m.unplaced++;
        void this.destinations.lookup(r.rcptTo).then(
          (res) => this.looked(batch, r, res),
          (err: Error) => this.looked(batch, r, { ok: false, result: 'deferred', status: `451 4.4.3 lookup failed: ${err.message}` }),
        );
      }
    });
  }

  /** Stops taking batches; resolves when the batches in hand are answered and the connections closed. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.batches.size) await new Promise<void>((resolve) => (this.drained = resolve));
    clearInterval(this.sweeper);
    for (const h of this.hosts.values()) if (h.timer) clearTimeout(h.timer);
    this.connections.closeAll();
  }

  status(): FanoutStatus {
    const now = this.now();
    const byDestination = new Map<string, FanoutDestination>();
    for (const h of this.hosts.values()) {
      const d = byDestination.get(h.state.key) ?? { destination: h.state.key, hosts: [], waiting: 0, oldest: null, deferred: this.deferredByShaping.get(h.state.key) ?? 0 };
      if (!d.hosts.includes(h.target.host)) d.hosts.push(h.target.host);
      d.waiting += h.backlog.size;
      for (const m of h.backlog.messages()) {
        const arrival = this.messages.get(m)?.arrival;
        if (arrival !== undefined && (d.oldest === null || arrival < d.oldest)) d.oldest = arrival;
      }
      byDestination.set(h.state.key, d);
    }
    let messages = 0;
    let recipients = 0;
    for (const b of this.batches) {
      messages += b.items.length;
      recipients += b.undecided;
    }
    return {
      batches: this.batches.size,
      messages,
      recipients,
      hostsWaiting: this.needy.size,
      connections: { open: this.connections.openCount, busy: this.connections.busyConnections, idle: this.connections.idleConnections, limit: this.fctx.maxConnections },
      destinations: [...byDestination.values()].sort((a, b) => b.waiting - a.waiting || a.destination.localeCompare(b.destination)),
      shaping: this.fctx.shaper.snapshot(now),
    };
  }

  // ------------------------------------------------------------------ placing

  private looked(batch: Batch, r: RunRecipient, res: Resolution): void {
    const m = this.messages.get(batch.messages[r.message]!);
    if (!batch.finished && !r.outcome) {
      if (!res.ok) batch.book.decide(r, res.result, res.status, null);
      else {
        r.targets = typeof res.targets === 'function' ? res.targets(batch.messages[r.message]!) : res.targets;
        r.sts = res.sts ?? null;
        this.place(r.id);
      }
    }
    if (m && --m.unplaced === 0) this.messageReady();
    this.schedulePump();
  }

  /** Puts a recipient on its first usable host, or gives it its outcome when none is left. */
  private place(id: number): void {
    const entry = this.recipients.get(id);
    if (!entry || entry.r.outcome) return;
    const { r, batch } = entry;
    const target = firstUsableTarget(r.targets, (t) => this.unavailable(t, r));
    if (!target) return batch.book.noHostLeft(r);
    const host = this.hostFor(target, r);
    const now = this.now();
    if (host.state.paused(now)) return this.deferShaped(entry, host.state, now);
    host.backlog.add(batch.messages[r.message]!, id);
    this.needy.add(host);
  }

  /** Tried already for this recipient, or known down (then that is its reason, unless it has one). */
  private unavailable(target: Target, r: RunRecipient): boolean {
    if (r.tried.has(target.key)) return true;
    const down = this.fctx.reachability.check(target.key);
    if (!down) return false;
    this.fctx.stats.skippedUnreachable++;
    this.recipients.get(r.id)?.batch.book.skippedDown(r, target, down);
    return true;
  }

  private hostFor(target: Target, r: RunRecipient): HostQueue {
    const at = r.rcptTo.lastIndexOf('@');
    const domain = at >= 0 ? r.rcptTo.slice(at + 1).toLowerCase() : '';
    const address = target.port === 25 ? target.ip : target.key;
    const state = this.fctx.shaper.stateForTarget(domain, target.host, address, this.now());
    const key = `${state.key} ${target.key}`;
    let host = this.hosts.get(key);
    if (!host) {
      host = { key, target, state, backlog: new HostBacklog(), loops: 0, setupMs: null, transactionMs: null, wakers: [], connecting: new Set(), timer: null };
      this.hosts.set(key, host);
    }
    return host;
  }

  /** Every recipient of a message is placed: loops waiting for it may make its transactions. */
  private messageReady(): void {
    for (const h of this.needy) for (const wake of h.wakers.splice(0)) wake();
  }

  /** Recipients per transaction of a message: one for a message that asked for VERP (XVERP), else the channel's. */
  private perTransaction = (message: number): number => {
    const m = this.messages.get(message);
    return m?.batch.items[m.index]!.envelope.mailParams.verp !== undefined ? 1 : this.rcptPerTransaction;
  };

  private ready = (message: number): boolean => (this.messages.get(message)?.unplaced ?? 0) === 0;

  private gone = (id: number): boolean => {
    // No entry (its batch finished) is gone too.
    return this.recipients.get(id)?.r.outcome !== null;
  };

  // ------------------------------------------------------------------ serving

  private schedulePump(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    setImmediate(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  /** Starts serving hosts with recipients waiting, as the connection limit, the policy and shaping allow. */
  private pump(): void {
    const now = this.now();
    for (const host of this.needy) {
      if (host.backlog.size === 0) {
        this.needy.delete(host);
        continue;
      }
      if (this.loops >= this.fctx.maxConnections) break;
      while (this.loops < this.fctx.maxConnections && this.wantsLoop(host)) {
        const idle = this.connections.takeIdle(host.key);
        if (idle) {
          this.startLoop(host, idle, null);
          continue;
        }
        if (host.state.paused(now)) {
          this.deferDestination(host.state, now);
          break;
        }
        let lease = host.state.connectionOpened(now);
        if (!lease && this.closeIdleOf(host)) lease = host.state.connectionOpened(now);
        if (!lease) {
          this.wakeAt(host, host.loops === 0 ? host.state.nextConnectionAt(now) : Infinity);
          break;
        }
        this.startLoop(host, null, lease);
      }
    }
  }

  /** Whether the thread has been busy most of the last half second or so. */
  private cpuBound(): boolean {
    const now = this.now();
    if (now - this.elu.at >= 500) {
      const mark = performance.eventLoopUtilization();
      this.elu = { mark, at: now, cpuBound: performance.eventLoopUtilization(mark, this.elu.mark).utilization > CPU_BOUND_UTILIZATION };
    }
    return this.elu.cpuBound;
  }

  private wantsLoop(host: HostQueue): boolean {
    return wantsAnotherConnection({
      waitingRecipients: host.backlog.size,
      waitingTransactions: host.loops === 0 ? 1 : host.backlog.transactionsWaiting(this.perTransaction, this.ready),
      connections: host.loops,
      setupMs: host.setupMs,
      transactionMs: host.transactionMs,
      cpuBound: host.loops > 0 && this.cpuBound(),
    });
  }

  /** An idle connection of the same shaping destination to another host, closed to make room; false when none. */
  private closeIdleOf(host: HostQueue): boolean {
    for (const other of this.hosts.values()) {
      if (other === host || other.state !== host.state) continue;
      const s = this.connections.takeIdle(other.key);
      if (s) {
        this.connections.discard(s, 'quit');
        return true;
      }
    }
    return false;
  }

  /** The pump runs again at `at` (a connection rate, a pause ending); Infinity: when a connection closes. */
  private wakeAt(host: HostQueue, at: number): void {
    if (!Number.isFinite(at) || host.timer) return;
    host.timer = setTimeout(() => {
      host.timer = null;
      this.schedulePump();
    }, Math.max(0, at - this.now()));
    host.timer.unref();
  }

  private startLoop(host: HostQueue, session: SmtpSession | null, lease: ConnectionLease | null): void {
    host.loops++;
    this.loops++;
    void this.serve(host, session, lease)
      // serve() settles what it takes; a batch left undecided by a fault ends at its time limit.
      .catch(() => {})
      .finally(() => {
        host.loops--;
        this.loops--;
        this.schedulePump();
      });
  }

  /**
   * Runs the host's transactions over one connection, one after another, until nothing is left
   * for it: an idle connection `given`, or a new one opened with `givenLease`.
   */
  private async serve(host: HostQueue, given: SmtpSession | null, givenLease: ConnectionLease | null): Promise<void> {
    let session = given;
    let lease = givenLease;
    try {
      for (;;) {
        if (!session) {
          lease ??= host.state.connectionOpened(this.now());
          if (!lease) return;
          const opened = await this.connect(host, lease);
          lease = null; // the connection holds it now, or it was given back
          if (!opened) return;
          session = opened;
          continue;
        }
        const slot = this.slots.get(session);
        const tx = host.backlog.next(this.perTransaction, this.ready, this.gone);
        if (!tx) {
          if (host.backlog.size === 0 || this.closing) return;
          await new Promise<void>((resolve) => host.wakers.push(resolve));
          continue;
        }
        const now = this.now();
        if (slot && !host.state.messageStarted(slot.lease, now)) {
          host.backlog.putBack(tx);
          if (host.state.paused(now)) return this.deferDestination(host.state, now);
          const at = host.state.nextMessageAt(slot.lease, now);
          if (at === Infinity) {
            // This connection has carried its messages (MAX_MESSAGES_PER_CONNECTION, or what the destination taught): another one.
            this.connections.discard(session, 'quit');
            session = null;
            continue;
          }
          if (at - now > MAX_SHAPING_WAIT_MS) return this.deferHost(host, host.state.deferralStatus(now), at);
          await new Promise((resolve) => setTimeout(resolve, at - now));
          continue;
        }
        const broken = await this.transaction(host, session, tx, slot);
        if (broken === 'throttled') return;
        if (broken) session = null;
      }
    } finally {
      if (lease) host.state.connectionClosed(lease, this.now());
      if (session) {
        if (session.usable && !this.closing) this.connections.release(session);
        else this.connections.discard(session, 'quit');
      }
    }
  }

  /** One transaction; true when the connection broke (its recipients were placed again), 'throttled' when the destination paused. */
  private async transaction(host: HostQueue, session: SmtpSession, tx: PlannedTransaction, slot: Slot | undefined): Promise<boolean | 'throttled'> {
    const m = this.messages.get(tx.message)!;
    const batch = m.batch;
    this.inFlight.set(session, batch);
    const started = this.now();
    const local: PlannedTransaction = { message: m.index, recipients: tx.recipients };
    const { broken, brokenIds, overflow, refused, outcome } = await runTransaction(session, local, batch.items, batch.book, this.ctx);
    this.inFlight.delete(session);
    // What the TLS policy refused over this session tries its next MX, as after a host failure.
    for (const r of refused) {
      const ids = r.ids.filter((id) => !this.gone(id));
      batch.book.hostFailed(ids, r.target, r.status, r.tls);
      for (const id of ids) this.place(id);
    }
    if (refused.length) this.schedulePump();
    const now = this.now();
    host.transactionMs = averageMs(host.transactionMs, now - started);
    let throttled = false;
    if (slot && outcome) {
      for (const reply of repliesOf(outcome)) if (host.state.replyReceived(reply.code, reply.text, now, slot.lease)) throttled = true;
      if (outcome.kind === 'sent' && outcome.accepted.length) host.state.messageSent(slot.lease, now);
    }
    if (overflow.length) host.backlog.putBack({ message: tx.message, recipients: overflow });
    if (broken) {
      // The connection broke mid-transaction: these recipients try their next MX; the rest of the host's queue reconnects.
      const ids = (brokenIds ?? tx.recipients).filter((id) => !this.gone(id));
      batch.book.hostFailed(ids, host.target, broken);
      this.connections.discard(session);
      for (const id of ids) this.place(id);
      this.schedulePump();
      if (throttled) this.deferDestination(host.state, now);
      return throttled ? 'throttled' : true;
    }
    if (throttled) {
      // The destination asked to slow down: its reply stands for the recipients it gave it to (a try);
      // what waits for it is deferred until its pause ends (not a try).
      this.deferDestination(host.state, now);
      this.connections.discard(session, 'quit');
      return 'throttled';
    }
    return false;
  }

  /** A new connection for the host (its shaping lease taken already); null when it could not be made. */
  private async connect(host: HostQueue, lease: ConnectionLease): Promise<SmtpSession | null> {
    const { channel, settings } = this.fctx;
    const target = host.target;
    const started = this.now();
    const attempt = this.connections.open(host.key, () =>
      openSession({
        target,
        localName: this.fctx.localName,
        lmtp: channel.lmtp,
        tls: channel.tlsClient,
        pipelining: channel.pipelining,
        settings,
        transcript: this.fctx.transcriptFor?.(target) ?? null,
        trust: this.fctx.tls.trust,
        auth: this.fctx.clientLogin ?? null,
      }),
    );
    let cancel!: () => void;
    const cancelled = new Promise<'cancelled'>((resolve) => (cancel = () => resolve('cancelled')));
    host.connecting.add(cancel);
    try {
      const session = await unlessMarkedDown(this.fctx.reachability, target.key, attempt, cancelled, (late) => this.connections.discard(late, 'quit'));
      if (session === 'cancelled') {
        host.state.connectionClosed(lease, this.now());
        return null;
      }
      this.slots.set(session, { state: host.state, lease });
      host.setupMs = this.now() - started;
      return session;
    } catch (err) {
      this.connectFailed(host, err, lease);
      host.state.connectionClosed(lease, this.now());
      return null;
    } finally {
      host.connecting.delete(cancel);
    }
  }

  /**
   * No connection: the host is marked down when unreachable, and given up for the recipients
   * waiting on it, which try their next MX. A greeting that asks to slow down (421) also pauses
   * the host's shaping destination: what waits for its other hosts, or comes for it during the
   * pause, is deferred without a try.
   */
  private connectFailed(host: HostQueue, err: unknown, lease: ConnectionLease): void {
    const now = this.now();
    const failure = connectFailure(err, host.target);
    const code = Number(/^(\d{3})\b/.exec(failure.status)?.[1] ?? 0);
    const throttled = failure.kind === 'greeting' && code > 0 && host.state.replyReceived(code, failure.status, now, lease);
    this.fctx.stats.connectFailures++;
    if (failure.unreachable) this.fctx.reachability.markDown(host.target.key, failure.status, this.fctx.settings.hostRetryMs);
    // Other connections to the host serve what waits, unless it said to slow down.
    if (host.loops <= 1 || throttled) {
      const ids = host.backlog.takeAll().filter((id) => !this.gone(id));
      for (const id of ids) this.recipients.get(id)!.batch.book.hostFailed([id], host.target, failure.status);
      for (const id of ids) this.place(id);
    }
    if (throttled) this.deferDestination(host.state, now);
  }

  // ------------------------------------------------------------------ shaping deferrals

  /** The destination is paused: everything waiting for any of its hosts is deferred until the pause ends (not a try). */
  private deferDestination(state: ShapingState, now: number): void {
    const until = state.snapshot(now).pausedUntil ?? now;
    for (const h of this.hosts.values()) if (h.state === state) this.deferHost(h, state.deferralStatus(now), until);
  }

  private deferHost(host: HostQueue, status: string, until: number): void {
    for (const id of host.backlog.takeAll()) {
      const e = this.recipients.get(id);
      if (e && !e.r.outcome) this.deferShapedWith(e, host.state.key, status, until);
    }
    for (const wake of host.wakers.splice(0)) wake();
  }

  private deferShaped(e: RecipientEntry, state: ShapingState, now: number): void {
    this.deferShapedWith(e, state.key, state.deferralStatus(now), state.snapshot(now).pausedUntil ?? now);
  }

  private deferShapedWith(e: RecipientEntry, destination: string, status: string, until: number): void {
    this.deferredByShaping.set(destination, (this.deferredByShaping.get(destination) ?? 0) + 1);
    e.batch.book.deferUntried(e.r, status, until);
  }

  // ------------------------------------------------------------------ batches

  /** The batch's time is up: what it has left is deferred with the reason, its transactions in flight cut off. */
  private abort(batch: Batch, status: string): void {
    if (batch.finished) return;
    for (const [session, b] of this.inFlight) {
      if (b !== batch) continue;
      this.inFlight.delete(session);
      this.connections.discard(session);
    }
    // Connection attempts its recipients wait on are given up (the host is not marked down): a
    // later batch for the host makes a new one rather than wait for an attempt that hung.
    const mine = new Set(batch.messages);
    for (const h of this.hosts.values()) {
      if (h.connecting.size && h.backlog.messages().some((m) => mine.has(m))) for (const cancel of [...h.connecting]) cancel();
    }
    for (const r of batch.book.distinct()) batch.book.decide(r, 'deferred', status, r.lastHost);
    for (const h of this.hosts.values()) if (h.backlog.size) h.backlog.drop(this.gone);
    this.finish(batch);
  }

  private finish(batch: Batch): void {
    if (batch.finished) return;
    batch.finished = true;
    batch.stopListening();
    this.batches.delete(batch);
    for (const r of batch.book.distinct()) this.recipients.delete(r.id);
    for (const id of batch.messages) this.messages.delete(id);
    for (const item of batch.items) this.bodies.delete(item.ref.path);
    batch.finish(batch.book.outcomes(batch.items));
    if (this.batches.size === 0 && this.drained) this.drained();
    // Loops waiting for one of its messages to be looked up whole find its recipients gone.
    this.messageReady();
    this.schedulePump();
  }

  private readBody(path: string): Promise<NodeJS.ReadableStream | Buffer> {
    const kept = this.bodies.get(path);
    if (kept) return kept;
    const reading = this.fctx.readMessage(path);
    // A buffer serves every transaction of the message; a stream is read once, so it is not kept.
    this.bodies.set(path, reading);
    void reading.then(
      (body) => {
        if (!Buffer.isBuffer(body) && this.bodies.get(path) === reading) this.bodies.delete(path);
      },
      () => this.bodies.delete(path),
    );
    return reading;
  }
}

/** The replies of a transaction's outcome, for the shaper. */
function repliesOf(outcome: SendOutcome): Array<{ code: number; text: string }> {
  const out: Array<{ code: number; text: string }> = [];
  if (outcome.kind === 'refused') out.push({ code: outcome.code, text: outcome.reply });
  if (outcome.kind === 'sent' || outcome.kind === 'refused') for (const r of outcome.rejected) out.push({ code: r.code, text: r.reply });
  return out;
}

/**
 * The connection, unless another job marks the host down first: then this attempt is given up
 * with that job's reason (and not marked again), so a silent host costs one timeout, not one per
 * job that started trying it meanwhile; or unless it is `cancelled` (the batches waiting on it ran
 * out of time). A connection that still comes later goes to `late`.
 */
function unlessMarkedDown(reachability: ReachabilityCache, key: string, attempt: Promise<SmtpSession>, cancelled: Promise<'cancelled'>, late: (session: SmtpSession) => void): Promise<SmtpSession | 'cancelled'> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const stopListening = reachability.whenDown(key, (down) => {
      settled = true;
      reject(new ConnectError('closed', down.reason, false));
    });
    void cancelled.then(() => {
      if (settled) return;
      settled = true;
      stopListening();
      resolve('cancelled');
    });
    attempt.then(
      (session) => {
        stopListening();
        if (settled) return late(session);
        settled = true;
        resolve(session);
      },
      (err: unknown) => {
        stopListening();
        if (settled) return;
        settled = true;
        reject(err);
      },
    );
  });
}
