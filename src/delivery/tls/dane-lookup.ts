// The TLSA records of an MX host (`_25._tcp.HOST`, RFC 7672 §2.2) through tsubame's DNS lookup,
// asked with the DO bit and believed only when the resolver in DNS_SERVERS sets the AD bit, as
// Postfix's `smtp_dns_support_level = dnssec`. A failed lookup (SERVFAIL, timeout) matters only
// for a host whose address records are themselves authenticated (a signed zone that cannot say
// whether it has TLSA records may be under attack: defer); for an unsigned host it is ignored.
import type { Answer } from 'dns-packet';
import type { RrsetSource } from '../../dns/lookup.js';
import { normalizeDomain } from '../../common/domain-name.js';
import type { TlsaRecord } from './dane.js';

export type TlsaLookup =
  /** An authenticated TLSA RRset (usable records or not): DANE applies. */
  | { state: 'secure'; records: TlsaRecord[] }
  /** DANE does not apply: no records, records without the AD bit, or an unsigned host's lookup failed. */
  | { state: 'none'; reason: string }
  /** The lookup failed for a DNSSEC-signed host: do not deliver to it now. */
  | { state: 'failed'; reason: string };

/** `_25._tcp.mx.example.com`. */
function tlsaName(host: string, port: number): string {
  return `_${port}._tcp.${normalizeDomain(host)}`;
}

export async function lookupTlsa(lookup: RrsetSource, host: string, port: number): Promise<TlsaLookup> {
  const name = tlsaName(host, port);
  const r = await lookup.rrset(name, 'TLSA', { dnssec: true });
  if (r.status === 'ok') {
    if (!r.authenticated) return { state: 'none', reason: `the TLSA records of ${name} are not authenticated (no AD bit)` };
    return { state: 'secure', records: r.records.filter((a) => a.type === 'TLSA').map(tlsaOf) };
  }
  if (r.status !== 'temporary') return { state: 'none', reason: `${name} has no TLSA records` };
  const signed = await hostIsSigned(lookup, host);
  return signed
    ? { state: 'failed', reason: `TLSA lookup for ${name} failed (${r.reason}) and ${normalizeDomain(host)} is in a DNSSEC-signed zone` }
    : { state: 'none', reason: `TLSA lookup for ${name} failed (${r.reason}); ${normalizeDomain(host)} is not DNSSEC-signed` };
}

/** The host's address records are DNSSEC-authenticated (A, else AAAA). */
async function hostIsSigned(lookup: RrsetSource, host: string): Promise<boolean> {
  for (const type of ['A', 'AAAA'] as const) {
    const r = await lookup.rrset(normalizeDomain(host), type, { dnssec: true });
    if (r.status === 'ok') return Boolean(r.authenticated);
  }
  return false;
}

function tlsaOf(a: Answer): TlsaRecord {
  const d = (a as { data: { usage: number; selector: number; matchingType: number; certificate: Buffer } }).data;
  return { usage: d.usage, selector: d.selector, matchingType: d.matchingType, data: Buffer.from(d.certificate) };
}
