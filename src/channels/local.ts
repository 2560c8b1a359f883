// The local channel `l`: each recipient's local part (its canonical reading, subaddress stripped,
// etc/aliases followed: delivery/local-aliases.ts, the same decision the SMTP server's RCPT check
// makes) is delivered into mailbox/<user>/ as a Maildir; the user's directory is found whatever
// its case. Unknown users fail 5.1.1; a mailbox that cannot
// be written defers 4.2.0/4.3.0 (4.2.2 when the disk is full). An alias to a remote address,
// a pipe, a file or :include: is not delivered by this channel: such a recipient is deferred with
// a clear status (a configuration error for the postmaster to fix) before anything is delivered
// for it, so a retry never duplicates. Loops are returned with 5.4.6, as Postfix's local does:
// a message with more Received: lines than MAX_RECEIVED_LINES, and a message whose Delivered-To:
// lines (added here at each delivery) already name the recipient, or the local user an alias
// leads to.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ChannelJob, ChannelJobFactory, DeliveryItem, MessageOutcome, RecipientOutcome } from './types.js';
import { instancePaths } from '../common/instance.js';
import { expandLocal, localDomainsOf, localVerdict } from '../directory/local-aliases.js';
import { deliverToMaildir, ensureMaildir } from '../delivery/maildir.js';
import { deliveredBefore, forwardingLoop, headerFacts, headerSectionOf, peekHeader, tooManyHops, type HeaderFacts } from '../delivery/loop-check.js';
import { parseAddress } from '../rewrite/index.js';

/** A queued message as the channel uses it: what its header says, and its bytes for each mailbox. */
interface LoadedMessage {
  facts: HeaderFacts;
  body(): Promise<Buffer | NodeJS.ReadableStream>;
}

export const createLocalJob: ChannelJobFactory = async (ctx): Promise<ChannelJob> => {
  const mailboxRoot = instancePaths(ctx.root).mailbox;
  const localHost = ctx.config.options.localHost;
  const localDomains = localDomainsOf(ctx.channel, localHost);
  const mailboxName = (user: string) => findMailbox(mailboxRoot, user);

  /** The message read once per item: whole when small, else its header now and a new stream per mailbox. */
  const load = async (item: DeliveryItem): Promise<LoadedMessage> => {
    const path = item.ref.path;
    const first = ctx.readMessage ? await ctx.readMessage(path) : await ctx.openBody(path);
    if (Buffer.isBuffer(first)) return { facts: headerFacts(headerSectionOf(first)), body: async () => first };
    const peeked = await peekHeader(first);
    peeked.stream.destroy();
    return { facts: headerFacts(peeked.header), body: () => ctx.openBody(path) };
  };

  const deliverRecipient = async (item: DeliveryItem, address: string, message: LoadedMessage): Promise<RecipientOutcome> => {
    const localPart = localPartOf(address);
    const outcome = (result: RecipientOutcome['result'], status: string): RecipientOutcome => ({ address, result, status, remoteHost: null });
    const looped = forwardingLoop(message.facts, address);
    if (looped) return outcome('failed', looped);
    const verdict = localVerdict(expandLocal(localPart, { aliases: ctx.config.aliases, mailboxName, localDomains }));
    if (verdict.kind === 'loop') return outcome('failed', `554 5.4.6 alias loop for ${localPart}`);
    if (verdict.kind === 'unsupported') return outcome('deferred', `451 4.3.5 alias target ${verdict.target} of ${localPart}: ${verdict.why}`);
    if (verdict.kind === 'unknown') return outcome('failed', `550 5.1.1 <${address}>: user unknown`);
    const { skipped } = verdict;
    // A user the message was delivered to before (under any of this host's names) does not get it again.
    const at = address.lastIndexOf('@');
    const domain = at > 0 ? address.slice(at + 1).toLowerCase() : '';
    const looping = deliveredBefore(message.facts, verdict.mailboxes.map((u) => u.toLowerCase()), [domain, ...localDomains]);
    const mailboxes = verdict.mailboxes.filter((u) => !looping.includes(u.toLowerCase()));
    if (mailboxes.length === 0 && looping.length > 0 && !verdict.discarded) return outcome('failed', `554 5.4.6 mail forwarding loop for <${looping[0]}@${domain || localHost}> (via <${address}>)`);
    const delivered: string[] = [];
    for (const user of mailboxes) {
      const dir = join(mailboxRoot, user);
      try {
        await ensureMaildir(dir);
        const header = `Return-Path: <${item.envelope.from}>\nDelivered-To: ${address}\n`;
        await deliverToMaildir(dir, localHost, header, await message.body());
        delivered.push(user);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        ctx.logger.warn({ err, user, id: item.envelope.id }, 'maildir delivery failed');
        // Mailboxes already written for this recipient are not rolled back; see the report (duplicates on retry).
        const code = e.code === 'ENOSPC' || e.code === 'EDQUOT' ? '452 4.2.2 mailbox full' : e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EROFS' || e.code === 'ENOTDIR' || e.code === 'EEXIST' ? '451 4.2.0 mailbox unavailable' : '451 4.3.0 local delivery error';
        return outcome('deferred', `${code}: cannot write mailbox ${user}: ${e.code ?? e.message}`);
      }
    }
    const notes = [
      delivered.length ? `delivered to ${delivered.join(', ')}` : 'discarded (/dev/null)',
      skipped.length ? `unknown alias members skipped: ${skipped.join(', ')}` : '',
      looping.length ? `already delivered to ${looping.join(', ')} (mail forwarding loop), not again` : '',
    ].filter(Boolean);
    return outcome('delivered', `250 2.0.0 ${notes.join('; ')}`);
  };

  return {
    async deliver(items: DeliveryItem[]): Promise<MessageOutcome[]> {
      const outcomes: MessageOutcome[] = [];
      for (const item of items) {
        const recipients: RecipientOutcome[] = [];
        const pending = item.envelope.recipients.filter((r) => r.state === 'pending');
        const each = (status: string, result: RecipientOutcome['result']) => pending.map((r): RecipientOutcome => ({ address: r.address, result, status, remoteHost: null }));
        let message: LoadedMessage;
        try {
          message = await load(item);
        } catch (err) {
          outcomes.push({ ref: item.ref, recipients: each(`451 4.3.0 could not read the queued message: ${(err as Error).message}`, 'deferred') });
          continue;
        }
        const hops = tooManyHops(message.facts, ctx.config.options.maxReceivedLines);
        if (hops) {
          outcomes.push({ ref: item.ref, recipients: each(hops, 'failed') });
          continue;
        }
        for (const r of pending) {
          try {
            recipients.push(await deliverRecipient(item, r.address, message));
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
function findMailbox(root: string, user: string): string | null {
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
