// The directory (issue 15 users, issue 19 recipients and lists): interfaces, the files and LDAP
// sources, list expansion, sender ownership, password hashes.
export type { DirectoryUser, ListMember, RecipientDirectory, RecipientLookup } from './types.js';
export { filesDirectory, dummyHashFor } from './files-source.js';
export { localityOf } from './locality.js';
export { decideSender } from './sender-ownership.js';
export { KdfGate } from './kdf-gate.js';
export { hashPassword } from './password-hash.js';
;
export { filesRecipients } from './files-recipients.js';
;
;
;
export { aliasMember, includeLineTargets } from './alias-members.js';
;
export { expandRecipient, type ExpandOptions, type ExpandedRecipient } from './expand.js';
;
;
;
export { checkRecipient } from './recipient-check.js';
export { openDirectory, directorySourceOf } from './source.js';
export { filesHostedDomains, openHostedDomains } from './hosted-domains.js';
