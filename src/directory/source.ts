// The one place that chooses the directory source for a configuration: LDAP when option.dat sets
// LDAP_HOST (Messaging Server's direct LDAP), else the files of etc/ (etc/users for AUTH and
// sender ownership, etc/aliases and mailbox/ for recipients). With LDAP, etc/aliases is still
// asked first, as Messaging Server reads its alias file before the directory: the postmaster and
// the system aliases (root, abuse…) work whatever the directory holds, and their members are
// looked up in LDAP; a directory under mailbox/ is no user by itself then. Every part that needs a user, an
// address or a list (the SMTP server's RCPT and AUTH, the local channel, imsimta submit and
// test -alias) opens its directory here, so that they all ask the same source; the directory
// also keeps the hosted domains the rewrite rules' $V/$Z ask (hosted-domains.ts). The caller
// closes it (LDAP holds a pool of connections).
import type { InstanceConfig } from '../config/types.js';
import { filesRecipients, type FilesRecipientDirectory, type MailboxNames } from './files-recipients.js';
import { filesDirectory, type FilesUserDirectory } from './files-source.js';
import type { KdfGate } from './kdf-gate.js';
import { openHostedDomains, type HostedDomainOptions, type HostedDomainSet } from './hosted-domains.js';
import { LdapDirectory, type LdapDirectoryOptions } from './ldap-source.js';
import type { AddressesResult, AuthResult, Directory, DirectoryUser, ListMember, RecipientLookup, SenderDecision } from './types.js';

export type DirectorySource = 'files' | 'ldap';

/** A directory for one process (or one job), to be closed when done. */
export interface OpenDirectory extends Directory {
  /** Its hosted domains, for the rewrite rules' `$V` and `$Z` (closed with the directory). */
  readonly hostedDomains: HostedDomainSet;
  close(): Promise<void>;
}

export interface OpenDirectoryOptions {
  /** Files source: the process's mailbox listing, to share it (default: one of its own). */
  mailboxes?: MailboxNames;
  /** Files source: the process's gate on concurrent password hashes. */
  gate?: KdfGate;
  /** LDAP: connections made, lost and refused, for the log. */
  onEvent?: LdapDirectoryOptions['onEvent'];
  /** Readings of the hosted domains, for the log. */
  onDomainsEvent?: HostedDomainOptions['onEvent'];
}

export function directorySourceOf(config: Pick<InstanceConfig, 'options'>): DirectorySource {
  return config.options.ldap ? 'ldap' : 'files';
}

export function openDirectory(config: InstanceConfig, opts: OpenDirectoryOptions = {}): OpenDirectory {
  const hostedDomains = openHostedDomains(config, { onEvent: opts.onDomainsEvent, onLdapEvent: (e) => opts.onEvent?.({ ...e, pool: 'domains' }) });
  if (config.options.ldap) {
    const ldap = new LdapDirectory(config.options.ldap, { onEvent: opts.onEvent });
    return new AliasesThenLdap(filesRecipients(config, NO_MAILBOXES), ldap, hostedDomains);
  }
  return new FilesDirectory(filesDirectory(config, { gate: opts.gate }), filesRecipients(config, opts.mailboxes), hostedDomains);
}

/** With LDAP, only the postmaster is a user of the files (FilesRecipientDirectory knows it by itself). */
const NO_MAILBOXES: MailboxNames = { mailboxOf: async () => null };
/** Group ids of etc/aliases in the chained directory; an LDAP DN never starts with it. */
const ALIAS_ID = 'etc/aliases:';

/** etc/aliases (and the postmaster) first, then LDAP; users (AUTH, sender ownership): LDAP only. */
class AliasesThenLdap implements OpenDirectory {
  readonly source = 'ldap';

  constructor(
    private readonly aliases: FilesRecipientDirectory,
    private readonly ldap: LdapDirectory,
    readonly hostedDomains: HostedDomainSet,
  ) {}

  authenticate(login: string, password: string): Promise<AuthResult> {
    return this.ldap.authenticate(login, password);
  }

  addressesOf(login: string): Promise<AddressesResult> {
    return this.ldap.addressesOf(login);
  }

  maySendAs(user: DirectoryUser, address: string): Promise<SenderDecision> {
    return this.ldap.maySendAs(user, address);
  }

  async findRecipient(address: string): Promise<RecipientLookup> {
    const alias = await this.aliases.findRecipient(address);
    if (alias.kind === 'group') return { ...alias, id: ALIAS_ID + alias.id };
    if (alias.kind === 'user') return alias;
    return this.ldap.findRecipient(address);
  }

  listMembers(groupId: string): AsyncIterable<ListMember> {
    return groupId.startsWith(ALIAS_ID) ? this.aliases.listMembers(groupId.slice(ALIAS_ID.length)) : this.ldap.listMembers(groupId);
  }

  async close(): Promise<void> {
    await Promise.all([this.ldap.close(), this.hostedDomains.close()]);
  }
}

/** The files source's two halves as one directory. */
class FilesDirectory implements OpenDirectory {
  readonly source = 'files';

  constructor(
    private readonly users: FilesUserDirectory,
    private readonly recipients: FilesRecipientDirectory,
    readonly hostedDomains: HostedDomainSet,
  ) {}

  authenticate(login: string, password: string): Promise<AuthResult> {
    return this.users.authenticate(login, password);
  }

  addressesOf(login: string): Promise<AddressesResult> {
    return this.users.addressesOf(login);
  }

  maySendAs(user: DirectoryUser, address: string): Promise<SenderDecision> {
    return this.users.maySendAs(user, address);
  }

  findRecipient(address: string): Promise<RecipientLookup> {
    return this.recipients.findRecipient(address);
  }

  listMembers(groupId: string): AsyncIterable<ListMember> {
    return this.recipients.listMembers(groupId);
  }

  async close(): Promise<void> {}
}
