// The local channel `l`: each recipient's local part (subaddress stripped, etc/aliases followed)
// is delivered into mailbox/<user>/ as a Maildir. Unknown users fail 5.1.1; a mailbox that cannot
// be written defers 4.2.0/4.3.0 (4.2.2 when the disk is full). An alias to a remote address,
// a pipe, a file or :include: is not delivered by this channel: such a recipient is deferred with
// a clear status (a configuration error for the postmaster to fix) before anything is delivered
// for it, so a retry never duplicates.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { ChannelJob, ChannelJobFactory, DeliveryItem, MessageOutcome, RecipientOutcome } from './types.js';
import { instancePaths } from '../common/instance.js';
import { expandLocal, isSafeUser, type LocalTarget } from '../delivery/local-aliases.js';
import { deliverToMaildir, ensureMaildir } from '../delivery/maildir.js';

export const createLocalJob: ChannelJobFactory = async (ctx): Promise<ChannelJob> => {
  const mailboxRoot = instancePaths(ctx.root).mailbox;
  const localHost = ctx.config.options.localHost;
  const localDomains = ['localhost', localHost, ...ctx.channel.hosts, ctx.channel.officialHost].filter(Boolean);
  const mailboxExists = (user: string) => isSafeUser(user) && isDirectory(join(mailboxRoot, user));

  const deliverRecipient = async (item: DeliveryItem, address: string): Promise<RecipientOutcome> => {
    const at = address.lastIndexOf('@');
    const localPart = at > 0 ? address.slice(0, at) : address;
    const { targets, loop } = expandLocal(localPart, { aliases: ctx.config.aliases, mailboxExists, localDomains });
    const outcome = (result: RecipientOutcome['result'], status: string): RecipientOutcome => ({ address, result, status, remoteHost: null });
    if (loop) return outcome('failed', `554 5.4.6 alias loop for ${localPart}`);
    const unsupported = targets.find((t): t is Extract<LocalTarget, { kind: 'unsupported' }> => t.kind === 'unsupported');
    if (unsupported) return outcome('deferred', `451 4.3.5 alias target ${unsupported.target} of ${localPart}: ${unsupported.why}`);
    const mailboxes = [...new Set(targets.flatMap((t) => (t.kind === 'mailbox' && isSafeUser(t.user) ? [t.user] : [])))];
    const unknown = targets.filter((t) => t.kind === 'unknown' || (t.kind === 'mailbox' && !isSafeUser(t.user)));
    const discarded = targets.some((t) => t.kind === 'discard');
    if (mailboxes.length === 0 && !discarded) return outcome('failed', `550 5.1.1 <${address}>: user unknown`);
    const delivered: string[] = [];
    for (const user of mailboxes) {
      const dir = join(mailboxRoot, user);
      try {
        await ensureMaildir(dir);
        const header = `Return-Path: <${item.envelope.from}>\nDelivered-To: ${address}\n`;
        await deliverToMaildir(dir, localHost, header, await ctx.openBody(item.ref.path));
        delivered.push(user);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        ctx.logger.warn({ err, user, id: item.envelope.id }, 'maildir delivery failed');
        // Mailboxes already written for this recipient are not rolled back; see the report (duplicates on retry).
        const code = e.code === 'ENOSPC' || e.code === 'EDQUOT' ? '452 4.2.2 mailbox full' : e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EROFS' || e.code === 'ENOTDIR' || e.code === 'EEXIST' ? '451 4.2.0 mailbox unavailable' : '451 4.3.0 local delivery error';
        return outcome('deferred', `${code}: cannot write mailbox ${user}: ${e.code ?? e.message}`);
      }
    }
    const notes = [delivered.length ? `delivered to ${delivered.join(', ')}` : 'discarded (/dev/null)', unknown.length ? `unknown alias members skipped: ${unknown.map((u) => ('user' in u ? u.user : '')).join(', ')}` : ''].filter(Boolean);
    return outcome('delivered', `250 2.0.0 ${notes.join('; ')}`);
  };

  return {
    async deliver(items: DeliveryItem[]): Promise<MessageOutcome[]> {
      const outcomes: MessageOutcome[] = [];
      for (const item of items) {
        const recipients: RecipientOutcome[] = [];
        for (const r of item.envelope.recipients) {
          if (r.state !== 'pending') continue;
          try {
            recipients.push(await deliverRecipient(item, r.address));
          } catch (err) {
            recipients.push({ address: r.address, result: 'deferred', status: `451 4.3.0 local delivery error: ${(err as Error).message}`, remoteHost: null });
          }
        }
        outcomes.push({ ref: item.ref, recipients });
      }
      return outcomes;
    },
    async close() {},
  };
};

function isDirectory(path: string): boolean {
  try {
    return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
  } catch {
    return false;
  }
}
