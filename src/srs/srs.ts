// The Sender Rewriting Scheme (SRS), as libsrs2 and Postfix's postsrsd write it, so that SPF at
// the final receiver passes when mail from outside is forwarded outside, and bounces still find
// the original sender. Pure functions of (address, settings, time):
//
//   forward  alice@orig.example            → SRS0=HHHH=TT=orig.example=alice@SRS_DOMAIN
//   forward  SRS0=HHHH=TT=orig.example=alice@fwd1.example
//                                          → SRS1=GGGG=fwd1.example==HHHH=TT=orig.example=alice@SRS_DOMAIN
//   reverse  SRS0=…@SRS_DOMAIN             → alice@orig.example (hash and age checked)
//   reverse  SRS1=GGGG=fwd1.example==…@SRS_DOMAIN
//                                          → SRS0=HHHH=…@fwd1.example (hash checked; fwd1 checks the age)
//
// HHHH: the first 4 characters of base64(HMAC-SHA1(secret, lower-case(TT + domain + local))) for
// SRS0, of HMAC-SHA1(secret, lower-case(host + rest)) for SRS1, exactly as libsrs2 (so addresses a
// postsrsd with the same secret made verify here, and back). TT: the day number modulo 1024 in
// two base32 characters (A–Z, 2–7). Local parts may have been lower-cased on the way back, so the
// tag, the timestamp and the hash are compared without regard to case. The first secret signs,
// every secret verifies (rotation). The secrets are KeyObjects: they never print or serialise.
import { createHmac, type KeyObject } from 'node:crypto';

export interface SrsSettings {
  /** The domain of rewritten addresses (SRS_DOMAIN): bounces to it must reach this MTA. */
  domain: string;
  /** The first signs; all verify. */
  secrets: readonly KeyObject[];
  /** Days an SRS0 address stays valid (SRS_MAXAGE, libsrs2's 21). */
  maxAgeDays: number;
}

export type SrsForwardResult =
  | { kind: 'rewritten'; address: string }
  /** The sender is kept: `<>`, an address at SRS_DOMAIN itself, one that cannot be encapsulated. */
  | { kind: 'unchanged'; reason: string };

export type SrsReverseResult =
  /** Not an SRS address at SRS_DOMAIN: route it as any other. */
  | { kind: 'not-srs' }
  | { kind: 'reversed'; address: string; form: 'SRS0' | 'SRS1' }
  /** An SRS address of ours that does not verify (forged, tampered, expired, malformed): refuse it (550 5.1.1). */
  | { kind: 'invalid'; reason: string };

const SRS_HASH_LENGTH = 4;
const TIME_PRECISION_MS = 24 * 60 * 60 * 1000;
const TIME_BASE_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const TIME_SLOTS = 1024; // two base32 characters
/** The separators libsrs2 takes after SRS0/SRS1; it writes `=`. */
const TAG_SEPARATORS = '=-+';
/** RFC 5322 atext and dots (RFC 6531: UTF-8 too). */
const DOT_ATOM_TEXT = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\u0080-\u{10FFFF}-]+$/u;
const DOMAIN_TEXT = /^[A-Za-z0-9.\u0080-\u{10FFFF}-]+$/u;

/** The forwarded copy's envelope sender. `now` is a time in ms (Date.now()). */
export function srsForward(sender: string, settings: SrsSettings, now: number): SrsForwardResult {
  if (settings.secrets.length === 0) return { kind: 'unchanged', reason: 'no SRS secret' };
  if (sender === '' || sender === '<>') return { kind: 'unchanged', reason: 'null sender (a bounce)' };
  const at = sender.lastIndexOf('@');
  if (at <= 0 || at === sender.length - 1) return { kind: 'unchanged', reason: 'sender without a domain' };
  const local = sender.slice(0, at);
  const host = sender.slice(at + 1);
  if (asciiLower(host) === asciiLower(settings.domain)) return { kind: 'unchanged', reason: `sender already at ${settings.domain}` };
  // Ours must stay a dot-atom: a quoted local part or a domain literal cannot be carried inside it.
  if (!DOT_ATOM_TEXT.test(local)) return { kind: 'unchanged', reason: 'quoted local part' };
  if (!DOMAIN_TEXT.test(host)) return { kind: 'unchanged', reason: 'domain literal or malformed domain' };
  const key = settings.secrets[0]!;
  const srs1 = tagged(local, 'SRS1');
  if (srs1 !== null) {
    // Re-sign another forwarder's SRS1 with our hash, keeping its first hop and its SRS0 part.
    const [, firstHop, rest] = splitFields(srs1.slice(5), 3);
    if (!firstHop || !rest) return { kind: 'unchanged', reason: 'malformed SRS1 sender' };
    return { kind: 'rewritten', address: `SRS1=${hash(key, firstHop, rest)}=${firstHop}=${rest}@${settings.domain}` };
  }
  const srs0 = tagged(local, 'SRS0');
  if (srs0 !== null) {
    // Another forwarder's SRS0: point back at that forwarder (its host) with the SRS0 part after the tag.
    const rest = srs0.slice(4); // from the separator after SRS0
    return { kind: 'rewritten', address: `SRS1=${hash(key, host, rest)}=${host}=${rest}@${settings.domain}` };
  }
  const stamp = timestamp(now);
  return { kind: 'rewritten', address: `SRS0=${hash(key, stamp, host, local)}=${stamp}=${host}=${local}@${settings.domain}` };
}

