// The local channel `l`: each recipient's local part (subaddress stripped, etc/aliases followed)
// is delivered into mailbox/<user>/ as a Maildir. Unknown users fail 5.1.1; a mailbox that cannot
// be written defers 4.2.0/4.3.0 (4.2.2 when the disk is full). An alias to a remote address,
// a pipe, a file or :include: is not delivered by this channel: such a recipient is deferred with
// a clear status (a configuration error for the postmaster to fix) before anything is delivered
// for it, so a retry never duplicates. Loops are returned with 5.4.6, as Postfix's local does:
// a message with more Received: lines than MAX_HOPS, and a message whose Delivered-To: lines
// (added here at each delivery) already name the recipient, or the local user an alias leads to.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { ChannelJob, ChannelJobFactory, DeliveryItem, MessageOutcome, RecipientOutcome } from './types.js';
import { instancePaths } from '../common/instance.js';
import { expandLocal, isSafeUser, type LocalTarget } from '../delivery/local-aliases.js';
import { deliverToMaildir, ensureMaildir } from '../delivery/maildir.js';
import { deliveredBefore, forwardingLoop, headerFacts, headerSectionOf, peekHeader, tooManyHops, type HeaderFacts } from '../delivery/loop-check.js';

/** A queued message as the channel uses it: what its header says, and its bytes for each mailbox. */
interface LoadedMessage {
  facts: HeaderFacts;
  body(): Promise<Buffer | NodeJS.ReadableStream>;
}

export const createLocalJob: ChannelJobFactory = async (ctx): Promise<ChannelJob> => {
  const mailboxRoot = instancePaths(ctx.root).mailbox;
  const localHost = ctx.config.options.localHost;
  const localDomains = ['localhost', localHost, ...ctx.channel.hosts, ctx.channel.officialHost].filter(Boolean);
  const mailboxExists = (user: string) => isSafeUser(user) && isDirectory(join(mailboxRoot, user));

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
    const at = address.lastIndexOf('@');
    const localPart = at > 0 ? address.slice(0, at) : address;
    const outcome = (result: RecipientOutcome['result'], status: string): RecipientOutcome => ({ address, result, status, remoteHost: null });
    const looped = forwardingLoop(message.facts, address);
    if (looped) return outcome('failed', looped);
    const { targets, loop } = expandLocal(localPart, { aliases: ctx.config.aliases, mailboxExists, localDomains });
    if (loop) return outcome('failed', `554 5.4.6 alias loop for ${localPart}`);
    const unsupported = targets.find((t): t is Extract<LocalTarget, { kind: 'unsupported' }> => t.kind === 'unsupported');
    if (unsupported) return outcome('deferred', `451 4.3.5 alias target ${unsupported.target} of ${localPart}: ${unsupported.why}`);
    const reached = [...new Set(targets.flatMap((t) => (t.kind === 'mailbox' && isSafeUser(t.user) ? [t.user] : [])))];
    const unknown = targets.filter((t) => t.kind === 'unknown' || (t.kind === 'mailbox' && !isSafeUser(t.user)));
    const discarded = targets.some((t) => t.kind === 'discard');
    if (reached.length === 0 && !discarded) return outcome('failed', `550 5.1.1 <${address}>: user unknown`);
    // A user the message was delivered to before (under any of this host's names) does not get it again.
    const domain = at > 0 ? address.slice(at + 1).toLowerCase() : '';
    const looping = deliveredBefore(message.facts, reached, [domain, ...localDomains]);
    const mailboxes = reached.filter((u) => !looping.includes(u));
    if (mailboxes.length === 0 && looping.length > 0 && !discarded) return outcome('failed', `554 5.4.6 mail forwarding loop for <${looping[0]}@${domain || localHost}> (via <${address}>)`);
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
      unknown.length ? `unknown alias members skipped: ${unknown.map((u) => ('user' in u ? u.user : '')).join(', ')}` : '',
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
        const hops = tooManyHops(message.facts, ctx.config.options.hopLimit);
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

function isDirectory(path: string): boolean {
  try {
    return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
  } catch {
    return false;
  }
}
