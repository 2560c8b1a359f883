// The local channel `l`: each recipient's local part (its canonical reading, subaddress stripped,
// etc/aliases followed: delivery/local-aliases.ts, the same decision the SMTP server's RCPT check
// makes) is delivered into mailbox/<user>/ as a Maildir; the user's directory is found whatever
// its case. Unknown users fail 5.1.1; a mailbox that cannot
// be written defers 4.2.0/4.3.0 (4.2.2 when the disk is full). An alias to a remote address,
// a pipe, a file or :include: is not delivered by this channel: such a recipient is deferred with
// a clear status (a configuration error for the postmaster to fix) before anything is delivered
// for it, so a retry never duplicates.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ChannelJob, ChannelJobFactory, DeliveryItem, MessageOutcome, RecipientOutcome } from './types.js';
import { instancePaths } from '../common/instance.js';
import { expandLocal, localDomainsOf, localVerdict } from '../delivery/local-aliases.js';
import { deliverToMaildir, ensureMaildir } from '../delivery/maildir.js';
import { parseAddress } from '../rewrite/index.js';

export const createLocalJob: ChannelJobFactory = async (ctx): Promise<ChannelJob> => {
  const mailboxRoot = instancePaths(ctx.root).mailbox;
  const localHost = ctx.config.options.localHost;
  const localDomains = localDomainsOf(ctx.channel, localHost);
  const mailboxName = (user: string) => findMailbox(mailboxRoot, user);

  const deliverRecipient = async (item: DeliveryItem, address: string): Promise<RecipientOutcome> => {
    const localPart = localPartOf(address);
    const verdict = localVerdict(expandLocal(localPart, { aliases: ctx.config.aliases, mailboxName, localDomains }));
    const outcome = (result: RecipientOutcome['result'], status: string): RecipientOutcome => ({ address, result, status, remoteHost: null });
    if (verdict.kind === 'loop') return outcome('failed', `554 5.4.6 alias loop for ${localPart}`);
    if (verdict.kind === 'unsupported') return outcome('deferred', `451 4.3.5 alias target ${verdict.target} of ${localPart}: ${verdict.why}`);
    if (verdict.kind === 'unknown') return outcome('failed', `550 5.1.1 <${address}>: user unknown`);
    const { mailboxes, skipped } = verdict;
    const delivered: string[] = [];
    for (const user of mailboxes) {
      const dir = join(mailboxRoot, user);
      try {
        await ensureMaildir(dir);
        const header = `Return-Path: <${item.envelope.from}>\r\nDelivered-To: ${address}\r\n`;
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
    const notes = [delivered.length ? `delivered to ${delivered.join(', ')}` : 'discarded (/dev/null)', skipped.length ? `unknown alias members skipped: ${skipped.join(', ')}` : ''].filter(Boolean);
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

/** The local part of a queued recipient (as written: expandLocal reads it the canonical way). */
function localPartOf(address: string): string {
  const parsed = parseAddress(address);
  if (parsed) return parsed.localPart;
  const at = address.lastIndexOf('@');
  return at > 0 ? address.slice(0, at) : address;
}

/** The directory under `root` of `user` (lower case): its own name first, else one that differs only in case. */
export function findMailbox(root: string, user: string): string | null {
  if (isDirectory(join(root, user))) return user;
  try {
    for (const e of readdirSync(root, { withFileTypes: true })) {
      if (e.name.toLowerCase() === user && isDirectory(join(root, e.name))) return e.name;
    }
  } catch {
    /* no mailbox directory at all */
  }
  return null;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
  } catch {
    return false;
  }
}
