// The end of DATA: the accepted recipients become queue files (envelope-plan.ts) behind our
// Received: line, the message is received into the queue (message-receiver.ts), asked of the
// end-of-DATA checks before the commit (data-checks.ts), and answered 250 only once it is on
// disk. mail.log gets an E record per queued recipient (with the session's TLS) or a J record per
// recipient of a refused message; the job controller is told of the new files.
import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import type { MailLogRecord } from '../common/mail-log.js';
import { DATA_CHECKS, type MessageCommand } from './data-checks.js';
import type { EnqueueNotices } from './enqueue-notices.js';
import { mailParamsFrom, planDrafts, type AcceptedRecipient } from './envelope-plan.js';
import { userOf, type InboundSession } from './inbound-session.js';
import { receiveMessage, type EnqueueStore } from './message-receiver.js';
import { formatReceived } from './received-header.js';
import { REPLIES, formatReply, type SmtpReply } from './replies.js';
import { runChecks, type StageServices } from './stages.js';

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
  const { settings, config, logger } = services;
  const envelope = smtp.envelope;
  const from = envelope.mailFrom ? envelope.mailFrom.address : '';
  const recipients = envelope.rcptTo.map((r) => session.accepted.get(r.address.toLowerCase())).filter((r): r is AcceptedRecipient => r !== undefined);
  const arrival = new Date();
  const drafts = planDrafts(
    {
      from,
      mailParams: mailParamsFrom(envelope.mailFrom ? envelope.mailFrom.args : false, envelope.dsn, Boolean(envelope.smtpUtf8)),
      sourceChannel: session.sourceChannel,
      clientAddress: smtp.remoteAddress,
      clientHelo: smtp.hostNameAppearsAs || null,
      arrival,
    },
    recipients,
    config.imta.channelByName,
  );
  // The queue id goes into our Received: line, so a message can be traced from its header to mail.log.
  const messageId = store.newMessageId();
  const header = formatReceived({
    helo: smtp.hostNameAppearsAs || null,
    clientAddress: smtp.remoteAddress,
    byHost: settings.hostName,
    protocol: smtp.transmissionType,
    id: messageId,
    recipient: recipients.length === 1 ? recipients[0]!.original : null,
    tls: smtp.secure && smtp.tlsOptions ? { version: smtp.tlsOptions.version ?? null, cipher: smtp.tlsOptions.name ?? null } : null,
    date: arrival,
  });
  const outcome = await receiveMessage({
    stream,
    store,
    drafts,
    header,
    messageId,
    limits: { maxLineLength: settings.maxLineLength, maxBytes: settings.maxMessageSize, maxReceivedLines: settings.maxReceivedLines },
    beforeCommit: (size) => endOfDataChecks({ smtp, session, services, from, recipients, messageId, size }),
  });
  // mail.log names the authenticated user of the session (never a secret).
  const user = userOf(session);
  const rejected = (status: string): MailLogRecord[] =>
    recipients.map((r) => ({ event: 'J', id: '', source: session.sourceChannel, destination: r.channel, size: outcome.size, from, recipient: r.address, status, ...user }));

  switch (outcome.kind) {
    case 'queued': {
      // refs are in the order of the drafts
      const size = outcome.size + Buffer.byteLength(header);
      // A message that came over TLS: the record ends with ` tls=PROTOCOL/CIPHER`, as outbound deliveries' do.
      const tls = smtp.secure && smtp.tlsOptions ? `${smtp.tlsOptions.version ?? 'TLS'}/${smtp.tlsOptions.name ?? 'unknown'}` : undefined;
      deps.logMail(
        drafts.flatMap((draft, i) =>
          draft.recipients.map((q): MailLogRecord => ({ event: 'E', id: outcome.refs[i]!.id, source: session.sourceChannel, destination: draft.channel, size, from, recipient: q.address, status: 'queued', ...user, ...(tls ? { tls } : {}) })),
        ),
      );
      deps.notices.add(outcome.refs);
      deps.enqueueLatency?.observe(outcome.storeMs / 1000);
      const list = outcome.refs.map((r) => r.id).join(' ');
      logger.debug({ cid: smtp.id, ids: list, size: outcome.size, rcpts: recipients.length }, 'message queued');
      return { ok: true, text: `2.0.0 Ok: queued as ${list}` };
    }
    case 'refused':
      deps.logMail(rejected(formatReply(outcome.reply)));
      logger.info({ cid: smtp.id, client: smtp.remoteAddress, violation: outcome.violation }, 'message refused');
      return { ok: false, reply: outcome.reply };
    case 'rejected':
      deps.logMail(rejected(formatReply(outcome.reply)));
      logger.info({ cid: smtp.id, client: smtp.remoteAddress }, 'message refused by an end-of-DATA check');
      return { ok: false, reply: outcome.reply };
    case 'failed':
      deps.logMail(rejected(formatReply(outcome.reply)));
      logger.error({ cid: smtp.id, err: outcome.error.message }, 'message not stored');
      return { ok: false, reply: outcome.reply };
    case 'aborted':
      logger.info({ cid: smtp.id, client: smtp.remoteAddress, size: outcome.size }, 'client left during DATA, nothing queued');
      return { ok: false, reply: REPLIES.connectionLost };
  }
}

/** DATA_CHECKS on the message: the reply that refuses it, or null when it is taken. */
function endOfDataChecks(message: MessageCommand): Promise<SmtpReply | null> {
  return new Promise((resolve, reject) => runChecks(DATA_CHECKS, message, (v) => resolve(v.kind === 'refuse' || v.kind === 'error' ? v.reply : null), reject));
}
