// The MTA-STS policy of a recipient domain (RFC 8461 §3, §5.1): the `_mta-sts.DOMAIN` TXT record
// through tsubame's DNS lookup (cached for its TTL), then the cached policy or a fresh fetch of
// https://mta-sts.DOMAIN/.well-known/mta-sts.txt when the record's id changed or the policy
// expired. A failed fetch keeps a still valid cached policy; without one, no policy applies (and
// the failure is reported for TLS-RPT). Concurrent questions for one domain share one answer.
import type { Answer } from 'dns-packet';
import type { RrsetSource } from '../../dns/lookup.js';
import { normalizeDomain } from '../../common/domain-name.js';
import { fetchStsPolicy } from './mta-sts-fetch.js';
import { parseStsPolicy, parseStsRecord, stsNextStep, type CachedStsPolicy, type StsRecordLookup } from './mta-sts.js';
import { isPolicyDomain, type StsPolicyStore } from './mta-sts-store.js';
import type { TrustStore } from './trust.js';

export type StsProblemKind = 'sts-policy-fetch-error' | 'sts-policy-invalid' | 'sts-webpki-invalid';

export interface StsResolution {
  /** The policy in force (mode none included), or null: the domain has none. */
  policy: CachedStsPolicy | null;
  /** What went wrong finding it (a fetch or a parse), or null. */
  problem: { kind: StsProblemKind; reason: string } | null;
}

export interface MtaStsResolverOptions {
  lookup: RrsetSource;
  store: StsPolicyStore;
  trust: TrustStore;
  /** One policy fetch (MTA_STS_TIMEOUT). */
  timeoutMs: number;
  /** The policy host's HTTPS port: 443 but in tests. */
  port?: number;
  now?: () => number;
}

/** An unchanged TXT id extends a cached policy's life; written to disk at most this often. */
const RENEW_INTERVAL_MS = 3600_000;
/** A failed fetch is not tried again for this long (per domain and id): a dead policy host costs one timeout, not one per batch. */
const STS_FETCH_RETRY_MS = 300_000;

export class MtaStsResolver {
  private readonly inflight = new Map<string, Promise<StsResolution>>();
  /** domain → the id whose fetch failed, why, and until when it is not tried again. */
  private readonly failed = new Map<string, { id: string; problem: NonNullable<StsResolution['problem']>; until: number }>();
  private readonly now: () => number;

  constructor(private readonly options: MtaStsResolverOptions) {
    this.now = options.now ?? Date.now;
  }

  policyFor(domainName: string): Promise<StsResolution> {
    const domain = normalizeDomain(domainName);
    if (!isPolicyDomain(domain)) return Promise.resolve({ policy: null, problem: null });
    let p = this.inflight.get(domain);
    if (!p) {
      p = this.resolve(domain).finally(() => this.inflight.delete(domain));
      this.inflight.set(domain, p);
    }
    return p;
  }

  private async resolve(domain: string): Promise<StsResolution> {
    const { store } = this.options;
    const [record, cached] = await Promise.all([this.record(domain), store.get(domain)]);
    const now = this.now();
    const step = stsNextStep(cached, record, now);
    switch (step.action) {
      case 'none':
        return { policy: null, problem: null };
      case 'use-cached':
        return { policy: cached, problem: null };
      case 'renew-cached': {
        const c = cached!;
        if (now - c.fetchedAt < RENEW_INTERVAL_MS) return { policy: c, problem: null };
        const renewed = { ...c, fetchedAt: now, expiresAt: now + c.policy.maxAge * 1000 };
        await store.put(renewed).catch(() => undefined); // a cache that cannot be written is only memory
        return { policy: renewed, problem: null };
      }
      case 'fetch': {
        const stillValid = cached && cached.expiresAt > now ? cached : null;
        const recent = this.failed.get(domain);
        if (recent?.id === step.id && recent.until > now) return { policy: stillValid, problem: recent.problem };
        const fetched = await this.fetch(domain);
        if ('problem' in fetched) {
          if (this.failed.size >= 10_000) this.failed.clear();
          this.failed.set(domain, { id: step.id, problem: fetched.problem, until: now + STS_FETCH_RETRY_MS });
          return { policy: stillValid, problem: fetched.problem };
        }
        this.failed.delete(domain);
        const entry: CachedStsPolicy = { domain, id: step.id, policy: fetched.policy, fetchedAt: now, expiresAt: now + fetched.policy.maxAge * 1000 };
        await store.put(entry).catch(() => undefined);
        return { policy: entry, problem: null };
      }
    }
  }

  private async record(domain: string): Promise<StsRecordLookup> {
    const r = await this.options.lookup.rrset(`_mta-sts.${domain}`, 'TXT');
    if (r.status === 'temporary') return { kind: 'failed', reason: r.reason };
    if (r.status !== 'ok') return { kind: 'none' };
    const parsed = parseStsRecord(r.records.map(txtOf));
    return 'id' in parsed ? { kind: 'id', id: parsed.id } : { kind: 'none' };
  }

  private async fetch(domain: string): Promise<{ policy: CachedStsPolicy['policy'] } | { problem: NonNullable<StsResolution['problem']> }> {
    const host = `mta-sts.${domain}`;
    const addresses: string[] = [];
    for (const type of ['A', 'AAAA'] as const) {
      const r = await this.options.lookup.rrset(host, type);
      if (r.status === 'ok') addresses.push(...r.records.filter((a) => a.type === type).map((a) => String((a as { data: unknown }).data)));
    }
    const got = await fetchStsPolicy(domain, { addresses, trust: this.options.trust, timeoutMs: this.options.timeoutMs, port: this.options.port });
    if (!got.ok) return { problem: { kind: got.kind, reason: got.reason } };
    const policy = parseStsPolicy(got.text);
    if ('error' in policy) return { problem: { kind: 'sts-policy-invalid', reason: `https://${host}/.well-known/mta-sts.txt: ${policy.error}` } };
    return { policy };
  }
}

/** A TXT record's strings joined (RFC 7208 §3.3 style; RFC 8461 §3.1 records are one logical string). */
function txtOf(a: Answer): string {
  const data = (a as { data?: unknown }).data;
  const parts = Array.isArray(data) ? data : [data];
  return parts.map((p) => (Buffer.isBuffer(p) ? p.toString('latin1') : String(p ?? ''))).join('');
}
