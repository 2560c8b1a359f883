// Failed SMTP AUTH counted per client address and per login name over a sliding window, as
// Postfix's anvil counts per client and Dovecot's auth penalty per address: past a limit the
// address (or the name) is refused AUTH until its oldest counted failure leaves the window.
// Names are counted whether or not such a user exists, so being refused says nothing about
// existence. One table per server process, kept across configuration reloads; memory is bounded
// (the least recently failed keys are forgotten first). Pure: the clock is given.

export interface FailureLimits {
  /** Failures of one address within the window that close AUTH to it (0 = no limit). */
  perAddress: number;
  /** Failures for one login name within the window that close AUTH as it (0 = no limit). */
  perUser: number;
  windowMs: number;
}

/** Keys remembered per table: an attacker cycling through addresses or names cannot grow memory past this. */
const MAX_KEYS = 100_000;

export type Blocked = 'address' | 'user' | null;

/** For one key: the times of its last failures, at most `limit` of them (enough to tell whether the limit is reached). */
class FailureTable {
  private readonly times = new Map<string, number[]>();

  constructor(
    private readonly limit: () => number,
    private readonly maxKeys: number,
  ) {}

  get size(): number {
    return this.times.size;
  }

  add(key: string, now: number): void {
    const limit = this.limit();
    if (limit <= 0) return;
    const list = this.times.get(key) ?? [];
    list.push(now);
    if (list.length > limit) list.splice(0, list.length - limit);
    // Re-inserted: the Map's order is then least recently failed first.
    this.times.delete(key);
    this.times.set(key, list);
    if (this.times.size > this.maxKeys) this.times.delete(this.times.keys().next().value!);
  }

  /** The limit is reached: `limit` failures, the oldest of them within the window. */
  reached(key: string, now: number, windowMs: number): boolean {
    const limit = this.limit();
    if (limit <= 0) return false;
    const list = this.times.get(key);
    if (!list || list.length < limit) return false;
    if (now - list[list.length - limit]! < windowMs) return true;
    if (now - list[list.length - 1]! >= windowMs) this.times.delete(key);
    return false;
  }
}

export class AuthFailures {
  private readonly addresses: FailureTable;
  private readonly users: FailureTable;

  constructor(
    private limits: FailureLimits,
    private readonly now: () => number = Date.now,
    maxKeys: number = MAX_KEYS,
  ) {
    this.addresses = new FailureTable(() => this.limits.perAddress, maxKeys);
    this.users = new FailureTable(() => this.limits.perUser, maxKeys);
  }

  /** A reload may change the limits; what was counted stays. */
  setLimits(limits: FailureLimits): void {
    this.limits = limits;
  }

  /** Whether AUTH from `address` (and, once known, as `login`) is refused for now. */
  blocked(address: string, login: string | null = null): Blocked {
    const now = this.now();
    if (this.addresses.reached(address, now, this.limits.windowMs)) return 'address';
    if (login !== null && this.users.reached(userKey(login), now, this.limits.windowMs)) return 'user';
    return null;
  }

  /** A failed AUTH from `address` as `login` (null: no login was read). */
  failed(address: string, login: string | null): void {
    const now = this.now();
    this.addresses.add(address, now);
    if (login !== null) this.users.add(userKey(login), now);
  }

  /** Keys held (for tests and the log). */
  get size(): { addresses: number; users: number } {
    return { addresses: this.addresses.size, users: this.users.size };
  }
}

/** Logins compared as the directory compares them: case-insensitively. */
function userKey(login: string): string {
  return login.toLowerCase();
}
