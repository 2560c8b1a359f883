// The directory: who tsubame's users are, which addresses they may send as, and (issue 19)
// which recipients and lists exist. Every part that needs a user, an address, a domain or a
// list asks through these interfaces; a source implements them: the files of etc/
// (files-source.ts, files-recipients.ts) and LDAP (ldap-source.ts). Plain data in and out; a source that cannot answer says so
// (`unavailable`) and the caller answers 4xx, never 5xx and never "allowed".

/** A user as a successful authentication returns it; the session keeps it (a reload does not change a running session's rights). */
export interface DirectoryUser {
  /** Canonical login name (the files source: lower case); also the local part the user owns at each local domain. */
  name: string;
  /** Addresses the user may send as besides name@each local domain, as the source lists them. */
  addresses: readonly string[];
  /** May send as any address (issue 15, sender ownership). */
  admin: boolean;
}

/** The source could not answer (LDAP down or slow, scrypt out of memory): a temporary failure. */
export interface Unavailable {
  ok: false;
  reason: 'unavailable';
  /** For the log; never shown to a client. */
  why: string;
}

export type AuthResult =
  | { ok: true; user: DirectoryUser }
  /**
   * Unknown user, wrong password, locked user or a login that cannot be a name: one reply for
   * all, after the same work (a password hash of the same cost). `why` is for mail.log only.
   */
  | { ok: false; reason: 'invalid'; why: 'unknown-user' | 'wrong-password' | 'locked' }
  | Unavailable;

export type SenderDecision =
  | { ok: true; why: 'admin' | 'own-local-address' | 'listed-address' | 'null-sender' }
  | { ok: false; reason: 'not-owner' }
  | Unavailable;

export type AddressesResult = { ok: true; addresses: string[] } | { ok: false; reason: 'unknown-user' } | Unavailable;

/** What AUTH and sender ownership need (issue 15). */
export interface UserDirectory {
  /** `files`, `ldap`: for logs. */
  readonly source: string;
  /**
   * Checks a login (the user's name, or name@a local domain) and password (SASL PLAIN/LOGIN);
   * the time does not tell whether the user exists. The user returned has the canonical name.
   */
  authenticate(login: string, password: string): Promise<AuthResult>;
  /** The addresses a user may send as that can be listed: name@each local domain named by a rewrite rule, then the listed ones. */
  addressesOf(login: string): Promise<AddressesResult>;
  /** Whether `user` may use `address` as envelope sender (MAIL FROM, without angle brackets; '' is the null sender). */
  maySendAs(user: DirectoryUser, address: string): Promise<SenderDecision>;
}

// ------------------------------------------------- issue 19: recipients and lists

/**
 * What an address is to the directory: the answer to a RCPT check and the first step of local
 * delivery and list expansion. Asked for addresses the rewrite rules route to the local
 * channel; `none` is "no such user" (550 5.1.1 at RCPT), `unavailable` a temporary failure
 * (451 4.4.3 at RCPT, a deferral in a job), never to be taken as `none`.
 */
export type RecipientLookup = UserRecipient | GroupRecipient | { kind: 'none' } | { kind: 'unavailable'; why: string };

export interface UserRecipient {
  kind: 'user';
  /** Canonical name: files, the mailbox directory's name; LDAP, the uid (LDAP_UID). */
  user: string;
  /** The user's address as the source knows it (LDAP: `mail`; files: the address asked). */
  address: string;
  /** Deliver into mailbox/<mailbox>/ (delivery option `mailbox`); null: no local copy. */
  mailbox: string | null;
  /** Forward to these addresses (delivery option `forward`, mailForwardingAddress), each routed by the rewrite rules. */
  forwarding: readonly string[];
  /** The delivery options as the source holds them (lower case): `mailbox`, `forward`, and others the caller may not act on (`hold`, `autoreply`…). */
  deliveryOptions: readonly string[];
}

export interface GroupRecipient {
  kind: 'group';
  /** What listMembers takes: files, the alias name; LDAP, the entry's DN. */
  id: string;
  /** The group's address as the source knows it. */
  address: string;
  /** Envelope sender of the group's mail and where its errors go (files: owner-NAME when that alias exists; LDAP: mgrpErrorsTo), or null. */
  owner: string | null;
  /** Files: a member naming the alias itself (`root: root, …`) is delivered to this mailbox; null when that is a loop. */
  selfMailbox: string | null;
}

/** One member of a group as the source holds it; directory/expand.ts follows them. */
export type ListMember =
  /** A full address: looked up again when local, else routed by the rewrite rules. */
  | { kind: 'address'; address: string }
  /** A bare local part (files aliases): the same name at the group's domain. */
  | { kind: 'local'; name: string }
  /** A member the source resolved itself (LDAP: a DN member). */
  | { kind: 'resolved'; member: string; lookup: RecipientLookup }
  /** `/dev/null`: the copy is discarded. */
  | { kind: 'discard' }
  /** `:include:/path`: the members listed in that file (one a line or comma-separated, `#` comments). */
  | { kind: 'include'; path: string }
  /** A member that cannot be delivered to (`|pipe`, `/file`, a DN that is gone or has no address…); `why` says so. */
  | { kind: 'invalid'; member: string; why: string }
  /** The source failed part way: the whole expansion must be tried again later. */
  | { kind: 'unavailable'; why: string };

/** The recipient side (issue 19): RCPT checks and expansion from the same sources as the users. */
export interface RecipientDirectory {
  /** `source` as in UserDirectory, for logs. */
  readonly source: string;
  /** `local@domain` (angle brackets and quotes allowed); a `+tag` falls back to the address without it. */
  findRecipient(address: string): Promise<RecipientLookup>;
  /** The members of a group found by findRecipient, streamed: a group may have 100,000 members. */
  listMembers(groupId: string): AsyncIterable<ListMember>;
}

/** The whole directory (issue 19): its users for AUTH and sender ownership, its recipients and lists. */
export type Directory = UserDirectory & RecipientDirectory;
