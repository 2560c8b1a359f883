// The directory (issue 15 users, issue 19 recipients and lists): interfaces, the files source,
// sender ownership, password hashes.
export type { AddressesResult, AuthResult, Directory, DirectoryUser, ListMember, RecipientDirectory, RecipientLookup, SenderDecision, Unavailable, UserDirectory } from './types.js';
export { FilesUserDirectory, filesDirectory, dummyHashFor, type FilesDirectoryOptions } from './files-source.js';
export { localityOf, type Locality, type LocalityOptions } from './locality.js';
export { decideSender, mailboxKey } from './sender-ownership.js';
export { KdfGate, defaultKdfConcurrency } from './kdf-gate.js';
export { hashPassword, verifyPassword, passwordProblem, MAX_PASSWORD_BYTES } from './password-hash.js';
export { parsePasswordHash, formatPasswordHash, DEFAULT_SCRYPT_PARAMS, type ScryptHash, type ScryptParams } from './hash-format.js';
