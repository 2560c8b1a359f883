// Local parts as the local channel `l` names its users (pure): unquoted, lower case, `+tag`
// subaddress dropped, and never a path (moved here from smtp-server/local-users.ts and
// delivery/local-aliases.ts, which re-export them, so that the directory's sources share them).
import { normalizeDomain } from '../common/domain-name.js';
import { parseAddress } from '../rewrite/index.js';

/** `local@domain` split: the local part unquoted (case kept), the domain normalised; null for anything else (source routes, no domain). */
export function addressParts(address: string): { local: string; domain: string } | null {
  const parsed = parseAddress(address.trim());
  if (!parsed || parsed.domain === null || parsed.route.length > 0 || parsed.localPart === '') return null;
  let local = parsed.localPart;
  if (local.length >= 2 && local.startsWith('"') && local.endsWith('"')) local = local.slice(1, -1).replace(/\\(.)/g, '$1');
  return local === '' ? null : { local, domain: normalizeDomain(parsed.domain) };
}

/** The user a local part names: unquoted, lower-cased, without `+subaddress`; null when it cannot be one. */
export function localUserKey(localPart: string): string | null {
  let name = localPart;
  if (name.length >= 2 && name.startsWith('"') && name.endsWith('"')) name = name.slice(1, -1).replace(/\\(.)/g, '$1');
  const plus = name.indexOf('+');
  if (plus > 0) name = name.slice(0, plus);
  name = name.toLowerCase();
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) return null;
  return name;
}

/** The local part of an address, lower-case, without a `+tag` subaddress. */
export function localUser(localPart: string): { full: string; base: string } {
  const full = localPart.toLowerCase();
  const plus = full.indexOf('+');
  return { full, base: plus > 0 ? full.slice(0, plus) : full };
}

/** A user name that can be a directory name under mailbox/. */
export function isSafeUser(user: string): boolean {
  return user.length > 0 && user.length <= 64 && !user.includes('/') && user !== '.' && user !== '..' && !user.includes('\0');
}