/** Where a bounce to `address` goes. `now` is a time in ms. */
export function srsReverse(address: string, settings: SrsSettings, now: number): SrsReverseResult {
  const at = address.lastIndexOf('@');
  if (at <= 0) return { kind: 'not-srs' };
  const local = address.slice(0, at);
  if (asciiLower(address.slice(at + 1)) !== asciiLower(settings.domain)) return { kind: 'not-srs' };
  const srs1 = tagged(local, 'SRS1');
  if (srs1 !== null) {
    const [givenHash, firstHop, rest] = splitFields(srs1.slice(5), 3);
    if (!givenHash) return { kind: 'invalid', reason: 'SRS1 address without a hash' };
    if (!firstHop) return { kind: 'invalid', reason: 'SRS1 address without the first forwarder' };
    if (!rest) return { kind: 'invalid', reason: 'SRS1 address without its SRS0 part' };
    const bad = checkHash(givenHash, settings, [firstHop, rest]);
    if (bad) return { kind: 'invalid', reason: bad };
    return { kind: 'reversed', form: 'SRS1', address: `SRS0${rest}@${firstHop}` };
  }
  const srs0 = tagged(local, 'SRS0');
  if (srs0 === null) return { kind: 'not-srs' };
  const [givenHash, stamp, host, user] = splitFields(srs0.slice(5), 4);
  if (!givenHash) return { kind: 'invalid', reason: 'SRS0 address without a hash' };
  if (!stamp) return { kind: 'invalid', reason: 'SRS0 address without a timestamp' };
  if (!host) return { kind: 'invalid', reason: 'SRS0 address without the original domain' };
  if (!user) return { kind: 'invalid', reason: 'SRS0 address without the original local part' };
  const age = ageInDays(stamp, now);
  if (age === null) return { kind: 'invalid', reason: `SRS0 timestamp "${stamp}" is not two base32 characters` };
  if (age > settings.maxAgeDays) return { kind: 'invalid', reason: `SRS0 address expired (${age} days old; SRS_MAXAGE is ${settings.maxAgeDays})` };
  const bad = checkHash(givenHash, settings, [stamp, host, user]);
  if (bad) return { kind: 'invalid', reason: bad };
  return { kind: 'reversed', form: 'SRS0', address: `${user}@${host}` };
}

/** Whether a local part is written as an SRS address (SRS0/SRS1 and a separator, any case). */
export function isSrsLocalPart(local: string): boolean {
  return tagged(local, 'SRS0') !== null || tagged(local, 'SRS1') !== null;
}

/** `local` when it starts with `tag` (any case) and a separator, else null. */
function tagged(local: string, tag: 'SRS0' | 'SRS1'): string | null {
  return local.length >= 5 && local.slice(0, 4).toUpperCase() === tag && TAG_SEPARATORS.includes(local[4]!) ? local : null;
}

/** Splits at the first `count - 1` `=`, the last field keeping the rest (which may hold `=`). */
function splitFields(text: string, count: number): Array<string | undefined> {
  const out: Array<string | undefined> = [];
  let rest = text;
  for (let i = 0; i < count - 1; i++) {
    const eq = rest.indexOf('=');
    if (eq < 0) {
      out.push(rest);
      return out;
    }
    out.push(rest.slice(0, eq));
    rest = rest.slice(eq + 1);
  }
  out.push(rest);
  return out;
}

function hash(key: KeyObject, ...fields: string[]): string {
  const hmac = createHmac('sha1', key);
  for (const f of fields) hmac.update(asciiLower(f), 'utf8');
  return hmac.digest('base64').slice(0, SRS_HASH_LENGTH);
}

/** null when one secret's hash matches (without regard to case, as libsrs2); else why not. */
function checkHash(given: string, settings: SrsSettings, fields: string[]): string | null {
  if (given.length < SRS_HASH_LENGTH) return `hash "${given}" too short`;
  const wanted = asciiLower(given.slice(0, SRS_HASH_LENGTH));
  for (const key of settings.secrets) if (asciiLower(hash(key, ...fields)) === wanted) return null;
  return 'hash does not verify (forged, altered, or signed with a secret no longer in etc/srs.secrets)';
}

/** Today's two-character stamp (days since the epoch, modulo 1024, base32). */
export function timestamp(now: number): string {
  const day = Math.floor(now / TIME_PRECISION_MS);
  return TIME_BASE_CHARS[(day >> 5) & 31]! + TIME_BASE_CHARS[day & 31]!;
}

/** Days since `stamp` was made (0–1023, the 1024-day cycle wrapped as libsrs2 does), or null when it is not a stamp. */
function ageInDays(stamp: string, now: number): number | null {
  if (stamp.length !== 2) return null;
  let then = 0;
  for (const ch of stamp.toUpperCase()) {
    const v = TIME_BASE_CHARS.indexOf(ch);
    if (v < 0) return null;
    then = (then << 5) | v;
  }
  let today = Math.floor(now / TIME_PRECISION_MS) % TIME_SLOTS;
  while (today < then) today += TIME_SLOTS;
  return today - then;
}

/** Lower-cases A–Z only, as libsrs2's tolower() in the C locale (a UTF-8 local part is hashed as sent). */
function asciiLower(text: string): string {
  return text.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}
