// MX and address resolution for delivery: cached, coalesced, in parallel, and using the MX
// answer's additional section for the hosts' addresses (SMTPfeed §3.6–3.7).
import net from 'node:net';
import type { Answer, RecordType } from 'dns-packet';
import { DnsClient, DnsTimeoutError, type DnsResponse } from './dns-client.js';
import type { DnsCache } from './dns-cache.js';
import { dropSelfAndWorse, interpretMxRecords, type MxRecord, type ResolvedMx } from './mx.js';
import { normalizeDomain } from '../common/domain-name.js';

/** One RR set as the cache keeps it. */
export type RrsetResult =
  | { status: 'ok'; records: Answer[]; additionals?: Answer[] } // additionals kept for MX only
  | { status: 'nodata' }
  | { status: 'nxdomain' }
  | { status: 'temporary'; reason: string };

export type AddressResolution =
  | { ok: true; addresses: string[] }
  | { ok: false; permanent: boolean; reason: string };

export type MxResolution =
  | { ok: true; hosts: ResolvedMx[]; implicit: boolean }
  | { ok: false; permanent: boolean; status: string };

export interface ResolverOptions {
  negativeTtlMs: number;
  maxTtlMs: number;
  /** Names of this host: an MX list holding one of them is cut there (RFC 5321 §5.1). */
  localNames: string[];
}

export class DeliveryResolver {
  private readonly prefix: string;

  constructor(
    readonly client: DnsClient,
    private readonly cache: DnsCache,
    private readonly options: ResolverOptions,
  ) {
    this.prefix = client.servers.map((s) => `${s.host}:${s.port}`).join(',');
  }

  /** MX hosts with addresses, in preference order (not yet shuffled: the planner's caller does that). */
  async resolveMx(domainName: string): Promise<MxResolution> {
    const domain = normalizeDomain(domainName);
    const mx = await this.rrset(domain, 'MX');
    if (mx.status === 'temporary') return { ok: false, permanent: false, status: `451 4.4.3 MX lookup for ${domain} failed: ${mx.reason}` };
    if (mx.status === 'nxdomain') return { ok: false, permanent: true, status: `550 5.1.2 Host or domain name not found: ${domain} (NXDOMAIN)` };
    const records: MxRecord[] =
      mx.status === 'ok'
        ? mx.records.filter((a) => a.type === 'MX').map((a) => {
            const data = (a as { data: { exchange: string; preference?: number } }).data;
            return { exchange: data.exchange, preference: data.preference ?? 0 };
          })
        : [];
    const answer = interpretMxRecords(records);
    if (answer.kind === 'null') return { ok: false, permanent: true, status: `556 5.1.10 ${domain} does not accept mail (null MX, RFC 7505)` };
    if (answer.kind === 'none') {
      const own = await this.resolveAddresses(domain);
      if (own.ok) return { ok: true, implicit: true, hosts: [{ name: domain, preference: 0, addresses: own.addresses }] };
      return own.permanent
        ? { ok: false, permanent: true, status: `550 5.4.4 ${domain} has no MX and no address record` }
        : { ok: false, permanent: false, status: `451 4.4.3 address lookup for ${domain} failed: ${own.reason}` };
    }
    const { records: usable, loop } = dropSelfAndWorse(answer.records, this.options.localNames);
    if (loop) return { ok: false, permanent: true, status: `554 5.4.6 mail for ${domain} loops back to myself` };
    const glue = mx.status === 'ok' ? this.glueOf(mx) : new Map<string, string[]>();
    const hosts = await Promise.all(
      usable.map(async (r): Promise<{ host: ResolvedMx | null; failure: AddressResolution | null }> => {
        const fromGlue = glue.get(r.exchange);
        if (fromGlue?.length) return { host: { name: r.exchange, preference: r.preference, addresses: fromGlue }, failure: null };
        const res = await this.resolveAddresses(r.exchange);
        return res.ok ? { host: { name: r.exchange, preference: r.preference, addresses: res.addresses }, failure: null } : { host: null, failure: res };
      }),
    );
    const found = hosts.flatMap((h) => (h.host ? [h.host] : []));
    if (found.length) return { ok: true, implicit: false, hosts: found };
    const temporary = hosts.find((h) => h.failure && !h.failure.ok && !h.failure.permanent);
    return temporary
      ? { ok: false, permanent: false, status: `451 4.4.3 address lookup for the MX hosts of ${domain} failed` }
      : { ok: false, permanent: true, status: `550 5.4.4 the MX hosts of ${domain} have no address` };
  }

