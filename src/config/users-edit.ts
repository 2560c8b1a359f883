// The change `imsimta passwd` makes to the text of etc/users: one user's line replaced (or
// appended), every other line — comments, other users, even malformed lines — kept byte for
// byte, line endings too. Pure.
import { formatUserLine, splitList, splitUserLine, type UserLineFields } from './users.js';

export interface UserChange {
  /** The new stored hash. Setting a password unlocks a locked user. */
  hash: string;
  /** Replaces the listed addresses; undefined keeps them. */
  addresses?: readonly string[];
  /** Sets or clears the admin flag; undefined keeps it. */
  admin?: boolean;
}

export type UserEdit = { ok: true; text: string; action: 'created' | 'updated'; line: number } | { ok: false; error: string };

export function applyUserChange(text: string, name: string, change: UserChange): UserEdit {
  const key = name.toLowerCase();
  const lines = text.split('\n');
  const matches: number[] = [];
  lines.forEach((raw, i) => {
    const fields = splitUserLine(raw.replace(/\r$/, ''));
    if (fields && fields !== 'comment' && fields.name.toLowerCase() === key) matches.push(i);
  });
  if (matches.length > 1) return { ok: false, error: `user ${key} is defined at lines ${matches.map((i) => i + 1).join(' and ')}: remove all but one first` };

  if (matches.length === 1) {
    const i = matches[0]!;
    const raw = lines[i]!;
    const cr = raw.endsWith('\r') ? '\r' : '';
    const old = splitUserLine(raw.slice(0, raw.length - cr.length)) as UserLineFields;
    lines[i] = formatUserLine({ name: old.name, hash: change.hash, addresses: addressesField(change.addresses, old.addresses), flags: flagsField(change.admin, old.flags) }) + cr;
    return { ok: true, text: lines.join('\n'), action: 'updated', line: i + 1 };
  }
  const line = formatUserLine({ name: key, hash: change.hash, addresses: addressesField(change.addresses, ''), flags: flagsField(change.admin, '') });
  const body = text === '' || text.endsWith('\n') ? text : `${text}\n`;
  return { ok: true, text: `${body}${line}\n`, action: 'created', line: body.split('\n').length };
}

function addressesField(addresses: readonly string[] | undefined, old: string): string {
  return addresses === undefined ? old : addresses.join(',');
}

function flagsField(admin: boolean | undefined, old: string): string {
  if (admin === undefined) return old;
  const others = splitList(old).filter((f) => f.toLowerCase() !== 'admin');
  return (admin ? [...others, 'admin'] : others).join(',');
}
