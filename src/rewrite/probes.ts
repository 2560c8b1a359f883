// The patterns tried for a host, most specific first (Messaging Server's lookup order),
// with what each one leaves for the `$D $H $L $&n $!n $*n $#n` substitutions. Pure.
import { isIPv4 } from 'node:net';

export type ProbeKind = 'exact' | 'star' | 'subdomain' | 'literal' | 'any-literal' | 'match-all';

export interface Probe {
  /** The rule pattern looked up (lower-case). */
  pattern: string;
  kind: ProbeKind;
  /** `$D`: the part of the host the pattern matched. */
  matched: string;
  /** `$H`: the part it did not match (left of the pattern's dot). */
  unmatched: string;
  /** `$L`: the unmatched part of a domain literal. */
  literalRest: string;
  /** Labels matched by `*` or not matched at all (`$&n`, `$!n`). */
  wildLabels: string[];
  /** Labels matched by explicit pattern text (`$*n`, `$#n`). */
  fixedLabels: string[];
  /** Also compared with the channel host table (only the exact probe). */
  channelTable: boolean;
}

/** The host (as written) and its lookup key. */
export function hostKey(host: string): string {
  return host.toLowerCase();
}

/**
 * Probes for `host` after `$*` (which the engine tries first): the exact name (also checked
 * against the channel host table), then label by label `*.` then `.` forms, `*.*…`, then `.`.
 * For an IPv4 literal `[1.2.3.4]`: `[1.2.3.4]`, `[1.2.3.]`, `[1.2.]`, `[1.]`, `[]`, then `.`.
 */
export function hostProbes(host: string): Probe[] {
  const probes: Probe[] = [];
  if (host.startsWith('[') && host.endsWith(']')) {
    const inner = host.slice(1, -1);
    const v4 = isIPv4(inner);
    probes.push(probe(hostKey(host), 'exact', host, '', '', [], [inner], true));
    if (v4) {
      const octets = inner.split('.');
      for (let keep = 3; keep >= 1; keep--) {
        const prefix = `[${octets.slice(0, keep).join('.')}.]`;
        const rest = octets.slice(keep);
        probes.push(probe(prefix, 'literal', prefix, '', rest.join('.'), rest, octets.slice(0, keep), false));
      }
    }
    probes.push(probe('[]', 'any-literal', '[]', '', inner, v4 ? inner.split('.') : [inner], [], false));
    probes.push(probe('.', 'match-all', '.', host, '', [host], [], false));
    return probes;
  }
  const labels = host.split('.');
  const lower = host.toLowerCase().split('.');
  probes.push(probe(lower.join('.'), 'exact', host, '', '', [], labels, true));
  let stars = '';
  for (let i = 1; i < labels.length; i++) {
    const fixed = labels.slice(i);
    const wild = labels.slice(0, i);
    const tail = lower.slice(i).join('.');
    stars += '*.';
    probes.push(probe(stars + tail, 'star', host, '', '', wild, fixed, false));
    probes.push(probe(`.${tail}`, 'subdomain', `.${fixed.join('.')}`, wild.join('.'), '', wild, fixed, false));
  }
  probes.push(probe(stars + '*', 'star', host, '', '', labels, [], false));
  probes.push(probe('.', 'match-all', '.', host, '', labels, [], false));
  return probes;
}

function probe(pattern: string, kind: ProbeKind, matched: string, unmatched: string, literalRest: string, wildLabels: string[], fixedLabels: string[], channelTable: boolean): Probe {
  return { pattern, kind, matched, unmatched, literalRest, wildLabels, fixedLabels, channelTable };
}
