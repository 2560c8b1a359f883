// What an LDAP entry is to the directory (pure): a user (uid, addresses, delivery options,
// forwarding) or a group (owner, members), read with the attribute names of the configuration,
// Messaging Server's semantics: mailDeliveryOption `mailbox` (also when the attribute is
// absent) delivers to the mailbox named by the uid, `forward` to every mailForwardingAddress;
// mgrpErrorsTo is the group's owner. Attribute names compare case-insensitively, as LDAP's do.
import type { LdapAttributes, LdapOptions } from '../config/types.js';
import { hasObjectClasses } from './ldap-filter.js';
import { localUserKey } from './local-part.js';
import { isSafeUser } from './local-aliases.js';
import type { DirectoryUser, RecipientLookup } from './types.js';

/** An entry as ldapts returns it: its DN and attributes (a value or a list of values). */
export interface LdapEntry {
  dn: string;
  [attribute: string]: unknown;
}

/** The string values of an attribute (any case of its name); binary values are read as UTF-8. */
export function attributeValues(entry: LdapEntry, attribute: string): string[] {
  const wanted = attribute.toLowerCase();
  const out: string[] = [];
  for (const [name, value] of Object.entries(entry)) {
    if (name === 'dn' || name.toLowerCase() !== wanted) continue;
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v === null || v === undefined) continue;
      const text = Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
      if (text !== '') out.push(text);
    }
  }
  return out;
}

/** The attributes a recipient or login search asks for (never a group's member lists, which may be long). */
export function recipientAttributes(a: LdapAttributes): string[] {
  return ['objectClass', a.uid, a.mail, a.alternateAddress, a.equivalentAddress, a.forwardingAddress, a.deliveryOption, a.errorsTo];
}

export type EntryKind = 'user' | 'group' | null;

export function entryKind(entry: LdapEntry, opts: Pick<LdapOptions, 'userObjectClasses' | 'groupObjectClasses'>): EntryKind {
  const classes = attributeValues(entry, 'objectClass');
  if (hasObjectClasses(classes, opts.userObjectClasses)) return 'user';
  if (hasObjectClasses(classes, opts.groupObjectClasses)) return 'group';
  return null;
}

/** The entry as a recipient; `asked` is the address (or DN) it was found by, used when it has no `mail`. */
export function recipientOf(entry: LdapEntry, opts: Pick<LdapOptions, 'userObjectClasses' | 'groupObjectClasses' | 'attributes'>, asked: string): RecipientLookup {
  const a = opts.attributes;
  const address = attributeValues(entry, a.mail)[0] ?? asked;
  switch (entryKind(entry, opts)) {
    case 'user': {
      const uid = attributeValues(entry, a.uid)[0] ?? null;
      const found = attributeValues(entry, a.deliveryOption).map((o) => o.trim().toLowerCase());
      const deliveryOptions = found.length > 0 ? [...new Set(found)] : ['mailbox'];
      const name = uid === null ? null : localUserKey(uid);
      const mailbox = deliveryOptions.includes('mailbox') && name !== null && isSafeUser(name) ? name : null;
      const forwarding = deliveryOptions.includes('forward') ? attributeValues(entry, a.forwardingAddress) : [];
      return { kind: 'user', user: uid ?? address, address, mailbox, forwarding, deliveryOptions };
    }
    case 'group':
      return { kind: 'group', id: entry.dn, address, owner: ownerOf(attributeValues(entry, a.errorsTo)[0]), selfMailbox: null };
    default:
      return { kind: 'none' };
  }
}

/** mgrpErrorsTo: an address, or `mailto:` and an address; an LDAP URL (which Messaging Server resolves) is not followed here. */
function ownerOf(value: string | undefined): string | null {
  if (!value) return null;
  const v = value.trim().replace(/^mailto:/i, '');
  return /^ldaps?:\/\//i.test(v) || !v.includes('@') ? null : v;
}

/** A user entry as an authenticated user: its uid (else its address) and every address it has. */
export function directoryUserOf(entry: LdapEntry, a: LdapAttributes): DirectoryUser {
  const addresses = [...attributeValues(entry, a.mail), ...attributeValues(entry, a.alternateAddress), ...attributeValues(entry, a.equivalentAddress)];
  const name = attributeValues(entry, a.uid)[0] ?? addresses[0] ?? entry.dn;
  return { name, addresses: [...new Set(addresses)], admin: false };
}

/** A group's members: by address (mgrpRFC822MailMember) and by DN (uniqueMember). */
export function groupMembersOf(entry: LdapEntry, a: LdapAttributes): { addresses: string[]; dns: string[] } {
  return { addresses: attributeValues(entry, a.groupRfc822Member), dns: attributeValues(entry, a.groupDnMember) };
}
