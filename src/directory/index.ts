// The directory (issue 15 users, issue 19 recipients and lists): interfaces, the files and LDAP
// sources, list expansion, sender ownership, password hashes.
export type { AddressesResult, AuthResult, Directory, DirectoryUser, GroupRecipient, ListMember, RecipientDirectory, RecipientLookup, SenderDecision, Unavailable, UserDirectory, UserRecipient } from './types.js';
export { FilesUserDirectory, filesDirectory, dummyHashFor, type FilesDirectoryOptions } from './files-source.js';
export { localityOf, type Locality, type LocalityOptions } from './locality.js';
export { decideSender, mailboxKey } from './sender-ownership.js';
export { KdfGate, defaultKdfConcurrency } from './kdf-gate.js';
export { hashPassword, verifyPassword, passwordProblem, MAX_PASSWORD_BYTES } from './password-hash.js';
export { parsePasswordHash, formatPasswordHash, DEFAULT_SCRYPT_PARAMS, type ScryptHash, type ScryptParams } from '../config/hash-format.js';
export { FilesRecipientDirectory, filesRecipients, type MailboxNames } from './files-recipients.js';
export { LocalUsers } from './local-users.js';
export { localUserKey, addressParts } from './local-part.js';
export { expandLocal, localUser, localVerdict, localDomainsOf, isSafeUser, type LocalTarget, type LocalVerdict } from './local-aliases.js';
export { aliasMember, includeLineTargets } from './alias-members.js';
export { readIncludeFile } from './include-file.js';
export { expandRecipient, type ExpandOptions, type ExpandedRecipient, type FailureReason, type ListContext } from './expand.js';
export { LdapDirectory, type LdapDirectoryOptions, type LdapDirectoryStats } from './ldap-source.js';
export { LdapPool, LdapUnavailableError, type LdapPoolEvent, type LdapPoolOptions } from './ldap-pool.js';
export { escapeFilterValue, equalityFilter, anyOf, allOf, objectClassFilter } from './ldap-filter.js';
export { TtlCache } from './ttl-cache.js';
export { openUserDirectory, type OpenUserDirectory, type UserDirectoryOptions } from './select.js';
