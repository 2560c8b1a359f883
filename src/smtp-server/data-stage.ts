// The end of DATA: the accepted recipients become queue files (envelope-plan.ts) behind our
// Received: line and are answered 250 only once on disk. A message no check has to read streams
// straight into the queue (message-receiver.ts); one the session's milters or its verification
// must read is spooled first and written once they are done, with their changes
// (inspected-data.ts). Held messages (an access table's $H, a DMARC or SPF hold, a filter's
// quarantine) are written `.HELD` in their channel queues, to wait for `imsimta qm release`;
// discarded ones are answered 250 and not queued. mail.log gets an E record per queued
// recipient (with the session's TLS, and why it is held), a D record per discarded one, or a J
// record per recipient of a refused message naming the rule that refused it; the job controller
// is told of the new files.
import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import type { MailLogRecord } from '../common/mail-log.js';
import type { EnvelopeDraft } from '../queue/types.js';
import { DATA_CHECKS, type MessageCommand } from './data-checks.js';
import type { EnqueueNotices } from './enqueue-notices.js';
import { mailParamsFrom, planDrafts, senderPerChannel, type AcceptedRecipient, type MessageFacts } from './envelope-plan.js';
import { userOf, type InboundSession } from './inbound-session.js';
import { receiveInspected, type Stored } from './inspected-data.js';
import { receiveMessage, type EnqueueStore } from './message-receiver.js';
import { formatReceived } from './received-header.js';
import { REPLIES, formatReply, type SmtpReply } from './replies.js';
import { pause } from './session-policy.js';
import { refusalStatus, runChecks, type StageServices } from './stages.js';
import { verificationApplies } from './verify-check.js';

export interface DataStageDeps {
  services: StageServices;
  store: EnqueueStore;
  notices: EnqueueNotices;
  /** Writes mail.log records (never throws). */
  logMail(records: MailLogRecord[]): void;
  /** Told each message's enqueue latency in seconds (end of DATA → on disk), for the metrics. */
  enqueueLatency?: { observe(seconds: number): void };
}

type DataAnswer = { ok: true; text: string } | { ok: false; reply: SmtpReply };

