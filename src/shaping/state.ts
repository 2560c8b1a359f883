// One destination's shaping state (pure: every call takes the time, `now` in epoch ms). It
// answers whether a connection may open and a message may start, and learns from what happens:
//
// - Hard limits, through ShapingCounters (local now, farm-wide later): connection leases up to
//   MAX_CONNECTIONS, a GCRA for MAX_MESSAGE_RATE (burst MESSAGE_RATE_BURST) and one for
//   MAX_CONNECTION_RATE; MAX_MESSAGES_PER_CONNECTION per lease.
// - Slow start, as Postfix's destination concurrency feedback (and TCP's): the connection window
//   starts at INITIAL_CONNECTIONS and grows by one per message accepted (doubling per round) up
//   to the threshold (MAX_CONNECTIONS at first), then by 1/window per message.
// - Backoff on a throttling reply (throttle.ts): the threshold and the window are halved (at
//   least 1) and nothing starts for THROTTLE_PAUSE, doubled for each throttle that comes before
//   the destination recovered (up to THROTTLE_PAUSE_MAX). Recovery lasts RECOVERY_TIME after the
//   pause: the window grows back by additive increase; after a throttle on a message, the message
//   rate is capped at half the rate that drew it and climbs back linearly to MAX_MESSAGE_RATE
//   (lifted when none is set); after a refused connection (no message on it yet), the window is
//   held below the number of connections that drew it. Throttles during a pause are counted, not
//   applied again: every connection open when the destination said "slow down" hears it.
// - Two throttles in a row on connections that had each carried the same number of messages
//   teach that number as the destination's messages per connection (a receiver that answers 421
//   after N messages on a connection), until the configuration changes.
import type { ShapingLimits } from '../config/types.js';
import type { LeaseId, ShapingCounters } from './counters.js';
import { isThrottleReply } from './throttle.js';
import type { DestinationClass } from './policy.js';

/** A connection lease is held this long without a message or renewal (an idle cached connection renews it). */
const LEASE_TTL_MS = 10 * 60_000;
/** The observed message rate is a moving average over this long. */
const RATE_WINDOW_MS = 60_000;
/** A rate cap is never set lower than one message a minute. */
const MIN_RATE_PER_MS = 1 / 60_000;

/** A connection slot held for one connection (from before its TCP connect to its close). */
export interface ConnectionLease {
  readonly destination: string;
  readonly id: LeaseId;
  readonly openedAt: number;
  /** Messages started on it. */
  messages: number;
  closed: boolean;
}

export type ShapingPhase = 'slow-start' | 'steady' | 'paused' | 'recovering';

/** What metrics, the status page and `imsimta qm` show of a destination (plain data). */
export interface ShapingSnapshot {
  destination: string;
  section: string | null;
  phase: ShapingPhase;
  /** Paused or recovering from a throttling reply. */
  throttled: boolean;
  /** End of the pause (epoch ms), or null. */
  pausedUntil: number | null;
  /** End of the recovery (epoch ms), or null. */
  recoveringUntil: number | null;
  connections: number;
  /** Connections the window allows now (slow start / backoff), at most maxConnections. */
  connectionWindow: number;
  /** Messages per second since the last pause, over about the last minute. */
  messageRate: number;
  /** Messages per second allowed now (MAX_MESSAGE_RATE or the recovery cap), null when unlimited. */
  allowedRate: number | null;
  /** Messages per connection learnt from the destination's throttles, or null. */
  learntMessagesPerConnection: number | null;
  messagesStarted: number;
  messagesSent: number;
  throttles: number;
  lastThrottle: { at: number; reply: string } | null;
  limits: {
    maxConnections: number;
    initialConnections: number;
    maxMessagesPerConnection: number;
    maxMessageRate: string | null;
    maxConnectionRate: string | null;
  };
}

export class ShapingState {
  private limits: ShapingLimits;
  private cls: DestinationClass;
  private readonly connKey: string;
  private readonly msgKey: string;
  private readonly connRateKey: string;
  private readonly open = new Set<ConnectionLease>();

  private window: number;
  private threshold: number;
  private pausedUntil = 0;
  /** Recovery ends at pausedUntil + recoveryMs (0: not recovering). */
  private recoveryUntil = 0;
  /** Throttles applied since the destination last recovered (each doubles the pause). */
  private strikes = 0;
  /** After a throttle on a message: the rate cap (per ms), `from` during the pause, climbing to `to`; null = none. */
  private cap: { from: number; to: number } | null = null;
  /** After a refused connection: the window stays below this during the recovery (0 = none). */
  private connectionCeiling = 0;
  /** Messages per connection taught by throttles (0 = none), and the count the last throttle came after. */
  private learntPerConnection = 0;
  private lastThrottleCount = 0;
  private rateAverage = 0;
  private rateUpdatedAt = 0;
  /** Start of the current rate measurement: the first message since the last pause (0 = none yet). */
  private rateFrom = 0;
  private lastThrottle: { at: number; reply: string } | null = null;
  private started = 0;
  private sent = 0;
  private throttles = 0;
  /** Last event (for forgetting idle destinations). */
  lastActivity: number;

