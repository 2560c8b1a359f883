// MX and address resolution for delivery: cached, coalesced, in parallel, and using the MX
// answer's additional section for the hosts' addresses (SMTPfeed §3.6–3.7).
import net from 'node:net';
import type { Answer, RecordType } from 'dns-packet';
import type { DnsClient, QueryOptions } from '../dns/client.js';
import type { DnsCache } from '../dns/cache.js';
import { RrsetLookup, type RrsetResult } from '../dns/lookup.js';
import { dropSelfAndWorse, interpretMxRecords, type MxRecord, type ResolvedMx } from './mx.js';
import { normalizeDomain } from '../common/domain-name.js';

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
  private readonly lookup: RrsetLookup;

  constructor(
    readonly client: DnsClient,
    cache: DnsCache,
    private readonly options: ResolverOptions,
  ) {
    this.lookup = new RrsetLookup(client, cache, options);
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

  /** One RR set, from the cache or the servers (with `dnssec`: the AD bit kept, for DANE and MTA-STS). */
  rrset(name: string, type: RecordType, options: QueryOptions = {}): Promise<RrsetResult> {
    return this.lookup.rrset(name, type, options);
  }

  /** Addresses from an MX answer's additional section, by host name. */
  private glueOf(mx: { additionals?: Answer[] }): Map<string, string[]> {
    const glue = new Map<string, string[]>();
    for (const a of mx.additionals ?? []) {
      if (a.type !== 'A' && a.type !== 'AAAA') continue;
      const host = normalizeDomain(a.name);
      const list = glue.get(host) ?? [];
      list.push(a.data);
      glue.set(host, list);
    }
    // IPv4 first, as for looked-up addresses.
    for (const [h, list] of glue) glue.set(h, [...list.filter((x) => net.isIPv4(x)), ...list.filter((x) => !net.isIPv4(x))]);
    return glue;
  }
}

function addressesOf(r: RrsetResult, type: 'A' | 'AAAA'): string[] {
  return r.status === 'ok' ? r.records.filter((x) => x.type === type).map((x) => (x as { data: unknown }).data as string) : [];
}
