// RFC 5321 address syntax, shared by every part that reads addresses: path parsing and
// formatting, domain and local-part checks, the canonical form of a local part. Pure functions.
import { isIPv4, isIPv6 } from 'node:net';

/** An RFC 5321 path split into its parts (case kept as written). */
export interface ParsedAddress {
  localPart: string; // as written, quotes included; '' for the null path `<>`
  domain: string | null; // null for a bare local part (`postmaster`) and for `<>`
  route: string[]; // source-route hosts, left to right (`@a,@b:u@c` → ['a', 'b'])
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

/** A host name without its trailing root dot (an address literal as it is). */
export function stripDot(host: string): string {
  return host.length > 1 && host.endsWith('.') && !host.startsWith('[') ? host.slice(0, -1) : host;
}

/** Renders parts back into a path without angle brackets. */
export function formatAddress(a: ParsedAddress): string {
  const mailbox = a.domain === null ? a.localPart : `${a.localPart}@${a.domain}`;
  return a.route.length ? `${a.route.map((h) => `@${h}`).join(',')}:${mailbox}` : mailbox;
}
