// Address syntax for the rewriter: RFC 5321 path parsing, and Messaging Server's
// host extraction (source route, `@`, `%` hack, `!` bang path). Pure functions.
import { isIPv4, isIPv6 } from 'node:net';

/** An RFC 5321 path split into its parts (case kept as written). */
export interface ParsedAddress {
  localPart: string; // as written, quotes included; '' for the null path `<>`
  domain: string | null; // null for a bare local part (`postmaster`) and for `<>`
  route: string[]; // source-route hosts, left to right (`@a,@b:u@c` → ['a', 'b'])
}

/** Where the host being rewritten was found (the `$S $A $P $X` controls). */
export type HostLocation = 'S' | 'A' | 'P' | 'X';

/** The host to rewrite, taken out of an address, and what is left around it. */
export interface ExtractedHost {
  host: string; // as written, trailing dot removed
  location: HostLocation;
  /** `$U`: the local part; for a source route the rest of the path (`@b:u@c` or `u@c`). */
  user: string;
}

const ATEXT_SPECIALS = "!#$%&'*+-/=?^_`{|}~";

function isAtext(ch: string): boolean {
  const c = ch.charCodeAt(0);
  return (
    (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c >= 0x80 || ATEXT_SPECIALS.includes(ch)
  );
}

function isLabelChar(ch: string): boolean {
  const c = ch.charCodeAt(0);
  // Letters, digits, hyphen; underscore and UTF-8 (U-labels) accepted as real MTAs do.
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c >= 0x80 || ch === '-' || ch === '_';
}

/** A domain name (dot-separated labels) or an address literal; a trailing dot is allowed. */
export function isValidDomain(domain: string): boolean {
  if (domain.startsWith('[')) return isValidLiteral(domain);
  const name = domain.endsWith('.') ? domain.slice(0, -1) : domain;
  if (name.length === 0 || name.length > 255) return false;
  for (const label of name.split('.')) {
    if (label.length === 0 || label.length > 63) return false;
    if (label.startsWith('-') || label.endsWith('-')) return false;
    for (const ch of label) if (!isLabelChar(ch)) return false;
  }
  return true;
}

function isValidLiteral(literal: string): boolean {
  if (!literal.endsWith(']') || literal.length < 3) return false;
  const inner = literal.slice(1, -1);
  if (isIPv4(inner)) return true;
  if (/^ipv6:/i.test(inner)) return isIPv6(inner.slice(5));
  // General-address-literal: Standardized-tag ":" 1*dcontent
  const m = /^([A-Za-z0-9-]*[A-Za-z0-9]):([\x21-\x5a\x5e-\x7e]+)$/.exec(inner);
  return m !== null;
}

function isValidLocalPart(local: string): boolean {
  if (local.length === 0) return false;
  if (local.startsWith('"')) {
    if (local.length < 2 || !local.endsWith('"')) return false;
    for (let i = 1; i < local.length - 1; i++) {
      const c = local.charCodeAt(i);
      if (c === 0x5c) {
        const n = local.charCodeAt(++i);
        if (i >= local.length - 1 || n < 0x20 || n > 0x7e) return false;
      } else if (c === 0x22 || (c < 0x20 && c !== 0x09) || c === 0x7f) {
        return false;
      }
    }
    return true;
  }
  return isDotString(local);
}

/** A Dot-string (RFC 5321 §4.1.2): atoms of atext joined by single dots. */
function isDotString(local: string): boolean {
  if (local.length === 0) return false;
  for (const atom of local.split('.')) {
    if (atom.length === 0) return false;
    for (const ch of atom) if (!isAtext(ch)) return false;
  }
  return true;
}

/**
 * The mailbox name a local part stands for: a Quoted-string's content with its quoted-pairs
 * resolved (`"al\ice"` is `alice`, RFC 5321 §4.1.2); a Dot-string as it is. Case is kept.
 */
export function unquoteLocalPart(local: string): string {
  if (local.length < 2 || !local.startsWith('"') || !local.endsWith('"')) return local;
  return local.slice(1, -1).replace(/\\([\s\S])/g, '$1');
}

/**
 * The one written form of a local part: a Quoted-string whose content is a Dot-string is
 * written unquoted (`"alice"` → `alice`), any other keeps its quotes with only `"` and `\`
 * escaped (`"alice "`, `"alice@x"`). Every spelling of one local part has the same canonical form.
 */
export function canonicalLocalPart(local: string): string {
  if (!local.startsWith('"')) return local;
  const content = unquoteLocalPart(local);
  return isDotString(content) ? content : `"${content.replace(/["\\]/g, '\\$&')}"`;
}

/** Index of the `@` that ends the local part (outside quotes), or -1. */
function localPartEnd(s: string): number {
  if (s.startsWith('"')) {
    for (let i = 1; i < s.length; i++) {
      if (s[i] === '\\') i++;
      else if (s[i] === '"') return s[i + 1] === '@' ? i + 1 : -1;
    }
    return -1;
  }
  return s.indexOf('@');
}

/**
 * Parses an RFC 5321 path: `<@a,@b:u@c>`, `u@c`, `"a@b"@c`, `u@[1.2.3.4]`, `postmaster`
 * (bare local part: domain null) or `<>` (null path: local part ''). Angle brackets are
 * optional. Returns null when the syntax is wrong.
 */
export function parseAddress(address: string): ParsedAddress | null {
  let s = address;
  if (s.startsWith('<')) {
    if (!s.endsWith('>')) return null;
    s = s.slice(1, -1);
  }
  if (s === '') return { localPart: '', domain: null, route: [] };
  const route: string[] = [];
  if (s.startsWith('@')) {
    // A-d-l ":" — hosts may be literals containing ':' (IPv6), so walk element by element.
    let i = 0;
    for (;;) {
      if (s[i] !== '@') return null;
      let j = i + 1;
      if (s[j] === '[') {
        const close = s.indexOf(']', j);
        if (close < 0) return null;
        j = close + 1;
      } else {
        while (j < s.length && s[j] !== ',' && s[j] !== ':') j++;
      }
      const host = s.slice(i + 1, j);
      if (!isValidDomain(host)) return null;
      route.push(stripDot(host));
      if (s[j] === ',') i = j + 1;
      else if (s[j] === ':') {
        s = s.slice(j + 1);
        break;
      } else return null;
    }
  }
  const at = localPartEnd(s);
  if (at < 0) {
    // No domain: only a bare local part (postmaster, or Messaging Server's u%host / host!u forms).
    if (route.length > 0 || !isValidLocalPart(s)) return null;
    return { localPart: s, domain: null, route };
  }
  const localPart = s.slice(0, at);
  const domain = s.slice(at + 1);
  if (!isValidLocalPart(localPart) || !isValidDomain(domain)) return null;
  return { localPart, domain: stripDot(domain), route };
}

function stripDot(host: string): string {
  return host.length > 1 && host.endsWith('.') && !host.startsWith('[') ? host.slice(0, -1) : host;
}

/** Renders parts back into a path without angle brackets. */
export function formatAddress(a: ParsedAddress): string {
  const mailbox = a.domain === null ? a.localPart : `${a.localPart}@${a.domain}`;
  return a.route.length ? `${a.route.map((h) => `@${h}`).join(',')}:${mailbox}` : mailbox;
}

/** Positions of `%` and `!` outside quotes in a local part; `%%` is a literal percent, not a separator. */
function separators(local: string): { lastPercent: number; firstBang: number } {
  let lastPercent = -1;
  let firstBang = -1;
  let quoted = false;
  for (let i = 0; i < local.length; i++) {
    const ch = local[i];
    if (ch === '\\' && quoted) {
      i++;
    } else if (ch === '"') {
      quoted = !quoted;
    } else if (!quoted && ch === '%') {
      if (local[i + 1] === '%') i++;
      else lastPercent = i;
    } else if (!quoted && ch === '!' && firstBang < 0) {
      firstBang = i;
    }
  }
  return { lastPercent, firstBang };
}

/**
 * Picks the host to rewrite, first found wins: a source-route host, the host right of `@`,
 * right of the last single `%`, left of the first `!` (the last two swap with
 * `bangoverpercent`; `percentonly` ignores bang paths). Null for a bare local part.
 */
export function extractHost(a: ParsedAddress, opts: { bangOverPercent?: boolean; percentOnly?: boolean } = {}): ExtractedHost | null {
  if (a.route.length > 0) {
    const rest = formatAddress({ ...a, route: a.route.slice(1) });
    return { host: a.route[0]!, location: 'S', user: rest };
  }
  if (a.domain !== null) return { host: a.domain, location: 'A', user: a.localPart };
  const { lastPercent, firstBang } = separators(a.localPart);
  const byPercent = (): ExtractedHost | null =>
    lastPercent > 0 && lastPercent < a.localPart.length - 1
      ? { host: stripDot(a.localPart.slice(lastPercent + 1)), location: 'P', user: a.localPart.slice(0, lastPercent) }
      : null;
  const byBang = (): ExtractedHost | null =>
    !opts.percentOnly && firstBang > 0 && firstBang < a.localPart.length - 1
      ? { host: a.localPart.slice(0, firstBang), location: 'X', user: a.localPart.slice(firstBang + 1) }
      : null;
  return opts.bangOverPercent ? (byBang() ?? byPercent()) : (byPercent() ?? byBang());
}

/**
 * Builds the address a template produced from its user part and host. For a host that came
 * from a source route, the user part is the rest of the path, so the host goes back in front.
 */
export function composeAddress(user: string, host: string, location: HostLocation): string {
  if (location === 'S') return `@${host}${user.startsWith('@') ? ',' : ':'}${user}`;
  return `${user}@${host}`;
}

/** Puts a relay in front of an address as a source route (`@R:u@d`, `@R,@a:u@d`). */
export function addSourceRoute(route: string, address: string): string {
  return `@${route}${address.startsWith('@') ? ',' : ':'}${address}`;
}
