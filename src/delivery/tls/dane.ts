// DANE for SMTP (RFC 7672, RFC 7671): which TLSA records are usable, and whether a server's
// certificate chain matches one of them. Pure: the chain comes from the TLS handshake
// (facts.ts), the records from a DNSSEC-authenticated lookup (dane-lookup.ts).
//
// Usable for SMTP are DANE-TA(2) and DANE-EE(3) with selector Cert(0) or SPKI(1) and matching
// type Full(0), SHA2-256(1) or SHA2-512(2) (RFC 7672 §3.1.3: PKIX-TA(0) and PKIX-EE(1) are not).
// DANE-EE: the leaf certificate or its key is the record; names and dates are not checked
// (RFC 7672 §3.1.1). DANE-TA: a certificate of the chain the server sent is the trust anchor, the
// chain below it is checked (signatures, dates), and the leaf must carry the MX host name
// (RFC 7672 §3.1.2, §3.2.3).
import { createHash, X509Certificate } from 'node:crypto';

export interface TlsaRecord {
  usage: number;
  selector: number;
  matchingType: number;
  /** The certificate association data. */
  data: Buffer;
}

const DANE_TA = 2;
const DANE_EE = 3;

/** `3 1 1 abcd…`, as a zone file writes it (for logs and reasons). */
export function formatTlsa(r: TlsaRecord): string {
  return `${r.usage} ${r.selector} ${r.matchingType} ${r.data.toString('hex')}`;
}

const DIGEST_LENGTH: Record<number, number> = { 1: 32, 2: 64 };

/** A record a DANE SMTP client can use: DANE-TA/EE, a known selector and matching type, a digest of the right length. */
export function isUsableTlsa(r: TlsaRecord): boolean {
  if (r.usage !== DANE_TA && r.usage !== DANE_EE) return false;
  if (r.selector !== 0 && r.selector !== 1) return false;
  if (r.matchingType === 0) return r.data.length > 0;
  return DIGEST_LENGTH[r.matchingType] === r.data.length;
}

export type DaneMatch =
  | { ok: true; record: TlsaRecord; /** Chain index of the certificate that matched (0 = leaf). */ depth: number }
  | { ok: false; reason: string };

/**
 * Whether the chain (DER, leaf first, as the server sent it) matches a usable record. `names`:
 * the reference identifiers a DANE-TA leaf must carry (the MX host name; RFC 7672 §3.2.3).
 */
export function matchTlsa(records: TlsaRecord[], chainDer: Buffer[], names: string[], now: Date = new Date()): DaneMatch {
  const usable = records.filter(isUsableTlsa);
  if (usable.length === 0) return { ok: false, reason: 'no usable TLSA record' };
  if (chainDer.length === 0) return { ok: false, reason: 'the server sent no certificate' };
  let chain: X509Certificate[];
  try {
    chain = chainDer.map((der) => new X509Certificate(der));
  } catch {
    return { ok: false, reason: 'the server sent a certificate that cannot be parsed' };
  }
  const leaf = chain[0]!;
  for (const r of usable.filter((x) => x.usage === DANE_EE)) {
    if (associationMatches(r, leaf)) return { ok: true, record: r, depth: 0 };
  }
  let taReason: string | null = null;
  for (const r of usable.filter((x) => x.usage === DANE_TA)) {
    // The trust anchor is an issuer certificate the server sent (RFC 7671 §5.2.2 asks servers to send it).
    for (let depth = 1; depth < chain.length; depth++) {
      if (!associationMatches(r, chain[depth]!)) continue;
      const problem = pathProblem(chain, depth, names, now);
      if (!problem) return { ok: true, record: r, depth };
      taReason ??= problem;
    }
  }
  if (taReason) return { ok: false, reason: `the trust anchor of a DANE-TA record is in the chain, but ${taReason}` };
  return { ok: false, reason: `no TLSA record matches the certificate chain (${usable.length} usable record${usable.length === 1 ? '' : 's'})` };
}

/** The selected part of the certificate, through the matching type, equals the record's data. */
function associationMatches(r: TlsaRecord, cert: X509Certificate): boolean {
  const selected = r.selector === 0 ? cert.raw : (cert.publicKey.export({ type: 'spki', format: 'der' }) as Buffer);
  const value = r.matchingType === 0 ? selected : createHash(r.matchingType === 1 ? 'sha256' : 'sha512').update(selected).digest();
  return value.equals(r.data);
}

/** Why the chain from the leaf up to the trust anchor at `taDepth` does not hold, or null. */
function pathProblem(chain: X509Certificate[], taDepth: number, names: string[], now: Date): string | null {
  for (let i = 0; i < taDepth; i++) {
    const cert = chain[i]!;
    const issuer = chain[i + 1]!;
    if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) return `certificate ${i} of the chain is not signed by the next one`;
    if (now < new Date(cert.validFrom) || now > new Date(cert.validTo)) return `certificate ${i} of the chain is not valid now (${cert.validFrom} – ${cert.validTo})`;
  }
  const leaf = chain[0]!;
  if (!names.some((n) => hostMatches(leaf, n))) return `the certificate is not for ${names.join(' or ')}`;
  return null;
}

/** RFC 6125 name check (a wildcard only as a whole leftmost label). */
export function hostMatches(cert: X509Certificate, name: string): boolean {
  const host = name.replace(/\.$/, '').toLowerCase();
  return cert.checkHost(host, { partialWildcards: false, multiLabelWildcards: false, singleLabelSubdomains: false }) !== undefined;
}
