// Where an envelope recipient goes next (pure): its domain, a source route's first relay, or a
// domain literal.
import net from 'node:net';
import { normalizeDomain } from '../common/domain-name.js';

export type Destination =
  /** Look up MX (or A/AAAA with nomx) for `domain`. */
  | { kind: 'domain'; domain: string }
  /** `[192.0.2.1]` / `[IPv6:2001:db8::1]`: connect to the address itself. */
  | { kind: 'literal'; ip: string }
  | { kind: 'invalid'; reason: string };

/**
 * `user@domain` → the domain; `@relay1,@relay2:user@domain` (RFC 5321 §C source route) → relay1,
 * and the RCPT carries the whole route for the relay to follow.
 */
export function destinationOf(address: string): Destination {
  const a = address.trim();
  // nodemailer refuses the whole transaction for one such address; refuse it alone here.
  if (/[\r\n<>]/.test(a)) return { kind: 'invalid', reason: `illegal characters in ${JSON.stringify(a)}` };
  const route = /^@([^,:]+)(?:,@[^,:]+)*:(.+)$/.exec(a);
  if (route) return hostDestination(route[1]!);
  const at = a.lastIndexOf('@');
  if (at <= 0 || at === a.length - 1) return { kind: 'invalid', reason: `no domain in ${a || '<>'}` };
  return hostDestination(a.slice(at + 1));
}

function hostDestination(host: string): Destination {
  const h = normalizeDomain(host);
  const literal = /^\[(?:ipv6:)?([^\]]+)\]$/i.exec(h);
  if (literal) {
    return net.isIP(literal[1]!) ? { kind: 'literal', ip: literal[1]! } : { kind: 'invalid', reason: `bad address literal ${host}` };
  }
  if (!/^[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?$/.test(h) || h.includes('..')) return { kind: 'invalid', reason: `bad domain ${host}` };
  return { kind: 'domain', domain: h };
}

/** A smart-host entry `host`, `host:port`, `[v6]:port` or `[host]` → name and optional port. */
export function parseHostPort(entry: string): { host: string; port: number | null } {
  const e = entry.trim();
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(e);
  if (bracket) return { host: bracket[1]!, port: bracket[2] ? Number(bracket[2]) : null };
  if (net.isIPv6(e)) return { host: e, port: null };
  const m = /^(.+):(\d+)$/.exec(e);
  return m ? { host: m[1]!, port: Number(m[2]) } : { host: e, port: null };
}
