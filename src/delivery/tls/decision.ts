// The outbound TLS policy decision, pure: given the channel's keyword, the recipient domain's
// MTA-STS policy, the MX host's DANE TLSA lookup and what the TLS handshake saw, deliver over this
// session or defer with a reason (the queue's last error and mail.log), plus the `tls=` token of
// mail.log in Postfix's trust words and the TLS-RPT result to count.
//
// Order (RFC 8461 §2: MTA-STS never overrides DANE):
//   notls                 → no TLS policy at all: the operator turned TLS off for this channel.
//   DANE, lookup failed   → defer (a signed zone that cannot answer may be under attack).
//   DANE, usable records  → TLS and a TLSA match are required; the outcome is final.
//   DANE, none usable     → TLS is required, not authentication (RFC 7672 §2.2, Postfix's
//                           "encrypt"); MTA-STS and musttls may still ask for more.
//   MTA-STS enforce       → MX host in the policy, TLS, a certificate valid for the MX host;
//                           `testing` delivers anyway and reports the failure.
//   musttls               → TLS and a certificate valid for the MX host (CA store + TLS_CA_FILE).
//   maytls                → anything goes (opportunistic), as before.
import type { TlsMode } from '../../config/types.js';
import { formatTlsa, isUsableTlsa, matchTlsa } from './dane.js';
import type { TlsaLookup } from './dane-lookup.js';
import { leafMatches, verificationProblem, type TlsFacts } from './facts.js';
import { mxAllowed, type StsPolicy } from './mta-sts.js';

/** Postfix's words for how far the certificate was checked. */
export type TrustWord = 'Verified' | 'Trusted' | 'Untrusted';

/** RFC 8460 §4.3 result types (and success). */
export type TlsRptResult =
  | 'success'
  | 'starttls-not-supported'
  | 'certificate-host-mismatch'
  | 'certificate-expired'
  | 'certificate-not-trusted'
  | 'validation-failure'
  | 'tlsa-invalid'
  | 'dnssec-invalid'
  | 'dane-required'
  | 'sts-policy-fetch-error'
  | 'sts-policy-invalid'
  | 'sts-webpki-invalid';

/** One session's outcome for TLS-RPT (tlsrpt.ts counts them per policy domain and day). */
export interface TlsReportEvent {
  policyType: 'sts' | 'tlsa';
  policyDomain: string;
  /** The policy as published: the MTA-STS lines, or the TLSA records in zone-file form. */
  policyString: string[];
  /** MTA-STS mx patterns (RFC 8460 `mx-host`). */
  mxPatterns: string[];
  mxHost: string;
  result: TlsRptResult;
  /** Why, in words (RFC 8460 `failure-reason-code`). */
  detail: string | null;
}

export interface TlsDecisionInput {
  /** The channel's outbound keyword (maytls/musttls/notls). */
  channelTls: TlsMode;
  /** The recipient (next-hop) domain whose mail this is. */
  domain: string;
  /** The MX host name the session was opened to (the TLS server name). */
  mxHost: string;
  /** How reasons name the host, e.g. `mx.example.com[192.0.2.1]` (default: mxHost). */
  hostLabel?: string;
  /** The domain's MTA-STS policy (mode none counts as no policy), or null. */
  sts: StsPolicy | null;
  /** The MX host's TLSA lookup, or null when DANE is off (or not looked up). */
  tlsa: TlsaLookup | null;
  /** The MX RRset was DNSSEC-authenticated: a DANE match is "Verified", else "Trusted" (as Postfix). */
  mxSecure?: boolean;
  /** What the handshake saw, or null: the session is in clear. */
  tls: TlsFacts | null;
  now?: Date;
}

export interface TlsDecision {
  action: 'deliver' | 'defer';
  /** `451 4.7.x …` for the recipients when deferred, else null. */
  status: string | null;
  /** What decided: DANE, MTA-STS, the channel's musttls, opportunistic TLS, or no TLS (notls). */
  policy: 'dane' | 'mta-sts' | 'musttls' | 'opportunistic' | 'notls';
  /** mail.log's `tls=` value, `TLSv1.3/TLS_AES_256_GCM_SHA384/Verified`; null in clear. */
  tls: string | null;
  trust: TrustWord | null;
  /** A policy failure that did not stop delivery (MTA-STS testing, unusable TLSA records), or null. */
  warning: string | null;
  /** What to count for TLS-RPT: one event per policy that applied (none without a policy). */
  reports: TlsReportEvent[];
}

