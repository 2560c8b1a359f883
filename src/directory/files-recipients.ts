// The recipient side of the files source: a user is a directory mailbox/<user>/ (postmaster
// always exists), a group an entry of etc/aliases, as the local channel has always known them
// (directory/local-users.ts, directory/local-aliases.ts). One namespace for every local
// domain: the local part decides, the domain is kept only to address the group's owner and
// its bare members. `user+tag` is the alias `user+tag` when there is one, else `user`'s alias,
// else `user`'s mailbox.
import { instancePaths } from '../common/instance.js';
import type { InstanceConfig } from '../config/types.js';
import { localUserKey, addressParts, joinAddress } from './local-part.js';
import { isSafeUser, localDomainsOf } from './local-aliases.js';
import { LocalUsers } from './local-users.js';
import { aliasMember } from './alias-members.js';
import type { ListMember, RecipientDirectory, RecipientLookup } from './types.js';

export interface MailboxNames {
  /** The mailbox directory a local part is delivered to, or null (LocalUsers.mailboxOf). */
  mailboxOf(localPart: string): Promise<string | null>;
}

export class FilesRecipientDirectory implements RecipientDirectory {
  readonly source = 'files';

  constructor(
    /** etc/aliases: lower-case name → targets. */
    private readonly aliases: ReadonlyMap<string, readonly string[]>,
    private readonly mailboxes: MailboxNames,
  ) {}

  async findRecipient(address: string): Promise<RecipientLookup> {
    const parts = addressParts(address.replace(/^<(.*)>$/, '$1'));
    const key = parts ? localUserKey(parts.local) : null;
    if (!parts || key === null) return { kind: 'none' };
    const whole = parts.local.toLowerCase();
    const alias = this.aliases.has(whole) ? whole : this.aliases.has(key) ? key : null;
    if (alias !== null) {
      const owner = `owner-${alias}`;
      return {
        kind: 'group',
        id: alias,
        address: joinAddress(alias, parts.domain),
        owner: this.aliases.has(owner) ? joinAddress(owner, parts.domain) : null,
        selfMailbox: isSafeUser(alias) ? alias : null,
      };
    }
    const mailbox = key === 'postmaster' ? key : await this.mailboxes.mailboxOf(parts.local);
    if (mailbox === null) return { kind: 'none' };
    return { kind: 'user', user: mailbox, address: joinAddress(parts.local, parts.domain), mailbox, forwarding: [], deliveryOptions: ['mailbox'] };
  }

  async *listMembers(groupId: string): AsyncGenerator<ListMember> {
    const targets = this.aliases.get(groupId);
    if (!targets) {
      yield { kind: 'invalid', member: groupId, why: 'the alias is no longer in etc/aliases' };
      return;
    }
    for (const target of targets) {
      const m = aliasMember(target);
      if (m) yield m;
    }
  }
}

/** The files source's recipients for a loaded configuration (its aliases and mailbox/); pass the process's LocalUsers to share its listing. */
export function filesRecipients(config: InstanceConfig, mailboxes?: MailboxNames): FilesRecipientDirectory {
  const localDomains = localDomainsOf(config.imta.channelByName.get('l'), config.options.localHost);
  return new FilesRecipientDirectory(config.aliases, mailboxes ?? new LocalUsers(instancePaths(config.root).mailbox, config.aliases, localDomains));
}
