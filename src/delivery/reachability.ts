// Host reachability cache (SMTPfeed §3.3): a host that refused a connection or did not answer is
// not tried again for a while, so later recipients and later jobs go straight to the next MX
// instead of waiting for the same timeout. Shared by the jobs of a process like the DNS cache.
// Jobs whose own attempt on the host is still waiting are told at once (whenDown): a silent host
// costs one timeout, not one per job that started trying it meanwhile.

export interface Unreachable {
  reason: string; // e.g. "connect to mx1.example.com[192.0.2.1]:25: Connection refused"
  until: number; // epoch ms
}

export class ReachabilityCache {
  private readonly down = new Map<string, Unreachable>();
  private readonly listeners = new Map<string, Set<(down: Unreachable) => void>>();

  constructor(private readonly now: () => number = Date.now) {}

  markDown(targetKey: string, reason: string, ttlMs: number): void {
    if (ttlMs <= 0) return;
    const entry = { reason, until: this.now() + ttlMs };
    this.down.set(targetKey, entry);
    const waiting = this.listeners.get(targetKey);
    this.listeners.delete(targetKey);
    for (const listener of waiting ?? []) listener(entry);
  }

  /** Calls `listener` once when the host is marked down, unless the returned function is called first. */
  whenDown(targetKey: string, listener: (down: Unreachable) => void): () => void {
    let set = this.listeners.get(targetKey);
    if (!set) this.listeners.set(targetKey, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(targetKey) === set) this.listeners.delete(targetKey);
    };
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