export function decideTls(input: TlsDecisionInput): TlsDecision {
  const { tls, mxHost, domain } = input;
  const label = input.hostLabel ?? mxHost;
  const pkixTrust: TrustWord | null = tls ? (tls.chainTrusted ? (leafMatches(tls, mxHost) ? 'Verified' : 'Trusted') : 'Untrusted') : null;
  const reports: TlsReportEvent[] = [];
  const warnings: string[] = [];
  const result = (action: TlsDecision['action'], policy: TlsDecision['policy'], status: string | null, trust: TrustWord | null = pkixTrust): TlsDecision => ({
    action,
    status,
    policy,
    tls: tls && trust ? `${tls.protocol}/${tls.cipher}/${trust}` : null,
    trust: tls ? trust : null,
    warning: warnings.length ? warnings.join('; ') : null,
    reports,
  });

  if (input.channelTls === 'notls') return result('deliver', 'notls', null);

  // --- DANE (RFC 7672)
  let encryptRequiredBy: string | null = null;
  if (input.tlsa?.state === 'failed') {
    reports.push(tlsaReport(input, [], 'dnssec-invalid', input.tlsa.reason));
    return result('defer', 'dane', `451 4.7.5 ${input.tlsa.reason}: not delivering to ${label} now`);
  }
  if (input.tlsa?.state === 'secure') {
    const records = input.tlsa.records;
    const usable = records.filter(isUsableTlsa);
    const strings = records.map(formatTlsa);
    if (usable.length > 0) {
      if (!tls) {
        reports.push(tlsaReport(input, strings, 'starttls-not-supported', 'STARTTLS not offered or failed'));
        return result('defer', 'dane', `451 4.7.4 TLS is required by the DANE TLSA records of ${mxHost}, but ${label} did not offer STARTTLS or the handshake failed`);
      }
      const m = matchTlsa(usable, tls.chain, [mxHost], input.now);
      if (m.ok) {
        reports.push(tlsaReport(input, strings, 'success', null));
        return result('deliver', 'dane', null, input.mxSecure ? 'Verified' : 'Trusted');
      }
      reports.push(tlsaReport(input, strings, m.reason.includes('not for ') ? 'certificate-host-mismatch' : 'validation-failure', m.reason));
      return result('defer', 'dane', `451 4.7.5 DANE verification of ${label} failed: ${m.reason}`);
    }
    // Published but unusable (PKIX usages, unknown types): encryption without authentication.
    encryptRequiredBy = `the DANE TLSA records of ${mxHost}`;
    const text = `the DANE TLSA records of ${mxHost} are all unusable (${strings.join('; ')}): TLS required, not authentication`;
    reports.push(tlsaReport(input, strings, 'tlsa-invalid', text));
    warnings.push(text);
  }

  // --- MTA-STS (RFC 8461): enforce defers here; testing only reports
  const sts = input.sts && input.sts.mode !== 'none' ? input.sts : null;
  let stsPassed = false;
  if (sts) {
    const failure = stsFailure(sts, input);
    reports.push({ policyType: 'sts', policyDomain: domain, policyString: sts.lines, mxPatterns: sts.mx, mxHost, result: failure?.kind ?? 'success', detail: failure?.text ?? null });
    stsPassed = failure === null;
    if (failure) {
      const text = `MTA-STS policy of ${domain} (${sts.mode}): ${failure.text}`;
      if (sts.mode === 'enforce') return result('defer', 'mta-sts', `451 ${failure.kind === 'starttls-not-supported' ? '4.7.4' : '4.7.5'} ${text}: not delivering to ${label}`);
      warnings.push(text);
    }
  }

  // --- musttls: TLS with the MX host's name on a trusted certificate (CA store + TLS_CA_FILE)
  const musttls = input.channelTls === 'musttls';
  if (musttls) {
    if (!tls) return result('defer', 'musttls', `451 4.7.4 TLS is required, but was not offered by ${label}`);
    const problem = verificationProblem(tls, mxHost);
    if (problem) return result('defer', 'musttls', `451 4.7.5 TLS is required with a verified certificate (musttls), but at ${label} ${problem}`);
  }
  if (encryptRequiredBy && !tls) return result('defer', 'dane', `451 4.7.4 TLS is required by ${encryptRequiredBy}, but ${label} did not offer STARTTLS or the handshake failed`);
  return result('deliver', stsPassed ? 'mta-sts' : musttls ? 'musttls' : encryptRequiredBy ? 'dane' : sts ? 'mta-sts' : 'opportunistic', null);
}

/** What breaks the MTA-STS policy at this MX host (RFC 8461 §4), or null. */
function stsFailure(sts: StsPolicy, input: TlsDecisionInput): { kind: TlsRptResult; text: string } | null {
  const { tls, mxHost } = input;
  if (!mxAllowed(sts, mxHost)) return { kind: 'validation-failure', text: `MX host ${mxHost} is not among ${sts.mx.join(', ')}` };
  if (!tls) return { kind: 'starttls-not-supported', text: `${mxHost} did not offer STARTTLS or the handshake failed` };
  if (tls.chain.length === 0) return { kind: 'certificate-not-trusted', text: `${mxHost} sent no certificate` };
  if (!tls.chainTrusted) {
    const expired = tls.chainError === 'CERT_HAS_EXPIRED';
    return { kind: expired ? 'certificate-expired' : 'certificate-not-trusted', text: `the certificate of ${mxHost} is ${expired ? 'expired' : `not trusted (${tls.chainError ?? 'unknown issuer'})`}` };
  }
  if (!leafMatches(tls, mxHost)) return { kind: 'certificate-host-mismatch', text: `the certificate of ${mxHost} is not for that name` };
  return null;
}

function tlsaReport(input: TlsDecisionInput, strings: string[], result: TlsRptResult, detail: string | null): TlsReportEvent {
  return { policyType: 'tlsa', policyDomain: input.domain, policyString: strings, mxPatterns: [], mxHost: input.mxHost, result, detail };
}
