// Sender ownership (issue 15, item 4): whether an authenticated user may use an address as
// envelope sender. Postfix's reject_sender_login_mismatch, with the owners taken from the
// directory: a user owns name@each local domain (name+tag too) and its listed addresses (a
// listed address's +tag forms too); an admin owns every address. The null sender `<>` claims no
// one's address and is allowed (delivery reports from a user's own software). Pure.
import { parseAddress } from '../rewrite/index.js';
import { normalizeDomain } from '../common/domain-name.js';
import type { DirectoryUser, SenderDecision } from './types.js';

export function decideSender(user: DirectoryUser, address: string, localUserOf: (address: string) => string | null): SenderDecision {
  const bare = address.trim().replace(/^<(.*)>$/, '$1');
  if (bare === '') return { ok: true, why: 'null-sender' };
  if (user.admin) return { ok: true, why: 'admin' };
  if (localUserOf(bare) === user.name.toLowerCase()) return { ok: true, why: 'own-local-address' };
  const key = mailboxKey(bare);
  if (key && user.addresses.some((listed) => mailboxKey(listed)?.full === key.full || mailboxKey(listed)?.full === key.base)) {
    return { ok: true, why: 'listed-address' };
  }
  return { ok: false, reason: 'not-owner' };
}

/** `local@domain` compared case-insensitively, quotes removed; `base` without the `+tag`. Null for anything that is not local-part@domain. */
function mailboxKey(address: string): { full: string; base: string } | null {
  const parsed = parseAddress(address.trim());
  if (parsed?.domain == null || parsed.route.length > 0 || parsed.localPart === '') return null;
  let local = parsed.localPart;
  if (local.length >= 2 && local.startsWith('"') && local.endsWith('"')) local = local.slice(1, -1).replace(/\\(.)/g, '$1');
  local = local.toLowerCase();
  const domain = normalizeDomain(parsed.domain);
  const plus = local.indexOf('+');
  return { full: `${local}@${domain}`, base: `${plus > 0 ? local.slice(0, plus) : local}@${domain}` };
}
