// Host reachability cache (SMTPfeed §3.3): a host that refused a connection or did not answer is
// not tried again for a while, so later recipients and later jobs go straight to the next MX
// instead of waiting for the same timeout. Shared by the jobs of a process like the DNS cache.

export interface Unreachable {
  reason: string; // e.g. "connect to mx1.example.com[192.0.2.1]:25: Connection refused"
  until: number; // epoch ms
}

export class ReachabilityCache {
  private readonly down = new Map<string, Unreachable>();

  constructor(private readonly now: () => number = Date.now) {}

  markDown(targetKey: string, reason: string, ttlMs: number): void {
    if (ttlMs <= 0) return;
    this.down.set(targetKey, { reason, until: this.now() + ttlMs });
  }

  /** Why the host is not to be tried now, or null. */
  check(targetKey: string): Unreachable | null {
    const e = this.down.get(targetKey);
    if (!e) return null;
    if (e.until <= this.now()) {
      this.down.delete(targetKey);
      return null;
    }
    return e;
  }

  get size(): number {
    return this.down.size;
  }

  /** Forgets every host (a flush / ETRN: the destination says it is reachable now). */
  clear(): void {
    this.down.clear();
  }
}

let shared: ReachabilityCache | undefined;

/** The reachability cache of this thread (see getSharedDnsCache). */
export function getSharedReachabilityCache(): ReachabilityCache {
  shared ??= new ReachabilityCache();
  return shared;
}
