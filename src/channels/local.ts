// The local channel `l`: each recipient is asked of the directory (directory/source.ts: the files
// of etc/ and mailbox/, or LDAP), the same answer the SMTP server's RCPT check had, and:
//   - a user with a mailbox and nothing else is delivered into mailbox/<user>/ as a Maildir (the
//     directory found whatever its case);
//   - a list, an alias, or a user with forwarding addresses (mailDeliveryOption forward) is
//     expanded (local-expansion.ts): local mailboxes delivered here, other members queued to the
//     channels the rewrite rules route them to with the list's envelope sender (and SRS), failed
//     members told to the list's owner;
//   - a recipient a list expansion queued back here marked with its mailbox (`mailbox=` in the
//     queue file) is delivered there without a lookup.
// Unknown users fail 5.1.1; a directory that cannot answer defers 4.4.3 (never a failure); a
// mailbox that cannot be written defers 4.2.0/4.3.0 (4.2.2 when the disk is full). Loops are
// returned with 5.4.6, as Postfix's local does: a message with more Received: lines than
// MAX_RECEIVED_LINES, and a message whose Delivered-To: lines (added here at each delivery and
// to each copy an expansion makes) already name the recipient, or the local user it leads to.
import { join } from 'node:path';
import type { ChannelJob, ChannelJobFactory, DeliveryItem, MessageOutcome, RecipientOutcome } from './types.js';
import { instancePaths } from '../common/instance.js';
import { MailLog } from '../common/mail-log.js';
import { isSafeUser, localDomainsOf } from '../directory/local-aliases.js';
import { localityOf } from '../directory/locality.js';
import { openDirectory } from '../directory/source.js';
import type { RecipientLookup } from '../directory/types.js';
import { deliverToMaildir, ensureMaildir } from '../delivery/maildir.js';
import { deliveredBefore, forwardingLoop, headerFacts, headerSectionOf, peekHeader, tooManyHops, type HeaderFacts } from '../delivery/loop-check.js';
import { DEFAULT_RETURN_LIMIT_OCTETS, NoticeSender, returnLimitOctets } from '../notices/send.js';
import { queueStoreFor, type QueuedRecipient, type QueueRef } from '../queue/index.js';
import { recipientsPerFile } from '../queue/recipients-per-file.js';
import { LOCAL_CHANNEL, compileRewriter, routeRecipient } from '../rewrite/index.js';
import { copySenders, srsSettingsOf } from '../srs/index.js';
import { expandForDelivery, type DirectMailbox, type ExpansionDeps, type ExpansionSummary } from './local-expansion.js';

/** A queued message as the channel uses it: what its header says, and its bytes for each mailbox. */
interface LoadedMessage {
  facts: HeaderFacts;
  body: () => Promise<Buffer | NodeJS.ReadableStream>;
}

/** What delivering one recipient gave: its outcome, and the queue files written for it. */
interface Delivered {
  outcome: RecipientOutcome;
  enqueued: QueueRef[];
}

/** Status text when the directory cannot answer (the reason goes to the log, not to a notice). */
const DIRECTORY_DEFERRAL = '451 4.4.3 directory server failure, will try again';

