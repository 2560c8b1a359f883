// Which keys sign a message: those of etc/dkim/keys for its RFC5322.From domain (the domain DMARC
// aligns with), else those of the closest `*.parent` line that covers it.
import type { DkimConfig, DkimKey } from '../config/types.js';

/** Every key for `fromDomain` (one signature each); empty when none is configured. */
export function signingKeysFor(fromDomain: string, dkim: DkimConfig): DkimKey[] {
  const domain = fromDomain.toLowerCase().replace(/\.$/, '');
  const exact = dkim.keys.filter((k) => !k.subdomains && k.domain === domain);
  if (exact.length > 0) return exact;
  let best: DkimKey[] = [];
  for (const k of dkim.keys) {
    if (!k.subdomains || !domain.endsWith(`.${k.domain}`)) continue;
    if (best.length === 0 || k.domain.length > best[0]!.domain.length) best = [k];
    else if (k.domain === best[0]!.domain) best.push(k);
  }
  return best;
}
