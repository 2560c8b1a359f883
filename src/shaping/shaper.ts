// The traffic shaper of an SMTP channel: the policy of etc/shaping.cnf, one ShapingState per
// destination in use (made on first use, forgotten when idle), and the counters they share (local
// in memory, or a farm-wide backend handed in). Pure: the caller passes the time and owns the
// timers. One Shaper serves every connection of the channel to every destination: the channel's
// fan-out (src/delivery/fanout.ts) asks it; channel-shaper.ts makes it.
import type { ShapingConfig } from '../config/types.js';
import { defaultShapingConfig } from '../config/shaping-cnf.js';
import { LocalShapingCounters, type ShapingCounters } from './counters.js';
import { ShapingPolicy, type Destination } from './policy.js';
import { ShapingState, type ShapingSnapshot } from './state.js';

/** An idle destination is forgotten after this long (its slow start begins again, as Postfix's queue manager forgets an idle destination). */
const IDLE_FORGET_MS = 60 * 60_000;

export interface ShaperOptions {
  /** The counters (default: a LocalShapingCounters of this process). */
  counters?: ShapingCounters;
  /** Idle destinations are forgotten after this long (default IDLE_FORGET_MS). */
  idleForgetMs?: number;
}

export class Shaper {
  private policyInForce: ShapingPolicy;
  private readonly states = new Map<string, ShapingState>();
  readonly counters: ShapingCounters;
  private readonly idleForgetMs: number;

  constructor(config: ShapingConfig = defaultShapingConfig(), opts: ShaperOptions = {}) {
    this.policyInForce = new ShapingPolicy(config);
    this.counters = opts.counters ?? new LocalShapingCounters();
    this.idleForgetMs = opts.idleForgetMs ?? IDLE_FORGET_MS;
  }

  get policy(): ShapingPolicy {
    return this.policyInForce;
  }

  /** Destinations with a state now. */
  get size(): number {
    return this.states.size;
  }

  /** The destination (key and class) of a delivery to `domain` through `mxHost`, without making a state. */
  destination(domain: string, mxHost: string): Destination {
    return this.policyInForce.classify(domain, mxHost);
  }

  /** The state of the destination of `domain` through `mxHost`, made on first use. */
  stateFor(domain: string, mxHost: string, now: number): ShapingState {
    const d = this.policyInForce.classify(domain, mxHost);
    let state = this.states.get(d.key);
    if (!state) {
      state = new ShapingState(d.key, d.class, this.counters, now);
      this.states.set(d.key, state);
    }
    return state;
  }

  /**
   * The state for a delivery to `domain` through the MX host `mxHost` whose address is `address`
   * (what a connection is made to): as stateFor, except that an MX host no section matches is keyed
   * by its address, `mx:192.0.2.1` — MX names that share an address share connections
   * (piggybacking is by address), so they are one destination.
   */
  stateForTarget(domain: string, mxHost: string, address: string, now: number): ShapingState {
    const d = this.policyInForce.classify(domain, mxHost);
    const key = d.class.section === null ? `mx:${address}` : d.key;
    let state = this.states.get(key);
    if (!state) {
      state = new ShapingState(key, d.class, this.counters, now);
      this.states.set(key, state);
    }
    return state;
  }

  /** The state of a destination key, when it has one. */
  get(key: string): ShapingState | undefined {
    return this.states.get(key);
  }

  /**
   * A new etc/shaping.cnf (a reload). Each state keeps what it learnt (window, pause, recovery)
   * under its new class's limits; a state whose destination now maps elsewhere (a section
   * removed or renamed) is forgotten once idle, and its connections still count until closed.
   */
  reconfigure(config: ShapingConfig): void {
    this.policyInForce = new ShapingPolicy(config);
    for (const [key, state] of this.states) {
      const cls = state.section === null ? this.policyInForce.defaults : this.policyInForce.section(state.section);
      // Otherwise the state keeps its old limits: new deliveries map to another key.
      if (cls && sameShape(key, cls.section, cls.scope)) state.reconfigure(cls);
    }
  }

  /** Forgets destinations idle for idleForgetMs; returns how many. Call it now and then (a minute's timer). */
  sweep(now: number): number {
    let n = 0;
    for (const [key, state] of this.states) {
      if (now - state.lastActivity >= this.idleForgetMs && state.idle(now)) {
        state.release();
        this.states.delete(key);
        n++;
      }
    }
    return n;
  }

  /** Every destination's snapshot; `filter` keeps some (e.g. the throttled ones). */
  snapshot(now: number, filter?: (s: ShapingSnapshot) => boolean): ShapingSnapshot[] {
    const out: ShapingSnapshot[] = [];
    for (const state of this.states.values()) {
      const s = state.snapshot(now);
      if (!filter || filter(s)) out.push(s);
    }
    return out.sort((a, b) => a.destination.localeCompare(b.destination));
  }
}

/** Whether a state's key still has the form its section's scope gives (a changed SCOPE makes new keys). */
function sameShape(key: string, section: string | null, scope: string): boolean {
  if (section === null) return key.startsWith('mx:');
  if (scope === 'group') return key === section;
  return key.startsWith(`${section}/${scope === 'host' ? 'mx:' : 'domain:'}`);
}
