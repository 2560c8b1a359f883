// Traffic shaping's counters shared by a farm's nodes (ShapingCounters over a FarmStore): every
// decision stays synchronous, as the shaper asks, and is taken from what the store granted ahead:
// connection slots fetched one at a time when a lease is wanted and none is free (a free one
// lingers a second for the next connection, then goes back), renewed in the background while held
// so that a node that dies loses its slots FARM_LEASE_TTL later; rate units fetched in small
// batches (the next tenth of a second's worth, at most the burst) that expire after a second.
// While a grant is on its way the answer is "ask again shortly" (a few tens of ms). While the
// store is unreachable every decision is taken by local counters with this node's share of each
// limit (divided by FARM_NODE_COUNT), the change logged once each way; leases taken then are given
// back to them.
import type { Logger } from '../common/logger.js';
import { LocalShapingCounters, type LeaseId, type ShapingCounters } from '../shaping/index.js';
import type { FarmStore, StoreState } from './store.js';

/** Ask again this soon while a grant is on its way. */
const GRANT_WAIT_MS = 20;
/** After the store refused a slot (the farm holds them all), ask again after this long. */
const FULL_POLL_MS = 200;
/** A free slot is kept this long for the next connection before it goes back to the farm. */
const LINGER_MS = 1000;
/** Rate units are fetched for this much of the rate ahead… */
const BATCH_MS = 100;
/** …and expire after this long unused (a unit kept longer would let this node burst above the farm's rate). */
const UNIT_TTL_MS = 1000;
/** The background work (lingering slots, renewals) runs this often. */
const TICK_MS = 200;

export interface SharedCountersOptions {
  store: FarmStore;
  /** Names this holder's slots in the store: node name, process and thread (unique in the farm). */
  holder: string;
  /** Keeps these counters' keys apart from other shapers' (the channel name). */
  scope: string;
  /** FARM_NODE_COUNT: a node's share of a limit while the store is unreachable. */
  nodeCount: number;
  /** FARM_LEASE_TTL (ms): a slot not renewed for this long is free again farm-wide. */
  slotTtlMs: number;
  /** The clock of the background work (default Date.now; decisions take the caller's `now`). */
  clock?: () => number;
}

interface HeldSlot {
  member: string;
  /** Local expiry of the lease (the shaper's ttl: a lease nobody renews is lost). */
  expiry: number;
}

interface SlotKey {
  key: string;
  storeKey: string;
  limit: number;
  inUse: Map<LeaseId, HeldSlot>;
  /** Granted slots not in use, with the time they became free. */
  free: Array<{ member: string; since: number }>;
  /** Slots held by the rest of the farm, as the store last said. */
  othersHeld: number;
  pending: boolean;
  refusedAt: number;
  renewedAt: number;
}

interface RateKey {
  storeKey: string;
  units: number;
  unitsExpire: number;
  /** The store said none before this. */
  waitUntil: number;
  pending: boolean;
}

export class SharedShapingCounters implements ShapingCounters {
  private readonly slots = new Map<string, SlotKey>();
  private readonly rates = new Map<string, RateKey>();
  /** The local counters of the store's absences, with this node's share of each limit. */
  private readonly fallback = new LocalShapingCounters();
  private readonly fallbackLeases = new Map<LeaseId, { key: string; id: LeaseId }>();
  private readonly clock: () => number;
  private readonly timer: NodeJS.Timeout;
  private nextLease = 1;
  private nextMember = 1;

