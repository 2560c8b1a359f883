// The hard counters behind traffic shaping: connection leases (at most N held per key, each with
// an expiry so that a holder that dies gives its share back) and rate limits as GCRA (the
// generic cell rate algorithm: one "theoretical arrival time" per key, the token bucket in one
// number, as redis-cell and KumoMTA keep it). ShapingState asks these for every decision; the
// adaptive part (slow start, pauses, recovery) stays in the state. This file holds the interface
// and the in-memory implementation; the farm-wide one (Redis) is src/farm/shared-counters.ts.

/** A connection lease's handle (unique per counters object). */
export type LeaseId = number;

/**
 * The counters shaping consults. Every call is synchronous and cheap: a shared backend keeps a
 * local allotment (leases and tokens granted ahead by the shared store) and refills it in the
 * background, so a decision never waits for the network. `now` is epoch milliseconds.
 */
export interface ShapingCounters {
  /** A lease on one of `limit` connection slots of `key`, held until released or `ttlMs` without renewal; null when all are held. */
  acquireLease(key: string, limit: number, ttlMs: number, now: number): LeaseId | null;
  /** Extends a lease; false when it had expired (it then counts again only if re-acquired). */
  renewLease(key: string, lease: LeaseId, ttlMs: number, now: number): boolean;
  releaseLease(key: string, lease: LeaseId, now: number): void;
  /** Leases of `key` held now (unexpired; farm-wide counters: by every node, as last heard). */
  leasesHeld(key: string, now: number): number;
  /**
   * Whether acquireLease(key, limit) would give a lease now: 0 when it would; Infinity when only
   * a release of one of this process's leases can free one; else the milliseconds after which to
   * ask again (farm-wide counters: another node's lease, or a grant on its way).
   */
  leaseWait(key: string, limit: number, now: number): number;
  /**
   * Takes one unit of the rate of `key`: one per `intervalMs`, up to `burst` at once. Returns 0
   * when taken, else the milliseconds until one would be (nothing taken).
   */
  take(key: string, intervalMs: number, burst: number, now: number): number;
  /** What take() would answer, taking nothing. */
  wait(key: string, intervalMs: number, burst: number, now: number): number;
  /** Whether `key` holds nothing worth keeping: no lease, and a rate back to its full burst by `now`. */
  idle(key: string, now: number): boolean;
  /** Drops everything kept for `key`. */
  forget(key: string): void;
}

interface LeaseSet {
  /** Lease id → expiry (epoch ms). */
  leases: Map<LeaseId, number>;
}

/** The counters of one process, in memory. */
export class LocalShapingCounters implements ShapingCounters {
  private readonly leaseSets = new Map<string, LeaseSet>();
  /** GCRA: per key, the theoretical arrival time of the next unit (epoch ms). */
  private readonly tat = new Map<string, number>();
  private nextLease = 1;

  acquireLease(key: string, limit: number, ttlMs: number, now: number): LeaseId | null {
    let set = this.leaseSets.get(key);
    if (!set) {
      set = { leases: new Map() };
      this.leaseSets.set(key, set);
    }
    // Expired leases are only looked for when they would make the difference.
    if (set.leases.size >= limit) expire(set, now);
    if (set.leases.size >= limit) return null;
    const id = this.nextLease++;
    set.leases.set(id, now + ttlMs);
    return id;
  }

  renewLease(key: string, lease: LeaseId, ttlMs: number, now: number): boolean {
    const set = this.leaseSets.get(key);
    const expiry = set?.leases.get(lease);
    if (expiry === undefined) return false;
    if (expiry <= now) {
      set!.leases.delete(lease);
      return false;
    }
    set!.leases.set(lease, now + ttlMs);
    return true;
  }

  releaseLease(key: string, lease: LeaseId, _now: number): void {
    const set = this.leaseSets.get(key);
    if (!set) return;
    set.leases.delete(lease);
    if (set.leases.size === 0) this.leaseSets.delete(key);
  }

  leasesHeld(key: string, now: number): number {
    const set = this.leaseSets.get(key);
    if (!set) return 0;
    expire(set, now);
    return set.leases.size;
  }

  leaseWait(key: string, limit: number, now: number): number {
    return this.leasesHeld(key, now) >= limit ? Infinity : 0;
  }

  take(key: string, intervalMs: number, burst: number, now: number): number {
    const tat = this.tat.get(key) ?? now;
    const wait = gcraWait(tat, intervalMs, burst, now);
    if (wait === 0) this.tat.set(key, Math.max(tat, now) + intervalMs);
    return wait;
  }

  wait(key: string, intervalMs: number, burst: number, now: number): number {
    return gcraWait(this.tat.get(key) ?? now, intervalMs, burst, now);
  }

  idle(key: string, now: number): boolean {
    const set = this.leaseSets.get(key);
    if (set) {
      expire(set, now);
      if (set.leases.size > 0) return false;
      this.leaseSets.delete(key);
    }
    const tat = this.tat.get(key);
    return tat === undefined || tat <= now;
  }

  forget(key: string): void {
    this.leaseSets.delete(key);
    this.tat.delete(key);
  }
}

/**
 * GCRA: a unit may go when the theoretical arrival time is no further ahead of `now` than the
 * burst allows ((burst - 1) intervals). 0 = now, else the milliseconds to wait.
 */
function gcraWait(tat: number, intervalMs: number, burst: number, now: number): number {
  const allowAt = tat - (Math.max(1, burst) - 1) * intervalMs;
  return allowAt <= now ? 0 : allowAt - now;
}

function expire(set: LeaseSet, now: number): void {
  for (const [id, expiry] of set.leases) if (expiry <= now) set.leases.delete(id);
}