  constructor(readonly key: string, cls: DestinationClass, private readonly counters: ShapingCounters, now: number) {
    this.cls = cls;
    this.limits = cls.limits;
    this.connKey = `${key}\0conn`;
    this.msgKey = `${key}\0msg`;
    this.connRateKey = `${key}\0connrate`;
    this.window = cls.limits.initialConnections;
    this.threshold = cls.limits.maxConnections;
    this.lastActivity = now;
  }

  get section(): string | null {
    return this.cls.section;
  }

  get destinationClass(): DestinationClass {
    return this.cls;
  }

  /** New limits (a reload): what was learnt from throttles stays, within the new bounds; taught limits are dropped. */
  reconfigure(cls: DestinationClass): void {
    this.cls = cls;
    this.limits = cls.limits;
    this.threshold = Math.min(this.threshold, cls.limits.maxConnections);
    this.window = Math.max(1, Math.min(this.window, cls.limits.maxConnections));
    this.learntPerConnection = 0;
    this.lastThrottleCount = 0;
  }

  // ------------------------------------------------------------------ decisions

  paused(now: number): boolean {
    return now < this.pausedUntil;
  }

  /** Connections the slow-start/backoff window allows now (at `now`: a ceiling holds during a recovery). */
  connectionWindow(now?: number): number {
    let w = Math.min(Math.floor(this.window), this.limits.maxConnections);
    if (this.connectionCeiling > 0 && (now === undefined || this.recovering(now))) w = Math.min(w, this.connectionCeiling);
    return Math.max(1, w);
  }

  /** Whether a new connection may open now (nothing is taken: connectionOpened takes it). */
  mayOpenConnection(now: number): boolean {
    if (this.paused(now) || this.open.size >= this.connectionWindow(now)) return false;
    if (this.counters.leaseWait(this.connKey, this.limits.maxConnections, now) !== 0) return false;
    const r = this.limits.maxConnectionRate;
    return !r || this.counters.wait(this.connRateKey, r.perMs / r.count, 1, now) === 0;
  }

  /**
   * Takes a connection slot, before the TCP connect (so parallel attempts count): a lease, or
   * null when the destination is paused, the window or MAX_CONNECTIONS is full, or the
   * connection rate says wait. Give it back with connectionClosed whatever happens.
   */
  connectionOpened(now: number): ConnectionLease | null {
    this.lastActivity = now;
    if (this.paused(now) || this.open.size >= this.connectionWindow(now)) return null;
    const id = this.counters.acquireLease(this.connKey, this.limits.maxConnections, LEASE_TTL_MS, now);
    if (id === null) return null;
    const r = this.limits.maxConnectionRate;
    if (r && this.counters.take(this.connRateKey, r.perMs / r.count, 1, now) !== 0) {
      this.counters.releaseLease(this.connKey, id, now);
      return null;
    }
    const lease: ConnectionLease = { destination: this.key, id, openedAt: now, messages: 0, closed: false };
    this.open.add(lease);
    return lease;
  }

  /** The connection is closed (or its connect failed): its slot is free. Idempotent. */
  connectionClosed(lease: ConnectionLease, now: number): void {
    if (lease.closed) return;
    lease.closed = true;
    this.open.delete(lease);
    this.counters.releaseLease(this.connKey, lease.id, now);
    this.lastActivity = now;
  }

  /** Whether a message may start on `lease` now (nothing is taken: messageStarted takes it). */
  mayStartMessage(lease: ConnectionLease, now: number): boolean {
    return this.nextMessageAt(lease, now) <= now;
  }

  /**
   * Takes the right to start one message (transaction) on `lease`: false when the destination
   * is paused, the connection has had its messages, or the rate says wait.
   */
  messageStarted(lease: ConnectionLease, now: number): boolean {
    this.lastActivity = now;
    if (lease.closed || this.paused(now) || this.connectionFull(lease)) return false;
    const rate = this.rateNow(now);
    if (rate !== null && this.counters.take(this.msgKey, 1 / rate.perMs, rate.burst, now) !== 0) return false;
    lease.messages++;
    this.started++;
    this.counters.renewLease(this.connKey, lease.id, LEASE_TTL_MS, now);
    this.observe(now);
    return true;
  }