  /** A and AAAA in parallel; IPv4 addresses first. An IP literal is its own answer. */
  async resolveAddresses(hostName: string): Promise<AddressResolution> {
    const host = normalizeDomain(hostName);
    if (net.isIP(host)) return { ok: true, addresses: [host] };
    const [a, aaaa] = await Promise.all([this.rrset(host, 'A'), this.rrset(host, 'AAAA')]);
    const addresses = [...addressesOf(a, 'A'), ...addressesOf(aaaa, 'AAAA')];
    if (addresses.length) return { ok: true, addresses };
    const temp = [a, aaaa].find((r) => r.status === 'temporary') as { reason: string } | undefined;
    if (temp) return { ok: false, permanent: false, reason: temp.reason };
    return { ok: false, permanent: true, reason: a.status === 'nxdomain' ? 'NXDOMAIN' : 'no address record' };
  }

  /** One RR set, from the cache or the servers. */
  async rrset(name: string, type: RecordType): Promise<RrsetResult> {
    return this.cache.getOrLoad(this.key(name, type), async () => {
      let response: DnsResponse;
      try {
        response = await this.client.query(name, type);
      } catch (err) {
        const reason = err instanceof DnsTimeoutError ? 'timeout' : (err as Error).message;
        return { value: { status: 'temporary', reason } as RrsetResult, ttlMs: this.options.negativeTtlMs };
      }
      return this.interpret(type, response);
    });
  }

  private interpret(type: RecordType, response: DnsResponse): { value: RrsetResult; ttlMs: number } {
    if (response.rcode === 'NXDOMAIN') return { value: { status: 'nxdomain' }, ttlMs: this.negativeTtl(response) };
    if (response.rcode !== 'NOERROR') return { value: { status: 'temporary', reason: response.rcode }, ttlMs: this.options.negativeTtlMs };
    // Records of the type asked for; the owner may be the end of a CNAME chain the server followed.
    const records = response.answers.filter((a) => a.type === type);
    if (records.length === 0) return { value: { status: 'nodata' }, ttlMs: this.negativeTtl(response) };
    const ttl = Math.min(...records.map((r) => ('ttl' in r && typeof r.ttl === 'number' ? r.ttl : 0)));
    const ttlMs = Math.min(ttl * 1000, this.options.maxTtlMs);
    if (type !== 'MX') return { value: { status: 'ok', records }, ttlMs };
    this.cacheGlue(response);
    const additionals = response.additionals.filter((a) => a.type === 'A' || a.type === 'AAAA');
    return { value: { status: 'ok', records, additionals }, ttlMs };
  }

  /** Addresses from an MX answer's additional section, by host name. */
  private glueOf(mx: { additionals?: Answer[] }): Map<string, string[]> {
    const glue = new Map<string, string[]>();
    for (const a of mx.additionals ?? []) {
      if (a.type !== 'A' && a.type !== 'AAAA') continue;
      const host = normalizeDomain(a.name);
      const list = glue.get(host) ?? [];
      list.push(a.data as string);
      glue.set(host, list);
    }
    // IPv4 first, as for looked-up addresses.
    for (const [h, list] of glue) glue.set(h, [...list.filter((x) => net.isIPv4(x)), ...list.filter((x) => !net.isIPv4(x))]);
    return glue;
  }

  /** Puts the additional section's addresses into the cache (other domains with the same MX host reuse them). */
  private cacheGlue(response: DnsResponse): void {
    const byKey = new Map<string, Answer[]>();
    for (const a of response.additionals) {
      if (a.type !== 'A' && a.type !== 'AAAA') continue;
      const key = this.key(normalizeDomain(a.name), a.type);
      byKey.set(key, [...(byKey.get(key) ?? []), a]);
    }
    for (const [key, records] of byKey) {
      if (this.cache.get(key) !== undefined) continue;
      const ttl = Math.min(...records.map((r) => ('ttl' in r && typeof r.ttl === 'number' ? r.ttl : 0)));
      this.cache.set(key, { status: 'ok', records } satisfies RrsetResult, Math.min(ttl * 1000, this.options.maxTtlMs));
    }
  }

  private negativeTtl(response: DnsResponse): number {
    const soa = response.authorities.find((a) => a.type === 'SOA') as { ttl?: number; data?: { minimum?: number } } | undefined;
    if (!soa) return this.options.negativeTtlMs;
    const seconds = Math.min(soa.ttl ?? 0, soa.data?.minimum ?? soa.ttl ?? 0);
    return Math.min(seconds * 1000, this.options.maxTtlMs);
  }

  private key(name: string, type: string): string {
    return `${this.prefix}|${type}|${name}`;
  }
}

function addressesOf(r: RrsetResult, type: 'A' | 'AAAA'): string[] {
  return r.status === 'ok' ? r.records.filter((x) => x.type === type).map((x) => (x as { data: unknown }).data as string) : [];
}