  constructor(private readonly opts: SharedCountersOptions) {
    this.clock = opts.clock ?? Date.now;
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  /** Whether decisions are farm-wide now (else this node's share, locally). */
  get shared(): boolean {
    return this.opts.store.state === 'up';
  }

  // ------------------------------------------------------------------ connection leases

  acquireLease(key: string, limit: number, ttlMs: number, now: number): LeaseId | null {
    if (!this.shared) {
      // Connections opened before Redis went away count in this node's share too.
      const share = shareOf(limit, this.opts.nodeCount) - (this.slots.get(key)?.inUse.size ?? 0);
      if (share <= 0) return null;
      const id = this.fallback.acquireLease(key, share, ttlMs, now);
      if (id === null) return null;
      const lease = this.nextLease++;
      this.fallbackLeases.set(lease, { key, id });
      return lease;
    }
    const k = this.slotKey(key, limit);
    this.expireInUse(k, now);
    const slot = k.free.pop();
    if (!slot) {
      this.requestSlot(k);
      return null;
    }
    const lease = this.nextLease++;
    k.inUse.set(lease, { member: slot.member, expiry: now + ttlMs });
    return lease;
  }

  renewLease(key: string, lease: LeaseId, ttlMs: number, now: number): boolean {
    const local = this.fallbackLeases.get(lease);
    if (local) return this.fallback.renewLease(key, local.id, ttlMs, now);
    const k = this.slots.get(key);
    const held = k?.inUse.get(lease);
    if (!k || !held) return false;
    if (held.expiry <= now) {
      k.inUse.delete(lease);
      this.giveBack(k, held.member);
      return false;
    }
    held.expiry = now + ttlMs;
    return true;
  }

  releaseLease(key: string, lease: LeaseId, now: number): void {
    const local = this.fallbackLeases.get(lease);
    if (local) {
      this.fallbackLeases.delete(lease);
      return this.fallback.releaseLease(key, local.id, now);
    }
    const k = this.slots.get(key);
    const held = k?.inUse.get(lease);
    if (!k || !held) return;
    k.inUse.delete(lease);
    k.free.push({ member: held.member, since: this.clock() });
  }

  leasesHeld(key: string, now: number): number {
    const k = this.slots.get(key);
    const shared = k ? k.inUse.size + (this.shared ? k.othersHeld : 0) : 0;
    return shared + this.fallback.leasesHeld(key, now);
  }

  leaseWait(key: string, limit: number, now: number): number {
    if (!this.shared) {
      const share = shareOf(limit, this.opts.nodeCount) - (this.slots.get(key)?.inUse.size ?? 0);
      return share <= 0 ? Infinity : this.fallback.leaseWait(key, share, now);
    }
    const k = this.slotKey(key, limit);
    this.expireInUse(k, now);
    if (k.free.length > 0) return 0;
    // This node's own connections fill the limit: one of them closing is what frees a slot.
    if (k.inUse.size + this.fallback.leasesHeld(key, now) >= limit) return Infinity;
    this.requestSlot(k);
    return k.pending ? GRANT_WAIT_MS : FULL_POLL_MS;
  }

  // ------------------------------------------------------------------ rates

  take(key: string, intervalMs: number, burst: number, now: number): number {
    if (!this.shared) return this.fallback.take(key, intervalMs * this.opts.nodeCount, shareOf(burst, this.opts.nodeCount), now);
    const r = this.rateKey(key);
    if (r.units > 0 && this.clock() < r.unitsExpire) {
      r.units--;
      return 0;
    }
    return this.rateWait(r, intervalMs, burst);
  }

  wait(key: string, intervalMs: number, burst: number, now: number): number {
    if (!this.shared) return this.fallback.wait(key, intervalMs * this.opts.nodeCount, shareOf(burst, this.opts.nodeCount), now);
    const r = this.rateKey(key);
    if (r.units > 0 && this.clock() < r.unitsExpire) return 0;
    return this.rateWait(r, intervalMs, burst);
  }

  // ------------------------------------------------------------------ housekeeping

  idle(key: string, now: number): boolean {
    const k = this.slots.get(key);
    if (k && (k.inUse.size > 0 || k.free.length > 0 || k.pending)) return false;
    const r = this.rates.get(key);
    if (r && (r.pending || (r.units > 0 && this.clock() < r.unitsExpire))) return false;
    return this.fallback.idle(key, now);
  }

  forget(key: string): void {
    const k = this.slots.get(key);
    if (k) for (const m of [...k.free.map((f) => f.member), ...[...k.inUse.values()].map((h) => h.member)]) this.giveBack(k, m);
    this.slots.delete(key);
    this.rates.delete(key);
    this.fallback.forget(key);
  }

  /** Stops the background work and gives every slot back to the farm. */
  close(): void {
    clearInterval(this.timer);
    for (const key of [...this.slots.keys()]) this.forget(key);
  }

  private slotKey(key: string, limit: number): SlotKey {
    let k = this.slots.get(key);
    if (!k) {
      k = { key, storeKey: this.storeKey('conn', key), limit, inUse: new Map(), free: [], othersHeld: 0, pending: false, refusedAt: -Infinity, renewedAt: this.clock() };
      this.slots.set(key, k);
    }
    k.limit = limit;
    return k;
  }

  private rateKey(key: string): RateKey {
    let r = this.rates.get(key);
    if (!r) {
      r = { storeKey: this.storeKey('rate', key), units: 0, unitsExpire: 0, waitUntil: 0, pending: false };
      this.rates.set(key, r);
    }
    return r;
  }

  /** The store's key: the scope (channel) and the shaper's key, whose NUL separators become ':'. */
  private storeKey(kind: string, key: string): string {
    return `${kind}:${this.opts.scope}:${key.replace(/\0/g, ':')}`;
  }

  private requestSlot(k: SlotKey): void {
    const clock = this.clock();
    if (k.pending || clock - k.refusedAt < FULL_POLL_MS) return;
    k.pending = true;
    const member = `${this.opts.holder}:${this.nextMember++}`;
    this.opts.store.acquireSlot(k.storeKey, member, k.limit, this.opts.slotTtlMs).then(
      (grant) => {
        k.pending = false;
        if (grant.granted) {
          if (this.slots.get(k.key) !== k) return void this.giveBack(k, member); // forgotten meanwhile
          k.free.push({ member, since: this.clock() });
        } else k.refusedAt = this.clock();
        k.othersHeld = Math.max(0, grant.held - k.inUse.size - k.free.length);
      },
      () => {
        k.pending = false;
        k.refusedAt = this.clock();
      },
    );
  }

  private rateWait(r: RateKey, intervalMs: number, burst: number): number {
    const clock = this.clock();
    if (r.waitUntil > clock) return r.waitUntil - clock;
    if (!r.pending) {
      r.pending = true;
      const want = Math.max(1, Math.min(Math.floor(burst), Math.ceil(BATCH_MS / intervalMs)));
      this.opts.store.takeTokens(r.storeKey, intervalMs, burst, want).then(
        (grant) => {
          r.pending = false;
          if (grant.granted > 0) {
            r.units = grant.granted;
            r.unitsExpire = this.clock() + UNIT_TTL_MS;
          } else r.waitUntil = this.clock() + Math.max(1, grant.waitMs);
        },
        () => {
          r.pending = false;
          r.waitUntil = this.clock() + GRANT_WAIT_MS;
        },
      );
    }
    return GRANT_WAIT_MS;
  }

  private expireInUse(k: SlotKey, now: number): void {
    for (const [lease, held] of k.inUse) {
      if (held.expiry > now) continue;
      k.inUse.delete(lease);
      this.giveBack(k, held.member);
    }
  }

  private giveBack(k: SlotKey, member: string): void {
    this.opts.store.releaseSlot(k.storeKey, member).catch(() => {}); // unreachable: it expires on its own
  }

  /** Lingering free slots go back; held ones are renewed a few times per FARM_LEASE_TTL. */
  private tick(): void {
    if (!this.shared) return;
    const clock = this.clock();
    for (const [key, k] of this.slots) {
      k.free = k.free.filter((f) => {
        if (clock - f.since < LINGER_MS) return true;
        this.giveBack(k, f.member);
        return false;
      });
      const members = [...k.free.map((f) => f.member), ...[...k.inUse.values()].map((h) => h.member)];
      if (members.length === 0) {
        if (!k.pending) this.slots.delete(key);
        continue;
      }
      if (clock - k.renewedAt < this.opts.slotTtlMs / 3) continue;
      k.renewedAt = clock;
      this.opts.store.renewSlots(k.storeKey, members, this.opts.slotTtlMs).then(
        (held) => (k.othersHeld = Math.max(0, held - members.length)),
        () => {},
      );
    }
  }
}

/** A node's share of a farm-wide limit: the limit divided by the node count, at least 1. */
export function shareOf(limit: number, nodeCount: number): number {
  return Math.max(1, Math.floor(limit / Math.max(1, nodeCount)));
}

/** Logs each change of the store's reachability once (the first answer too when it is "unreachable"). */
export function logStoreState(store: FarmStore, logger: Logger, fields: { store: string; nodeCount: number }): void {
  let last: StoreState | null = null;
  const report = (state: StoreState) => {
    if (state === last) return;
    if (state === 'down') logger.warn(fields, `farm: Redis at ${fields.store} is unreachable; shaping falls back on this node's share of each limit (divided by FARM_NODE_COUNT=${fields.nodeCount})`);
    else if (last !== null) logger.info(fields, `farm: Redis at ${fields.store} reached again; shaping is farm-wide`);
    last = state;
  };
  store.onState(report);
}