  /**
   * When a message may start on `lease` (or, without one, on a connection that is open or may
   * open): `now` or later; Infinity when `lease` has carried its messages (MAX_MESSAGES_PER_CONNECTION
   * or what was learnt: close it and open another).
   */
  nextMessageAt(lease: ConnectionLease | null, now: number): number {
    if (lease && (lease.closed || this.connectionFull(lease))) return Infinity;
    const at = Math.max(now, this.pausedUntil);
    const rate = this.rateNow(at);
    return rate === null ? at : at + this.counters.wait(this.msgKey, 1 / rate.perMs, rate.burst, at);
  }

  /**
   * When a connection may open: `now` or later, or Infinity while the window or MAX_CONNECTIONS is
   * full (until connectionClosed). Farm-wide counters answer a time to look again when the other
   * nodes hold the slots (their closes are not seen here).
   */
  nextConnectionAt(now: number): number {
    let at = Math.max(now, this.pausedUntil);
    if (this.open.size >= this.connectionWindow(at)) return Infinity;
    const leaseWait = this.counters.leaseWait(this.connKey, this.limits.maxConnections, now);
    if (leaseWait === Infinity) return Infinity;
    at = Math.max(at, now + leaseWait);
    const r = this.limits.maxConnectionRate;
    return r ? at + this.counters.wait(this.connRateKey, r.perMs / r.count, 1, at) : at;
  }

  /** The status to defer with when a recipient is not tried because of shaping (never a try). */
  deferralStatus(now: number): string {
    return this.paused(now)
      ? `451 4.4.5 destination ${this.key} throttled until ${new Date(this.pausedUntil).toISOString()} (traffic shaping, after: ${this.lastThrottle?.reply ?? 'a throttling reply'})`
      : `451 4.4.5 destination ${this.key} at its traffic shaping limits; not tried`;
  }

  // -------------------------------------------------------------------- events

  /** A message was accepted (250 at the end of DATA, or some recipient accepted): the window grows. */
  messageSent(_lease: ConnectionLease | null, now: number): void {
    this.lastActivity = now;
    this.sent++;
    const max = this.limits.maxConnections;
    if (this.window < max) this.window = Math.min(max, this.window < this.threshold ? this.window + 1 : this.window + 1 / this.window);
    if (this.recoveryUntil !== 0 && !this.recovering(now)) this.endRecovery();
  }

  /**
   * A reply of the destination's servers (greeting, MAIL, RCPT, end of DATA; code and text), with
   * the lease of the connection it came on when there is one. Returns true when it throttles: the
   * destination is then paused (stop starting messages on every connection to it, close the one
   * it came on when the server closes it, and defer what waits with deferralStatus()).
   */
  replyReceived(code: number, text: string, now: number, lease?: ConnectionLease | null): boolean {
    this.lastActivity = now;
    if (!isThrottleReply(code, text, this.cls.throttle)) return false;
    this.throttles++;
    this.lastThrottle = { at: now, reply: oneLine(/^\d{3}\b/.test(text) ? text : `${code} ${text}`) };
    if (lease) this.learnPerConnection(lease);
    if (this.paused(now)) return true;
    if (this.recoveryUntil !== 0 && !this.recovering(now)) this.endRecovery();
    this.strikes = this.recovering(now) ? this.strikes + 1 : 1;
    const l = this.limits;
    const pause = Math.min(l.throttlePauseMaxMs, l.throttlePauseMs * 2 ** Math.min(20, this.strikes - 1));
    this.pausedUntil = now + pause;
    this.recoveryUntil = this.pausedUntil + l.recoveryMs;
    this.threshold = Math.max(1, Math.floor(this.window / 2));
    this.window = this.threshold;
    if (lease?.messages === 0) {
      // Refused before any message on it: too many connections, whatever the rate.
      const others = [...this.open].filter((o) => o !== lease).length;
      this.connectionCeiling = Math.max(1, Math.min(others, this.connectionCeiling || Infinity));
    } else {
      this.capRate(now);
    }
    return true;
  }

  // ------------------------------------------------------------------ snapshot

  snapshot(now: number): ShapingSnapshot {
    const rate = this.rateNow(now);
    const l = this.limits;
    return {
      destination: this.key,
      section: this.cls.section,
      phase: this.phase(now),
      throttled: this.paused(now) || this.recovering(now),
      pausedUntil: this.paused(now) ? this.pausedUntil : null,
      recoveringUntil: this.recovering(now) ? this.recoveryUntil : null,
      connections: this.open.size,
      connectionWindow: this.connectionWindow(now),
      messageRate: round(this.observedRate(now) * 1000),
      allowedRate: rate === null ? null : round(rate.perMs * 1000),
      learntMessagesPerConnection: this.learntPerConnection || null,
      messagesStarted: this.started,
      messagesSent: this.sent,
      throttles: this.throttles,
      lastThrottle: this.lastThrottle,
      limits: {
        maxConnections: l.maxConnections,
        initialConnections: l.initialConnections,
        maxMessagesPerConnection: l.maxMessagesPerConnection,
        maxMessageRate: l.maxMessageRate?.text ?? null,
        maxConnectionRate: l.maxConnectionRate?.text ?? null,
      },
    };
  }

