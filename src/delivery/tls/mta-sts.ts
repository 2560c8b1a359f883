// MTA-STS (RFC 8461), the pure parts: the `_mta-sts` TXT record, the policy file, MX patterns,
// and what to do next given a cached policy and the TXT record (refresh when the id changed or
// the policy expired). mailauth 4.13.3 has MTA-STS helpers, but its fetch cannot be given a CA
// file, a port or a size limit, its wildcard matches several labels (RFC 8461 §4.1 allows one),
// and its cache renews an expired policy without fetching it: so these few functions are ours.

export type StsMode = 'enforce' | 'testing' | 'none';

export interface StsPolicy {
  mode: StsMode;
  /** MX patterns, lower case, without a trailing dot: `mx.example.com`, `*.example.net`. */
  mx: string[];
  /** Seconds (max_age, at most 31557600). */
  maxAge: number;
  /** The policy's lines as fetched (TLS-RPT's policy-string). */
  lines: string[];
}

/** Longest max_age RFC 8461 §3.2 allows (about a year). */
const STS_MAX_AGE_LIMIT = 31557600;

/**
 * The id of the `_mta-sts.DOMAIN` TXT record set (each record's strings already joined), or why
 * there is no usable record. Records not starting with `v=STSv1` are not MTA-STS records; more
 * than one is no policy (RFC 8461 §3.1).
 */
export function parseStsRecord(records: string[]): { id: string } | { error: string } {
  const sts = records.map((r) => r.trim()).filter((r) => /^v=STSv1(;|$)/.test(r));
  if (sts.length === 0) return { error: 'no v=STSv1 record' };
  if (sts.length > 1) return { error: `${sts.length} v=STSv1 records` };
  const fields = sts[0]!.split(';').map((f) => f.trim()).filter(Boolean);
  let id: string | null = null;
  for (const f of fields.slice(1)) {
    const eq = f.indexOf('=');
    if (eq <= 0) return { error: `malformed field "${f}"` };
    if (f.slice(0, eq) === 'id' && id === null) id = f.slice(eq + 1);
  }
  if (id === null) return { error: 'no id= field' };
  if (!/^[A-Za-z0-9]{1,32}$/.test(id)) return { error: `bad id "${id}" (1 to 32 letters and digits)` };
  return { id };
}

/** The policy file (`key: value` lines ending in LF or CRLF), or what is wrong with it. */
export function parseStsPolicy(text: string): StsPolicy | { error: string } {
  const lines = text.split(/\r?\n/).map((l) => l.replace(/[ \t]+$/, '')).filter((l) => l !== '');
  const first = new Map<string, string>();
  const mx: string[] = [];
  for (const line of lines) {
    const m = /^([A-Za-z0-9_.-]+):[ \t]*(.*)$/.exec(line);
    if (!m) return { error: `malformed line "${line.slice(0, 80)}"` };
    const [, key, value] = m as unknown as [string, string, string];
    if (key === 'mx') {
      const pattern = value.toLowerCase().replace(/\.$/, '');
      if (!/^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/.test(pattern)) return { error: `bad mx pattern "${value}"` };
      if (!mx.includes(pattern)) mx.push(pattern);
    } else if (!first.has(key)) first.set(key, value); // a repeated field: the first one counts
  }
  if (first.get('version') !== 'STSv1') return { error: `version is ${first.has('version') ? `"${first.get('version')}"` : 'missing'}, not STSv1` };
  const mode = first.get('mode');
  if (mode !== 'enforce' && mode !== 'testing' && mode !== 'none') return { error: `mode is ${mode === undefined ? 'missing' : `"${mode}"`}, not enforce, testing or none` };
  const age = first.get('max_age');
  if (age === undefined || !/^\d{1,10}$/.test(age)) return { error: `max_age is ${age === undefined ? 'missing' : `"${age}"`}, not a number of seconds` };
  if (mode !== 'none' && mx.length === 0) return { error: `mode ${mode} without an mx line` };
  return { mode, mx, maxAge: Math.min(Number(age), STS_MAX_AGE_LIMIT), lines };
}

/** RFC 8461 §4.1: equal, or `*.rest` and the host is one label more than `rest`. */
export function mxPatternMatches(pattern: string, host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  const p = pattern.toLowerCase().replace(/\.$/, '');
  if (!p.startsWith('*.')) return h === p;
  const rest = p.slice(1); // ".example.com"
  return h.endsWith(rest) && h.length > rest.length && !h.slice(0, h.length - rest.length).includes('.');
}

/** The MX host matches one of the policy's patterns. */
export function mxAllowed(policy: Pick<StsPolicy, 'mx'>, host: string): boolean {
  return policy.mx.some((p) => mxPatternMatches(p, host));
}

/** A policy as cached: what was fetched, under which TXT id, until when. */
export interface CachedStsPolicy {
  domain: string;
  id: string;
  policy: StsPolicy;
  /** ms since the epoch: when it was fetched (or last confirmed by an unchanged TXT id). */
  fetchedAt: number;
  /** ms since the epoch: fetchedAt + max_age. */
  expiresAt: number;
}

/** What the TXT lookup said. */
export type StsRecordLookup = { kind: 'id'; id: string } | { kind: 'none' } | { kind: 'failed'; reason: string };

export type StsStep =
  /** Use the cached policy as it is. */
  | { action: 'use-cached' }
  /** Keep the cached policy and extend its life by max_age (same id: RFC 8461 §5.1 "proactive refresh"). */
  | { action: 'renew-cached' }
  /** Fetch the policy (none cached, the id changed, or the cached one expired). */
  | { action: 'fetch'; id: string }
  /** No policy applies. */
  | { action: 'none' };

/**
 * RFC 8461 §5.1: with a valid cached policy, a missing or failed TXT lookup keeps it (an attacker
 * can strip DNS answers); the same id keeps it; a new id fetches. Without one (or expired), a TXT
 * record fetches, no record means no policy.
 */
export function stsNextStep(cached: CachedStsPolicy | null, record: StsRecordLookup, now: number): StsStep {
  const valid = cached !== null && cached.expiresAt > now;
  if (record.kind !== 'id') return valid ? { action: 'use-cached' } : { action: 'none' };
  if (valid && cached.id === record.id) return { action: 'renew-cached' };
  return { action: 'fetch', id: record.id };
}
