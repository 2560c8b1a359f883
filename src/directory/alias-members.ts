// What one target of an etc/aliases entry, or one entry of an `:include:` file, is (pure):
// sendmail's forms as Messaging Server's alias file takes them. `/dev/null` discards, `|program`
// and `/file` are not delivered to (tsubame runs no programs and writes no files for mail),
// `:include:/path` names a member file (absolute paths only: a relative one would depend on the
// process's working directory), `name@domain` is an address, a bare `name` a local part.
import { isAbsolute } from 'node:path';
import type { ListMember } from './types.js';
import { addressParts, localUserKey } from './local-part.js';

/** The member a target names; null for an empty target. */
export function aliasMember(target: string): ListMember | null {
  const t = target.trim();
  if (t === '') return null;
  if (t === '/dev/null') return { kind: 'discard' };
  if (t.startsWith('|')) return { kind: 'invalid', member: t, why: 'delivery to a program is not supported' };
  if (t.toLowerCase().startsWith(':include:')) {
    const path = t.slice(':include:'.length).trim();
    if (!isAbsolute(path)) return { kind: 'invalid', member: t, why: ':include: needs an absolute path' };
    return { kind: 'include', path };
  }
  if (t.startsWith('/')) return { kind: 'invalid', member: t, why: 'delivery to a file is not supported' };
  if (t.includes('@')) {
    const address = t.replace(/^<(.*)>$/, '$1');
    return addressParts(address) ? { kind: 'address', address } : { kind: 'invalid', member: t, why: 'not an address (local-part@domain)' };
  }
  return localUserKey(t) === null ? { kind: 'invalid', member: t, why: 'not a user name' } : { kind: 'local', name: t };
}

/** The targets of one line of an `:include:` file: comma-separated; a line starting with `#` is a comment. */
export function includeLineTargets(line: string): string[] {
  if (/^\s*#/.test(line)) return [];
  return line.split(',').map((t) => t.trim()).filter(Boolean);
}