  phase(now: number): ShapingPhase {
    if (this.paused(now)) return 'paused';
    if (this.recovering(now)) return 'recovering';
    return this.window < this.threshold && this.window < this.limits.maxConnections ? 'slow-start' : 'steady';
  }

  /** Nothing held and nothing learnt that a fresh state would not start with again: it may be forgotten. */
  idle(now: number): boolean {
    return this.open.size === 0 && !this.paused(now) && !this.recovering(now) && this.learntPerConnection === 0 && this.counters.idle(this.msgKey, now) && this.counters.idle(this.connRateKey, now);
  }

  /** Drops what the counters keep for this destination (after it was forgotten). */
  release(): void {
    this.counters.forget(this.connKey);
    this.counters.forget(this.msgKey);
    this.counters.forget(this.connRateKey);
  }

  // ------------------------------------------------------------------- helpers

  private connectionFull(lease: ConnectionLease): boolean {
    const configured = this.limits.maxMessagesPerConnection;
    const cap = configured > 0 && this.learntPerConnection > 0 ? Math.min(configured, this.learntPerConnection) : configured || this.learntPerConnection;
    return cap > 0 && lease.messages >= cap;
  }

  private recovering(now: number): boolean {
    return now < this.recoveryUntil;
  }

  private endRecovery(): void {
    this.recoveryUntil = 0;
    this.strikes = 0;
    this.cap = null;
    this.connectionCeiling = 0;
  }

  /** The throttle came on a message of `lease`: after as many accepted as last time, that is the receiver's limit per connection. */
  private learnPerConnection(lease: ConnectionLease): void {
    if (lease.messages < 2) return;
    const accepted = lease.messages - 1;
    if (accepted === this.lastThrottleCount) this.learntPerConnection = this.learntPerConnection ? Math.min(this.learntPerConnection, accepted) : accepted;
    this.lastThrottleCount = accepted;
  }

  /** After a throttle on a message: half the rate that drew it (what was observed since the last pause, or the cap in force if lower). */
  private capRate(now: number): void {
    const l = this.limits;
    const configured = l.maxMessageRate ? l.maxMessageRate.count / l.maxMessageRate.perMs : null;
    const allowed = this.rateNow(now)?.perMs ?? Infinity;
    const observed = this.observedRate(now);
    const drew = Math.min(allowed, observed > 0 ? observed : Infinity);
    if (Number.isFinite(drew)) {
      const from = Math.max(MIN_RATE_PER_MS, drew / 2);
      this.cap = { from, to: Math.max(from, configured ?? drew) };
    }
    // The next measurement starts after the pause.
    this.rateAverage = 0;
    this.rateFrom = 0;
  }

  /** The message rate allowed at `now` (per ms, with its burst), or null for none. */
  private rateNow(now: number): { perMs: number; burst: number } | null {
    const l = this.limits;
    const configured = l.maxMessageRate ? l.maxMessageRate.count / l.maxMessageRate.perMs : null;
    const cap = this.cap;
    if (cap && this.recovering(now)) {
      // The cap's floor during the pause, then a straight climb to its target over RECOVERY_TIME.
      const progress = now <= this.pausedUntil ? 0 : (now - this.pausedUntil) / l.recoveryMs;
      const perMs = Math.min(configured ?? Infinity, cap.from + (cap.to - cap.from) * progress);
      return { perMs, burst: 1 };
    }
    if (configured === null) return null;
    const burst = l.messageRateBurst ?? Math.max(1, Math.floor(configured * 1000));
    return { perMs: configured, burst };
  }

  /** Messages per ms since the last pause, averaged over about RATE_WINDOW_MS (over the time measured when shorter, at least a second). */
  private observedRate(now: number): number {
    if (this.rateFrom === 0) return 0;
    const decayed = this.rateAverage * Math.exp(-Math.max(0, now - this.rateUpdatedAt) / RATE_WINDOW_MS);
    return decayed / Math.max(1000, Math.min(RATE_WINDOW_MS, now - this.rateFrom));
  }

  private observe(now: number): void {
    if (this.rateFrom === 0) this.rateFrom = now;
    this.rateAverage = this.rateAverage * Math.exp(-Math.max(0, now - this.rateUpdatedAt) / RATE_WINDOW_MS) + 1;
    this.rateUpdatedAt = now;
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function oneLine(text: string): string {
  const t = text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
  return t.length > 300 ? `${t.slice(0, 297)}...` : t;
}
