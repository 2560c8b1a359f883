// Messaging Server's host extraction for the rewriter: which host of an address the rules
// rewrite (source route, `@`, `%` hack, `!` bang path) and how the result is put back. Pure.
// The address syntax itself is src/common/address.ts.
import { formatAddress, stripDot, type ParsedAddress } from '../common/address.js';
import type { HostLocation } from '../config/rewrite-template.js';

/** The host to rewrite, taken out of an address, and what is left around it. */
export interface ExtractedHost {
  host: string; // as written, trailing dot removed
  location: HostLocation;
  /** `$U`: the local part; for a source route the rest of the path (`@b:u@c` or `u@c`). */
  user: string;
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
