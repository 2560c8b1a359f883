// Concurrent sessions per client IP address (MAX_CONNS_PER_IP, like Postfix's anvil
// smtpd_client_connection_count_limit), the server process's side. Alone (no dispatcher: the
// tests' in-process services) it counts up to the limit itself. Under a dispatcher the limit is
// counted across the service's processes (src/dispatcher/per-ip-ledger.ts): the process takes up
// to its allowance of one address on its own, asks the dispatcher beyond that, and while the
// dispatcher tracks an address it asks for every new session of it and reports every end.

/** The dispatcher's side of the shared count, as the gate uses it. */
export interface PerIpArbiter {
  /** May this process take one more session of `ip`? `have`: its count, when it starts asking. */
  ask(ip: string, have: number | undefined): Promise<boolean>;
  /** A session of a tracked address ended. */
  released(ip: string): void;
  /** The answer to a census: how many sessions of `ip` this process holds. */
  counted(ip: string, epoch: number, count: number): void;
}

export class PerIpGate {
  private readonly counts = new Map<string, number>();
  /** Addresses the dispatcher decides for. */
  private readonly tracked = new Set<string>();
  private allowance: number;

  /**
   * `limit`: MAX_CONNS_PER_IP (0: none), what the gate allows alone (without an arbiter). With an arbiter,
   * nothing is taken alone until setAllowance() says how much may be.
   */
  constructor(
    private limit: number,
    private readonly arbiter: PerIpArbiter | null = null,
  ) {
    this.allowance = arbiter ? 0 : alone(limit);
  }

  /** MAX_CONNS_PER_IP (for the log). */
  get maxPerIp(): number {
    return this.limit;
  }

  /** A new MAX_CONNS_PER_IP (a reload); alone, it is what the gate allows. */
  setLimit(limit: number): void {
    this.limit = limit;
    if (!this.arbiter) this.allowance = alone(limit);
  }

  /** Under a dispatcher: what may be taken of one address without asking. */
  setAllowance(allowance: number): void {
    if (this.arbiter) this.allowance = allowance;
  }

  /** Counts a new session: true, false (at the limit, nothing counted), or the dispatcher's answer to come. */
  acquire(ip: string): boolean | Promise<boolean> {
    const n = this.counts.get(ip) ?? 0;
    if (!this.tracked.has(ip) && n < this.allowance) {
      this.counts.set(ip, n + 1);
      return true;
    }
    if (!this.arbiter) return false;
    // From the first ask on, the dispatcher decides for this address (until it says otherwise).
    const have = this.tracked.has(ip) ? undefined : n;
    this.tracked.add(ip);
    return this.arbiter.ask(ip, have).then(
      (ok) => {
        if (ok) this.counts.set(ip, (this.counts.get(ip) ?? 0) + 1);
        return ok;
      },
      () => false,
    );
  }

  release(ip: string): void {
    const n = this.counts.get(ip) ?? 0;
    if (n <= 1) this.counts.delete(ip);
    else this.counts.set(ip, n - 1);
    if (this.tracked.has(ip)) this.arbiter?.released(ip);
  }

  /** The dispatcher tracks `ip` from now on: answers with this process's count. */
  track(ip: string, epoch: number): void {
    this.tracked.add(ip);
    this.arbiter?.counted(ip, epoch, this.count(ip));
  }

  /** The dispatcher no longer tracks `ip`: it is counted here alone again. */
  untrack(ip: string): void {
    this.tracked.delete(ip);
  }

  count(ip: string): number {
    return this.counts.get(ip) ?? 0;
  }
}

/** What a gate alone allows: the limit, 0 meaning no limit. */
function alone(limit: number): number {
  return limit > 0 ? limit : Number.MAX_SAFE_INTEGER;
}
