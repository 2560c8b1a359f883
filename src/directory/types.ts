// The directory: who tsubame's users are, which addresses they may send as, and (issue 19)
// which recipients and lists exist. Every part that needs a user, an address, a domain or a
// list asks through these interfaces; a source implements them: the files of etc/ now
// (files-source.ts), LDAP next. Plain data in and out; a source that cannot answer says so
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

// ------------------------------------------------- issue 19 (shape only; no source implements it yet)

/** What an address is to the directory (RCPT checks, local delivery, list expansion). */
export type RecipientLookup =
  | {
      kind: 'user';
      user: string;
      /** Deliver into mailbox/<mailbox>/ (Messaging Server's mailDeliveryOption `mailbox`). */
      mailbox: string | null;
      /** mailForwardingAddress: routed through the rewrite rules like any recipient. */
      forwardTo: readonly string[];
    }
  | {
      kind: 'list';
      name: string;
      /** Envelope sender of the list's mail (owner-LIST), null when the list has none. */
      owner: string | null;
    }
  | { kind: 'unknown' }
  | { kind: 'unavailable'; why: string };

/** One member of a list as the source holds it (expanded further by the caller: lists in lists, loops, :include:). */
export type ListMember = { kind: 'address'; address: string } | { kind: 'include'; path: string };

/** The recipient side (issue 19): RCPT checks and expansion from the same sources as the users. */
export interface RecipientDirectory {
  findRecipient(address: string): Promise<RecipientLookup>;
  /** Streamed: a list may have 100,000 members, and expansion writes them to queue entries as they come. */
  listMembers(list: string): AsyncIterable<ListMember>;
}

/** The whole directory once issue 19 is done. */
export type Directory = UserDirectory & RecipientDirectory;