export async function receiveData(stream: SMTPServerDataStream, smtp: SMTPServerSession, session: InboundSession, deps: DataStageDeps): Promise<DataAnswer> {
  const { services, store } = deps;
  const { settings, logger } = services;
  const envelope = smtp.envelope;
  const from = envelope.mailFrom ? envelope.mailFrom.address : '';
  const recipients = envelope.rcptTo.map((r) => session.accepted.get(r.address.toLowerCase())).filter((r): r is AcceptedRecipient => r !== undefined);
  const arrival = new Date();
  const facts: MessageFacts = {
    from,
    mailParams: mailParamsFrom(envelope.mailFrom ? envelope.mailFrom.args : false, envelope.dsn, Boolean(envelope.smtpUtf8), services.config.options.verpDelimiters),
    sourceChannel: session.sourceChannel,
    clientAddress: smtp.remoteAddress,
    clientHelo: smtp.hostNameAppearsAs || null,
    arrival,
  };
  // The queue id goes into our Received: line, so a message can be traced from its header to mail.log.
  const messageId = store.newMessageId();
  const received = formatReceived({
    helo: smtp.hostNameAppearsAs || null,
    clientAddress: smtp.remoteAddress,
    byHost: settings.hostName,
    protocol: smtp.transmissionType,
    id: messageId,
    recipient: recipients.length === 1 ? recipients[0]!.original : null,
    tls: smtp.secure && smtp.tlsOptions ? { version: smtp.tlsOptions.version ?? null, cipher: smtp.tlsOptions.name ?? null } : null,
    date: arrival,
  });
  const limits = { maxLineLength: settings.maxLineLength, maxBytes: settings.maxMessageSize, maxReceivedLines: settings.maxReceivedLines };
  const tx = session.policy.tx;
  const kept = recipients.filter((r) => !r.discard);
  const inspect = session.policy.milter !== null || verificationApplies({ smtp, session, services }) || kept.length === 0 || tx.discard !== null;

  let stored: Stored;
  if (inspect) {
    stored = await receiveInspected({ stream, smtp, session, services, store, limits, messageId, received, facts, recipients });
  } else {
    const drafts = planDrafts(facts, kept, services.config.imta.channelByName, senderPerChannel(services.config.imta.channelByName, services.rewriter, services.srs, facts)).map((d) =>
      tx.hold ? { ...d, held: true } : d,
    );
    const outcome = await receiveMessage({
      stream,
      store,
      drafts,
      header: received,
      messageId,
      limits,
      beforeCommit: (size) => endOfDataChecks({ smtp, session, services, from, recipients, messageId, size, received: { name: 'received', raw: received }, content: null, edits: { authResults: null, modifications: [] } }),
    });
    stored = outcome.kind === 'queued' ? { ...outcome, drafts, bytes: outcome.size + Buffer.byteLength(received) } : outcome;
  }

  // A positive $D of the transaction: the answer to DATA waits too.
  await pause(tx.delayMs);
  // mail.log names the authenticated user of the session (never a secret).
  const user = userOf(session);
  const rejected = (status: string, size: number): MailLogRecord[] =>
    recipients.map((r) => ({ event: 'J', id: '', source: session.sourceChannel, destination: r.channel, size, from, recipient: r.address, status, ...user }));
  const discarded = (list: readonly AcceptedRecipient[], size: number, why: (r: AcceptedRecipient) => string): MailLogRecord[] =>
    list.map((r) => ({ event: 'D', id: messageId, source: session.sourceChannel, destination: r.channel, size, from, recipient: r.address, status: `discarded: ${why(r)}`, ...user }));

  switch (stored.kind) {
    case 'queued': {
      // A message that came over TLS: the record ends with ` tls=PROTOCOL/CIPHER`, as outbound deliveries' do.
      const tls = smtp.secure && smtp.tlsOptions ? `${smtp.tlsOptions.version ?? 'TLS'}/${smtp.tlsOptions.name ?? 'unknown'}` : undefined;
      const status = tx.hold ? `queued held (${tx.hold})` : 'queued';
      deps.logMail([
        ...stored.drafts.flatMap((draft: EnvelopeDraft, i) =>
          draft.recipients.map((q): MailLogRecord => ({ event: 'E', id: stored.refs[i]!.id, source: session.sourceChannel, destination: draft.channel, size: stored.bytes, from: draft.from, recipient: q.address, status, ...user, ...(tls ? { tls } : {}) })),
        ),
        ...discarded(
          recipients.filter((r) => r.discard),
          stored.size,
          (r) => r.discard!,
        ),
      ]);
      deps.notices.add(stored.refs);
      deps.enqueueLatency?.observe(stored.storeMs / 1000);
      const list = stored.refs.map((r) => r.id).join(' ');
      if (tx.hold) logger.info({ cid: smtp.id, ids: list, reason: tx.hold }, 'message held');
      logger.debug({ cid: smtp.id, ids: list, size: stored.size, rcpts: recipients.length }, 'message queued');
      return { ok: true, text: `2.0.0 Ok: queued as ${list}` };
    }
    case 'discarded':
      deps.logMail(discarded(recipients, stored.size, (r) => r.discard ?? stored.reason));
      logger.info({ cid: smtp.id, client: smtp.remoteAddress, id: messageId, reason: stored.reason }, 'message discarded');
      return { ok: true, text: `2.0.0 Ok: ${messageId} discarded` };
    case 'refused':
      deps.logMail(rejected(formatReply(stored.reply), stored.size));
      logger.info({ cid: smtp.id, client: smtp.remoteAddress, violation: stored.violation }, 'message refused');
      return { ok: false, reply: stored.reply };
    case 'rejected':
      deps.logMail(rejected(stored.status, stored.size));
      logger.info({ cid: smtp.id, client: smtp.remoteAddress, status: stored.status }, 'message refused by an end-of-DATA check');
      return { ok: false, reply: stored.reply };
    case 'failed':
      deps.logMail(rejected(formatReply(stored.reply), stored.size));
      logger.error({ cid: smtp.id, err: stored.error.message }, 'message not stored');
      return { ok: false, reply: stored.reply };
    case 'aborted':
      logger.info({ cid: smtp.id, client: smtp.remoteAddress, size: stored.size }, 'client left during DATA, nothing queued');
      return { ok: false, reply: REPLIES.connectionLost };
  }
}

/** DATA_CHECKS on a message that went straight into the queue: the refusal (reply and J status), or null when it is taken. */
function endOfDataChecks(message: MessageCommand): Promise<{ reply: SmtpReply; status: string } | null> {
  return new Promise((resolve, reject) =>
    runChecks(
      DATA_CHECKS,
      message,
      (v) => resolve(v.kind === 'refuse' ? { reply: v.reply, status: refusalStatus(v) } : v.kind === 'error' ? { reply: v.reply, status: formatReply(v.reply) } : null),
      reject,
    ),
  );
}
