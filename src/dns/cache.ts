// The DNS answer cache: positive answers for their TTL, failures for a short negative TTL, at most
// maxEntries (the oldest go first), and concurrent identical lookups coalesced into one query.
// The channel jobs of one worker thread share one; an SMTP server process has its own for the
// inbound checks. It is an explicit object handed to its users; the only module-level state is
// the per-thread instance behind getSharedDnsCache().

interface Entry {
  value: unknown;
  expires: number;
}

export interface DnsCacheStats {
  hits: number;
  misses: number;
  coalesced: number;
}

export class DnsCache {
  readonly stats: DnsCacheStats = { hits: 0, misses: 0, coalesced: 0 };
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<unknown>>();

  constructor(
    private readonly maxEntries = 200_000,
    private readonly now: () => number = Date.now,
  ) {}

  get<T>(key: string): T | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expires <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value as T;
  }

  set(key: string, value: unknown, ttlMs: number): void {
    if (ttlMs <= 0) return;
    this.entries.delete(key); // re-insert: Map order is our age order for eviction
    this.entries.set(key, { value, expires: this.now() + ttlMs });
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }

  /** The cached value, or the one `load` produces (shared with every caller asking meanwhile). */
  async getOrLoad<T>(key: string, load: () => Promise<{ value: T; ttlMs: number }>): Promise<T> {
    const cached = this.get<T>(key);
    if (cached !== undefined) {
      this.stats.hits++;
      return cached;
    }
    const running = this.inflight.get(key);
    if (running) {
      this.stats.coalesced++;
      return running as Promise<T>;
    }
    this.stats.misses++;
    const p = load().then(
      ({ value, ttlMs }) => {
        this.set(key, value, ttlMs);
        return value;
      },
    );
    this.inflight.set(key, p);
    try {
      return await p;
    } finally {
      this.inflight.delete(key);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
  }
}

let shared: DnsCache | undefined;

/** The cache of this thread (each piscina worker thread has its own module instance, so its own cache). */
export function getSharedDnsCache(): DnsCache {
  shared ??= new DnsCache();
  return shared;
}
