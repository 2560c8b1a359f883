// `imsimta submit [-f sender] [-t] [-i] [rcpt…]`: local submission, as sendmail would take it.
// Reads the message on stdin, completes its header (Date, Message-ID, From when missing; a
// Received: line), routes every recipient through the rewrite rules as channel `l` (a local one
// asked of the directory: files or LDAP, as RCPT does), writes one
// queue file per destination channel and tells the job controller.
// Exit codes: 0 all recipients accepted; 1 some or all refused (one line each on stderr; the
// accepted ones are queued, as sendmail does); 2 bad usage; 75 (EX_TEMPFAIL) the queue could not
// be written (nothing queued); 78 (EX_CONFIG) the configuration cannot be loaded.
import { userInfo } from 'node:os';
import { CommandError, UsageError, firstLine } from '../errors.js';
import { instancePaths, resolveRoot } from '../../common/instance.js';
import { MailLog, type MailLogRecord } from '../../common/mail-log.js';
import { notifyEnqueued } from '../../job-controller/client.js';
import { compileRewriter } from '../../rewrite/index.js';
import { decideRecipient } from '../../smtp-server/recipient-policy.js';
import { checkRecipient } from '../../directory/recipient-check.js';
import { localityOf } from '../../directory/locality.js';
import { openDirectory } from '../../directory/source.js';
import { formatReply, REPLIES } from '../../smtp-server/replies.js';
import { formatRfc5322Date } from '../../common/rfc5322-date.js';
import { loadConfigIfPossible } from '../../queue/load-config.js';
import { composeSubmission, qualify } from '../../queue/local-submission.js';
import { parseSubmitArgs } from '../submit-args.js';
import { createIdGenerator } from '../../queue/message-id.js';
import { becomeQueueOwner } from '../service-user-start.js';
import { queueStoreFor, QueueWriteError, type EnvelopeDraft, type QueuedRecipient, type QueueRef } from '../../queue/index.js';

const EX_TEMPFAIL = 75;
const EX_CONFIG = 78;
/** The channel local submissions come in on. */
const SOURCE_CHANNEL = 'l';

export async function main(argv: string[]): Promise<number> {
  const options = parseSubmitArgs(argv);
  const root = resolveRoot(options.root ?? undefined);
  const paths = instancePaths(root);
  const { config, error } = loadConfigIfPossible(root);
  if (!config) throw new CommandError(`cannot load the configuration: ${firstLine(error ?? 'unknown error')}`, EX_CONFIG);
  const limits = config.options;

  const input = await readStdin(limits.maxMessageSize + 1024 * 1024);
  const now = new Date();
  const submission = composeSubmission({
    message: input,
    options,
    user: invokingUser(),
    uid: process.getuid?.() ?? -1,
    localHost: limits.localHost,
    now,
    uniqueId: createIdGenerator().next(),
    formatDate: (d) => formatRfc5322Date(d),
  });
  if (submission.recipients.length === 0) throw new UsageError('no recipients: name them on the command line, or use -t to take them from To/Cc/Bcc');
  if (submission.message.length > limits.maxMessageSize) {
    throw new CommandError(`message not queued: ${submission.message.length} octets is over the ${limits.maxMessageSize}-octet limit (MAX_MESSAGE_SIZE)`);
  }

  // The sender is known (root's own); the queue files are the service user's to write.
  becomeQueueOwner(paths, config.options);

  // Route every recipient; group the accepted ones by destination channel.
  const directory = openDirectory(config);
  await directory.hostedDomains.ready();
  const rewriter = compileRewriter(config.imta, { hostedDomains: directory.hostedDomains });
  const locality = localityOf(config.imta, { rewriter, localHost: config.options.localHost });
  const byChannel = new Map<string, QueuedRecipient[]>();
  const refused: Array<{ address: string; reason: string }> = [];
  for (const given of submission.recipients) {
    const address = qualify(given, limits.localHost);
    const decision = decideRecipient(given, rewriter.rewrite(address, { sourceChannel: SOURCE_CHANNEL, direction: 'to' }), config.imta.channelByName, true);
    const check = decision.ok && decision.localPart !== null ? await checkRecipient(directory, decision.address, { isLocal: (a) => locality.isLocal(a) }) : null;
    if (!decision.ok) {
      refused.push({ address: given, reason: formatReply(decision.reply) });
    } else if (check?.kind === 'unknown') {
      refused.push({ address: given, reason: formatReply(REPLIES.userUnknown) });
    } else if (check?.kind === 'unavailable') {
      refused.push({ address: given, reason: formatReply(REPLIES.directoryUnavailable) });
    } else {
      const list = byChannel.get(decision.channel) ?? [];
      if (!list.some((r) => r.address.toLowerCase() === decision.address.toLowerCase())) {
        list.push({ address: decision.address, original: given, orcpt: null, notify: null, state: 'pending', status: null });
      }
      byChannel.set(decision.channel, list);
    }
  }
  await directory.close();
  for (const r of refused) process.stderr.write(`imsimta submit: <${r.address}>: ${r.reason}\n`);

  const mailLog = new MailLog(paths.mailLog);
  const logRecords: MailLogRecord[] = refused.map((r) => ({
    event: 'J', id: '', source: SOURCE_CHANNEL, destination: '', size: submission.message.length, from: submission.from, recipient: r.address, status: r.reason,
  }));

  let refs: QueueRef[] = [];
  if (byChannel.size > 0) {
    const eightBit = submission.message.some((b) => b >= 0x80);
    const utf8Addresses = [submission.from, ...[...byChannel.values()].flat().map((r) => r.address)].some((a) => /[^\x00-\x7f]/.test(a));
    const drafts: EnvelopeDraft[] = [...byChannel].map(([channel, recipients]) => ({
      channel,
      from: submission.from,
      mailParams: { size: submission.message.length, ...(eightBit ? { body: '8BITMIME' as const } : {}), ...(utf8Addresses ? { smtputf8: true } : {}) },
      sourceChannel: SOURCE_CHANNEL,
      clientAddress: null,
      clientHelo: null,
      arrival: now,
      recipients,
    }));
    const store = queueStoreFor(paths, config);
    try {
      refs = await store.enqueue(drafts, submission.message);
    } catch (err) {
      if (err instanceof QueueWriteError) throw new CommandError(`message not queued: ${err.message}`, EX_TEMPFAIL);
      throw err;
    } finally {
      await store.close();
    }
    refs.forEach((ref, i) => {
      for (const r of drafts[i]!.recipients) {
        logRecords.push({ event: 'E', id: ref.id, source: SOURCE_CHANNEL, destination: ref.channel, size: submission.message.length, from: submission.from, recipient: r.address, status: 'queued by local submission' });
      }
    });
  }
  try {
    mailLog.write(logRecords);
    mailLog.close();
  } catch (err) {
    process.stderr.write(`imsimta submit: warning: cannot write ${paths.mailLog}: ${firstLine((err as Error).message)}\n`);
  }
  // Best effort: a job controller that is down finds the files at its start-up scan.
  await notifyEnqueued(paths.jobControllerSocket, refs);
  return refused.length > 0 ? 1 : 0;
}

async function readStdin(limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) throw new CommandError(`message not queued: more than ${limit} octets on standard input`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function invokingUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.LOGNAME ?? process.env.USER ?? `uid${process.getuid?.() ?? ''}`;
  }
}

