// Delivery counters for the metrics endpoint: DNS cache hits and misses and outbound connections
// opened and reused. The numbers live in the worker threads (a DNS cache per thread, a
// connection cache per channel job); after each batch the thread reports what changed since its
// last report (JobTaskResult.delivery), and the job controller adds that up per channel.

export interface DeliveryCounters {
  /** Lookups answered from the thread's DNS cache (or joined to a lookup already under way). */
  dnsCacheHits: number;
  /** Lookups that went to the DNS servers. */
  dnsCacheMisses: number;
  connectionsOpened: number;
  connectionsReused: number;
}

export const DELIVERY_COUNTER_FIELDS = ['dnsCacheHits', 'dnsCacheMisses', 'connectionsOpened', 'connectionsReused'] as const;

function zeroDeliveryCounters(): DeliveryCounters {
  return { dnsCacheHits: 0, dnsCacheMisses: 0, connectionsOpened: 0, connectionsReused: 0 };
}

/** What a job reports of itself (the SMTP channels' connection cache). */
export interface JobConnectionStats {
  connectionsOpened: number;
  connectionsReused: number;
}

/** What a thread's DNS cache counts. */
export interface DnsCacheCounts {
  hits: number;
  misses: number;
  coalesced: number;
}

/**
 * Kept by each JobHost (one per thread): remembers the totals it last reported, so that each
 * report carries only the change. A job that was closed and made anew starts from zero.
 */
export class DeliveryStatsTracker {
  private lastDns: DnsCacheCounts;
  private readonly lastJob = new WeakMap<object, JobConnectionStats>();

  constructor(private readonly dnsCounts: () => DnsCacheCounts) {
    this.lastDns = { ...dnsCounts() };
  }

  /** The change since the last call, the job's connections and the thread's DNS cache. */
  delta(job: object & { stats?: () => JobConnectionStats }): DeliveryCounters {
    const out = zeroDeliveryCounters();
    const dns = { ...this.dnsCounts() };
    out.dnsCacheHits = grown(dns.hits + dns.coalesced, this.lastDns.hits + this.lastDns.coalesced);
    out.dnsCacheMisses = grown(dns.misses, this.lastDns.misses);
    this.lastDns = dns;
    const stats = typeof job.stats === 'function' ? job.stats() : null;
    if (stats) {
      const before = this.lastJob.get(job) ?? { connectionsOpened: 0, connectionsReused: 0 };
      out.connectionsOpened = grown(stats.connectionsOpened, before.connectionsOpened);
      out.connectionsReused = grown(stats.connectionsReused, before.connectionsReused);
      this.lastJob.set(job, { connectionsOpened: stats.connectionsOpened, connectionsReused: stats.connectionsReused });
    }
    return out;
  }
}

/** How much a counter grew; a counter that went back (a new cache) counts from zero. */
function grown(now: number, before: number): number {
  if (!Number.isFinite(now) || now < 0) return 0;
  return now >= before ? now - before : now;
}

/** The job controller's running totals per channel (since it started). */
export class DeliveryStatsBook {
  private readonly table = new Map<string, DeliveryCounters>();

  add(channel: string, delta: Partial<DeliveryCounters> | null | undefined): void {
    if (!delta) return;
    // A channel appears once it has something to count (local channels never do).
    if (!this.table.has(channel) && !DELIVERY_COUNTER_FIELDS.some((f) => (delta[f] ?? 0) > 0)) return;
    const c = this.table.get(channel) ?? zeroDeliveryCounters();
    for (const f of DELIVERY_COUNTER_FIELDS) {
      const v = delta[f];
      if (typeof v === 'number' && Number.isFinite(v) && v > 0) c[f] += v;
    }
    this.table.set(channel, c);
  }

  /**
   * The totals per channel. `declared`: the channels that deliver over SMTP or LMTP, shown at zero
   * until they count something, so that /metrics has their series from the start (a dashboard
   * panel or an alert on them has data, 0, on a node that has not delivered outbound yet).
   */
  snapshot(declared: readonly string[] = []): Record<string, DeliveryCounters> {
    const out: Record<string, DeliveryCounters> = {};
    const names = new Set([...this.table.keys(), ...declared]);
    for (const name of [...names].sort((a, b) => a.localeCompare(b))) out[name] = { ...(this.table.get(name) ?? zeroDeliveryCounters()) };
    return out;
  }
}
