// Addresses and local parts as the directory's sources name users (pure): an address split into
// its unquoted local part and normalised domain, and the user key of a local part (the local
// channel's reading: directory/local-aliases.ts).
import { normalizeDomain } from '../common/domain-name.js';
import { canonicalLocalPart, parseAddress, unquoteLocalPart } from '../rewrite/index.js';
import { isSafeUser, localUser } from './local-aliases.js';

/** `local@domain` split: the local part unquoted (case kept), the domain normalised; null for anything else (source routes, no domain). */
export function addressParts(address: string): { local: string; domain: string } | null {
  const parsed = parseAddress(address.trim());
  if (parsed?.domain == null || parsed.route.length > 0 || parsed.localPart === '') return null;
  const local = unquoteLocalPart(parsed.localPart);
  return local === '' ? null : { local, domain: normalizeDomain(parsed.domain) };
}

/** The user a local part names: unquoted, lower-cased, without `+subaddress`; null when it cannot be one. */
export function localUserKey(localPart: string): string | null {
  const { base } = localUser(localPart);
  return isSafeUser(base) ? base : null;
}

/** `local@domain` with the local part (unquoted, as addressParts gives it) quoted when it must be (`"sales(team)"@x`). */
export function joinAddress(local: string, domain: string): string {
  return `${canonicalLocalPart(`"${local.replace(/["\\]/g, '\\$&')}"`)}@${domain}`;
}
