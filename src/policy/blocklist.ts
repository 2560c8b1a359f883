// DNS blocklist lookups (dispatcher.cnf DNS_VERIFY_DOMAIN): the client's address reversed under
// each zone (IPv4 octets, IPv6 nibbles), A and TXT asked in parallel for every zone at once through
// the cached lookup, within one deadline. The first zone that lists the address decides; a zone
// that cannot answer in time, or answers with something that is no listing (127.255.255.x, an
// address outside 127/8), is reported as unchecked, for the caller's fail-open/closed choice.
// What the SMTP stage answers is in blocklist-decision.ts.
import net from 'node:net';
import type { Answer } from 'dns-packet';
import { addressBytes } from '../common/cidr.js';
import type { RrsetResult, RrsetSource } from '../dns/lookup.js';

export interface BlocklistListing {
  listed: true;
  zone: string;
  /** The A record the zone answered (127.0.0.2 …): lists use it to say why. */
  code: string;
  /** The zone's TXT record for the address (usually a URL to look the listing up), or null when it has none. */
  text: string | null;
}

export interface BlocklistUnchecked {
  zone: string;
  /** `timeout` (no answer before the deadline), SERVFAIL, REFUSED…, or what the zone answered that is no listing. */
  reason: string;
}

export type BlocklistResult =
  | BlocklistListing
  /** Not listed by any zone that answered; `unchecked` names the zones that did not (empty when all did). */
  | { listed: false; unchecked: BlocklistUnchecked[] };

/** The query name of `ip` under `zone`: 192.0.2.1 → 1.2.0.192.zone; IPv6 → 32 nibbles, lowest first. Null for a non-address. */
export function blocklistQueryName(ip: string, zone: string): string | null {
  const address = unmapIPv4(ip);
  if (net.isIPv4(address)) return `${address.split('.').reverse().join('.')}.${zone}`;
  if (!net.isIPv6(address)) return null;
  const nibbles = [...addressBytes(address)].flatMap((b) => [(b >> 4).toString(16), (b & 0xf).toString(16)]);
  return `${nibbles.reverse().join('.')}.${zone}`;
}

/** A listing is an A record in 127.0.0.0/8; 127.255.255.0/24 are the lists' own error answers (Spamhaus: refused, over quota). */
export function listingCode(records: Answer[]): string | null {
  for (const r of records) {
    if (r.type !== 'A' || typeof r.data !== 'string') continue;
    if (r.data.startsWith('127.') && !r.data.startsWith('127.255.255.')) return r.data;
  }
  return null;
}

/**
 * Why A records that are no listing say the zone was not checked: a list's error answer
 * (127.255.255.x: the query came through a public resolver, over quota…) or an address outside
 * 127/8 (a resolver that rewrites NXDOMAIN, a zone that is gone). Null when there are none.
 */
function unusableAnswer(records: Answer[]): string | null {
  let ip: string | null = null;
  for (const r of records) if (ip === null && r.type === 'A' && typeof r.data === 'string') ip = r.data;
  if (ip === null) return null;
  return ip.startsWith('127.') ? `answered ${ip}, the list's error answer` : `answered ${ip}, outside 127.0.0.0/8`;
}

const MAX_TEXT = 200;

/** The TXT record as one line of printable ASCII, at most 200 characters; null when there is none. */
export function listingText(records: Answer[]): string | null {
  const txt = records.find((r) => r.type === 'TXT');
  if (!txt) return null;
  const data = txt.data as unknown;
  const parts = Array.isArray(data) ? data : [data];
  const text = parts
    .map((p) => (Buffer.isBuffer(p) ? p.toString('latin1') : String(p)))
    .join('')
    .replace(/[^\x20-\x7e]/g, '?')
    .trim();
  if (!text) return null;
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}...` : text;
}

/**
 * Asks every zone about `clientIp` at once. Resolves with the first listing (zones that answer
 * later are not waited for), else when every zone has answered, else at `timeoutMs` with the
 * zones still out as unchecked. Never rejects.
 */
export function checkBlocklists(lookup: RrsetSource, clientIp: string, zones: readonly string[], options: { timeoutMs: number }): Promise<BlocklistResult> {
  const questions = zones.map((zone) => ({ zone, name: blocklistQueryName(clientIp, zone) }));
  if (questions.length === 0 || questions.some((q) => q.name === null)) return Promise.resolve({ listed: false, unchecked: [] });
  return new Promise((resolve) => {
    const outcomes = new Map<string, BlocklistUnchecked | 'clean'>();
    let done = false;
    const finish = (result: BlocklistResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(result);
    };
    const uncheckedNow = (): BlocklistUnchecked[] =>
      zones.flatMap((zone) => {
        const o = outcomes.get(zone);
        return o === 'clean' ? [] : [o ?? { zone, reason: 'timeout' }];
      });
    // A zone whose A record lists the address while its TXT record is still out: listed, whatever comes.
    const pendingListings: Array<{ zone: string; code: string }> = [];
    const timer = setTimeout(() => {
      const first = pendingListings[0];
      finish(first ? { listed: true, ...first, text: null } : { listed: false, unchecked: uncheckedNow() });
    }, options.timeoutMs);
    for (const { zone, name } of questions) {
      const a = lookup.rrset(name!, 'A');
      const txt = lookup.rrset(name!, 'TXT');
      void a.then(
        async (answer) => {
          const code = answer.status === 'ok' ? listingCode(answer.records) : null;
          if (code) {
            // Listed: the TXT record (asked at the same time) gives the reason, if it comes before the deadline.
            pendingListings.push({ zone, code });
            const t = await txt.catch((): RrsetResult => ({ status: 'temporary', reason: 'error' }));
            finish({ listed: true, zone, code, text: t.status === 'ok' ? listingText(t.records) : null });
            return;
          }
          // An answer that is no listing (an error code, an address outside 127/8) checked nothing:
          // unchecked, so that it is logged (fail open) or refused for now (fail closed), never silently clean.
          const unusable = answer.status === 'ok' ? unusableAnswer(answer.records) : null;
          outcomes.set(zone, answer.status === 'temporary' ? { zone, reason: answer.reason } : unusable ? { zone, reason: unusable } : 'clean');
          if (outcomes.size === zones.length) finish({ listed: false, unchecked: uncheckedNow() });
        },
        (err: Error) => {
          outcomes.set(zone, { zone, reason: err.message });
          if (outcomes.size === zones.length) finish({ listed: false, unchecked: uncheckedNow() });
        },
      );
      void txt.catch(() => undefined); // an unused TXT answer must not be an unhandled rejection
    }
  });
}

/** ::ffff:192.0.2.1 (an IPv4 client on a dual-stack socket) is looked up as 192.0.2.1. */
function unmapIPv4(ip: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m ? m[1]! : ip;
}