export const createLocalJob: ChannelJobFactory = async (ctx): Promise<ChannelJob> => {
  const { config, logger } = ctx;
  const paths = instancePaths(ctx.root);
  const mailboxRoot = paths.mailbox;
  const localHost = config.options.localHost;
  const localDomains = localDomainsOf(ctx.channel, localHost);
  const directory = openDirectory(config, {
    onEvent: (e) => (e.type === 'connected' ? logger.debug(e, 'LDAP connection') : logger.warn(e, 'LDAP connection')),
    onDomainsEvent: (e) => (e.type === 'refreshed' ? logger.debug(e, 'hosted domains read') : logger.warn(e, 'hosted domains not read')),
  });
  await directory.hostedDomains.ready();
  const rewriter = compileRewriter(config.imta, { hostedDomains: directory.hostedDomains });
  const locality = localityOf(config.imta, { rewriter, localHost });
  const store = queueStoreFor(paths, config, logger);
  const mailLog = new MailLog(paths.mailLog);
  const srs = srsSettingsOf(config);
  const notices = new NoticeSender({ store, rewriter, mailLog, logger, localHost, returnLimitOctets: returnLimitOctets(config, DEFAULT_RETURN_LIMIT_OCTETS), srs });
  const channels = config.imta.channelByName;
  // The SRS decisions of the copies of one (source channel, sender): a list's copies share them.
  const senders = new Map<string, ReturnType<typeof copySenders>>();
  const sendersOf = (sourceChannel: string, from: string) => {
    const key = `${sourceChannel}\0${from}`;
    let decide = senders.get(key);
    if (!decide) {
      if (senders.size >= 64) senders.clear();
      decide = copySenders({ channels, rewriter, settings: srs, sourceChannel, from, now: Date.now() });
      senders.set(key, decide);
    }
    return decide;
  };
  const expansion: ExpansionDeps = {
    directory,
    isLocal: (address) => locality.isLocal(address),
    route: (address) => {
      const route = routeRecipient(rewriter.rewrite(address, { sourceChannel: LOCAL_CHANNEL, direction: 'to' }), channels);
      return route.ok ? { ok: true, channel: route.channel.name, address: route.address } : { ok: false, error: route.error ?? 'no rewrite rule routes it', temporary: route.temporary === true };
    },
    senderFor: (sourceChannel, from, channel) => sendersOf(sourceChannel, from)(channel).from,
    filesize: (channel) => recipientsPerFile(channels.get(channel.toLowerCase())),
    localChannel: ctx.channel.name,
    store,
    notices,
    mailLog,
    logger,
    now: Date.now,
  };

  /** The message read once per item: whole when small, else its header now and a new stream per mailbox. */
  const load = async (item: DeliveryItem): Promise<LoadedMessage> => {
    const path = item.ref.path;
    const first = ctx.readMessage ? await ctx.readMessage(path) : await ctx.openBody(path);
    if (Buffer.isBuffer(first)) return { facts: headerFacts(headerSectionOf(first)), body: async () => first };
    const peeked = await peekHeader(first);
    peeked.stream.destroy();
    return { facts: headerFacts(peeked.header), body: () => ctx.openBody(path) };
  };

  /** Writes the message into each mailbox; the outcome of the recipient (`notes` added when delivered). */
  const deliverMailboxes = async (item: DeliveryItem, address: string, targets: readonly DirectMailbox[], message: LoadedMessage, notes: string[], discarded: boolean): Promise<RecipientOutcome> => {
    const outcome = (result: RecipientOutcome['result'], status: string): RecipientOutcome => ({ address, result, status, remoteHost: null });
    // A user the message was delivered to before (under any of this host's names) does not get it again.
    const at = address.lastIndexOf('@');
    const domain = at > 0 ? address.slice(at + 1).toLowerCase() : '';
    const looping = deliveredBefore(message.facts, targets.map((t) => t.mailbox.toLowerCase()), [domain, ...localDomains]);
    const wanted = targets.filter((t) => !looping.includes(t.mailbox.toLowerCase()));
    if (wanted.length === 0 && looping.length > 0 && !discarded && notes.length === 0) return outcome('failed', `554 5.4.6 mail forwarding loop for <${looping[0]}@${domain || localHost}> (via <${address}>)`);
    const delivered: string[] = [];
    for (const target of wanted) {
      const dir = join(mailboxRoot, target.mailbox);
      try {
        await ensureMaildir(dir);
        const header = `Return-Path: <${target.from}>\nDelivered-To: ${address}\n`;
        await deliverToMaildir(dir, localHost, header, await message.body());
        delivered.push(target.mailbox);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        ctx.logger.warn({ err, user: target.mailbox, id: item.envelope.id }, 'maildir delivery failed');
        // Mailboxes already written for this recipient are not rolled back; see the report (duplicates on retry).
        const code = e.code === 'ENOSPC' || e.code === 'EDQUOT' ? '452 4.2.2 mailbox full' : e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EROFS' || e.code === 'ENOTDIR' || e.code === 'EEXIST' ? '451 4.2.0 mailbox unavailable' : '451 4.3.0 local delivery error';
        return outcome('deferred', `${code}: cannot write mailbox ${target.mailbox}: ${e.code ?? e.message}`);
      }
    }
    const text = [
      delivered.length ? `delivered to ${delivered.join(', ')}` : discarded ? 'discarded (/dev/null)' : '',
      ...notes,
      looping.length ? `already delivered to ${looping.join(', ')} (mail forwarding loop), not again` : '',
    ].filter(Boolean);
    return outcome('delivered', `250 2.0.0 ${text.join('; ')}`);
  };

  const lookup = async (address: string): Promise<RecipientLookup> => {
    try {
      return await directory.findRecipient(address);
    } catch (err) {
      return { kind: 'unavailable', why: (err as Error).message };
    }
  };

  const deliverRecipient = async (item: DeliveryItem, r: QueuedRecipient, message: LoadedMessage): Promise<Delivered> => {
    const { address } = r;
    const done = (result: RecipientOutcome['result'], status: string): Delivered => ({ outcome: { address, result, status, remoteHost: null }, enqueued: [] });
    const looped = forwardingLoop(message.facts, address);
    if (looped) return done('failed', looped);
    if (r.mailbox !== undefined) {
      // Queued back by a list expansion: its mailbox is known.
      if (!isSafeUser(r.mailbox)) return done('failed', `550 5.1.1 <${address}>: bad mailbox name in the queue file`);
      return { outcome: await deliverMailboxes(item, address, [{ mailbox: r.mailbox, address, from: item.envelope.from }], message, [], false), enqueued: [] };
    }
    const found = await lookup(address);
    if (found.kind === 'unavailable') {
      ctx.logger.warn({ id: item.envelope.id, rcpt: address, source: directory.source, why: found.why }, 'directory unavailable; recipient deferred');
      return done('deferred', DIRECTORY_DEFERRAL);
    }
    if (found.kind === 'none') return done('failed', `550 5.1.1 <${address}>: user unknown`);
    if (found.kind === 'user' && found.mailbox !== null && found.forwarding.length === 0) {
      return { outcome: await deliverMailboxes(item, address, [{ mailbox: found.mailbox, address, from: item.envelope.from }], message, [], false), enqueued: [] };
    }
    const expanded = await expandForDelivery(expansion, { item, recipient: r, body: message.body });
    if (expanded.kind === 'unavailable') {
      ctx.logger.warn({ id: item.envelope.id, rcpt: address, source: directory.source, why: expanded.why }, 'directory unavailable during an expansion; nothing kept, recipient deferred');
      return done('deferred', DIRECTORY_DEFERRAL);
    }
    if (expanded.kind === 'nothing') return done('failed', expanded.status);
    const outcome = await deliverMailboxes(item, address, expanded.direct, message, expansionNotes(expanded.summary), expanded.summary.discarded);
    if (outcome.result !== 'delivered') {
      await expanded.copies.abort();
      return { outcome, enqueued: [] };
    }
    return { outcome, enqueued: await expanded.copies.commit() };
  };

  return {
    async deliver(items: DeliveryItem[]): Promise<MessageOutcome[]> {
      const outcomes: MessageOutcome[] = [];
      for (const item of items) {
        const recipients: RecipientOutcome[] = [];
        const enqueued: QueueRef[] = [];
        const pending = item.envelope.recipients.filter((r) => r.state === 'pending');
        const each = (status: string, result: RecipientOutcome['result']) => pending.map((r): RecipientOutcome => ({ address: r.address, result, status, remoteHost: null }));
        let message: LoadedMessage;
        try {
          message = await load(item);
        } catch (err) {
          outcomes.push({ ref: item.ref, recipients: each(`451 4.3.0 could not read the queued message: ${(err as Error).message}`, 'deferred') });
          continue;
        }
        const hops = tooManyHops(message.facts, config.options.maxReceivedLines);
        if (hops) {
          outcomes.push({ ref: item.ref, recipients: each(hops, 'failed') });
          continue;
        }
        for (const r of pending) {
          try {
            const d = await deliverRecipient(item, r, message);
            recipients.push(d.outcome);
            enqueued.push(...d.enqueued);
          } catch (err) {
            ctx.logger.error({ err, id: item.envelope.id, rcpt: r.address }, 'local delivery error');
            recipients.push({ address: r.address, result: 'deferred', status: `451 4.3.0 local delivery error: ${(err as Error).message}`, remoteHost: null });
          }
        }
        outcomes.push({ ref: item.ref, recipients, ...(enqueued.length ? { enqueued } : {}) });
      }
      return outcomes;
    },
    async close() {
      await directory.close().catch(() => {});
      await store.close().catch(() => {});
      mailLog.close();
    },
  };
};

/** What an expansion did besides the mailboxes, for the recipient's status. */
function expansionNotes(s: ExpansionSummary): string[] {
  const notes: string[] = [];
  if (s.queued > 0) notes.push(`${s.queued} ${s.queued === 1 ? 'copy' : 'copies'} queued for other addresses`);
  if (s.failed > 0) {
    const more = s.failed > s.failedMembers.length ? ` and ${s.failed - s.failedMembers.length} more` : '';
    const told = s.reportedTo.length ? ` (reported to ${s.reportedTo.map((a) => `<${a}>`).join(', ')})` : '';
    notes.push(`${s.failed} ${s.failed === 1 ? 'member' : 'members'} failed${told}: ${s.failedMembers.join(', ')}${more}`);
  }
  return notes;
}
