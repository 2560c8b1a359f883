// One RR set at a time, through the cache: the answer read into ok / nodata / nxdomain / temporary,
// kept for its TTL (negative answers for the SOA minimum, failures for the negative TTL, all capped),
// with concurrent identical questions asked once. Shared by delivery (MX, A, AAAA) and the inbound
// checks (blocklists, SPF, DKIM, DMARC).
import type { Answer, RecordType } from 'dns-packet';
import { DnsTimeoutError, type DnsClient, type DnsResponse, type QueryOptions } from './client.js';
import type { DnsCache } from './cache.js';
import { normalizeDomain } from '../common/domain-name.js';

/** One RR set as the cache keeps it. */
export type RrsetResult =
  // additionals kept for MX only; `authenticated` (the AD bit) only for questions asked with `dnssec`
  | { status: 'ok'; records: Answer[]; additionals?: Answer[]; authenticated?: boolean }
  | { status: 'nodata' }
  | { status: 'nxdomain' }
  | { status: 'temporary'; reason: string };

/** The cached lookup, or anything answering RR sets the same way (what the inbound checks take). */
export type RrsetSource = Pick<RrsetLookup, 'rrset'>;

export interface LookupTtls {
  /** How long a failure (timeout, SERVFAIL) or a negative answer without SOA is remembered. */
  negativeTtlMs: number;
  /** Upper bound for any cached answer. */
  maxTtlMs: number;
}

export class RrsetLookup {
  private readonly prefix: string;

  constructor(
    readonly client: DnsClient,
    readonly cache: DnsCache,
    private readonly ttls: LookupTtls,
  ) {
    this.prefix = client.servers.map((s) => `${s.host}:${s.port}`).join(',');
  }

  /** One RR set, from the cache or the servers. With `dnssec`, asked and cached apart, with the AD bit kept. */
  async rrset(name: string, type: RecordType, options: QueryOptions = {}): Promise<RrsetResult> {
    const dnssec = Boolean(options.dnssec);
    return this.cache.getOrLoad(this.key(name, dnssec ? `${type}+DO` : type), async () => {
      let response: DnsResponse;
      try {
        response = await this.client.query(name, type, { dnssec });
      } catch (err) {
        const reason = err instanceof DnsTimeoutError ? 'timeout' : (err as Error).message;
        return { value: { status: 'temporary', reason } as RrsetResult, ttlMs: this.ttls.negativeTtlMs };
      }
      const result = this.interpret(type, response);
      if (dnssec && result.value.status === 'ok') result.value.authenticated = response.authenticated;
      return result;
    });
  }

  private interpret(type: RecordType, response: DnsResponse): { value: RrsetResult; ttlMs: number } {
    if (response.rcode === 'NXDOMAIN') return { value: { status: 'nxdomain' }, ttlMs: this.negativeTtl(response) };
    if (response.rcode !== 'NOERROR') return { value: { status: 'temporary', reason: response.rcode }, ttlMs: this.ttls.negativeTtlMs };
    // Records of the type asked for; the owner may be the end of a CNAME chain the server followed.
    const records = response.answers.filter((a) => a.type === type);
    if (records.length === 0) return { value: { status: 'nodata' }, ttlMs: this.negativeTtl(response) };
    const ttlMs = Math.min(minTtl(records) * 1000, this.ttls.maxTtlMs);
    if (type !== 'MX') return { value: { status: 'ok', records }, ttlMs };
    this.cacheGlue(response);
    const additionals = response.additionals.filter((a) => a.type === 'A' || a.type === 'AAAA');
    return { value: { status: 'ok', records, additionals }, ttlMs };
  }

  /** Puts an MX answer's additional-section addresses into the cache (other domains with the same MX host reuse them). */
  private cacheGlue(response: DnsResponse): void {
    const byKey = new Map<string, Answer[]>();
    for (const a of response.additionals) {
      if (a.type !== 'A' && a.type !== 'AAAA') continue;
      const key = this.key(normalizeDomain(a.name), a.type);
      byKey.set(key, [...(byKey.get(key) ?? []), a]);
    }
    for (const [key, records] of byKey) {
      if (this.cache.get(key) !== undefined) continue;
      this.cache.set(key, { status: 'ok', records } satisfies RrsetResult, Math.min(minTtl(records) * 1000, this.ttls.maxTtlMs));
    }
  }

  private negativeTtl(response: DnsResponse): number {
    const soa = response.authorities.find((a) => a.type === 'SOA') as { ttl?: number; data?: { minimum?: number } } | undefined;
    if (!soa) return this.ttls.negativeTtlMs;
    const seconds = Math.min(soa.ttl ?? 0, soa.data?.minimum ?? soa.ttl ?? 0);
    return Math.min(seconds * 1000, this.ttls.maxTtlMs);
  }

  private key(name: string, type: string): string {
    return `${this.prefix}|${type}|${name}`;
  }
}

function minTtl(records: Answer[]): number {
  return Math.min(...records.map((r) => ('ttl' in r && typeof r.ttl === 'number' ? r.ttl : 0)));
}
