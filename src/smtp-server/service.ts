// The inbound SMTP service of one server process: sockets handed over by the dispatcher become
// smtp-server sessions; every RCPT is rewritten to its destination channel and checked against
// the relay policy and the local users; DATA is streamed into the queue and answered 250 only
// once it is on disk; mail.log gets an E record per queued recipient and a J record per refusal.
import type net from 'node:net';
import type tls from 'node:tls';
import { readFileSync } from 'node:fs';
import type { SMTPServerAddress, SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { instancePaths } from '../common/instance.js';
import { createLogger, type Logger } from '../common/logger.js';
import { MailLog, type MailLogRecord } from '../common/mail-log.js';
import { loadInstanceConfigOrThrow } from '../config/load.js';
import { ipInCidrs } from '../config/cidr.js';
import type { InstanceConfig } from '../config/types.js';
import { queueStoreFor } from '../queue/index.js';
import { compileRewriter } from '../rewrite/index.js';
import { asciiDomainForm, checkAddressCharset } from './address-check.js';
import { PerIpCounter } from './client-limits.js';
import { EnqueueNotices } from './enqueue-notices.js';
import { JobControllerClient } from '../job-controller/client.js';
import type { TsubameConnection, TsubameSmtpServer } from './connection.js';
import { mailParamsFrom, planDrafts, type AcceptedRecipient } from './envelope-plan.js';
import { LocalUsers } from '../directory/local-users.js';
import { receiveMessage, type EnqueueStore } from './message-receiver.js';
import { formatReceived } from './received-header.js';
import { LOCAL_CHANNEL, decideRecipient } from './recipient-policy.js';
import { localDomainsOf } from '../directory/local-aliases.js';
import { MAIL_PARAMETERS, RCPT_PARAMETERS, unsupportedParameter } from './esmtp-params.js';
import { etrnResponder, jobControllerFlush } from './etrn.js';
import { REPLIES, badAddressSyntax, formatReply, hookError, localTargetUnsupported, replyText, unknownUser, type SmtpReply } from './replies.js';
import { createInboundServer, type TlsMaterial } from './server-options.js';
import { resolveInboundSettings, type InboundSettings } from './settings.js';
import { Transcript, transcriptPath } from './transcript.js';
import { sessionIdGenerator } from './session-id.js';
import { SessionSlot } from './session-slot.js';
import { refuseConnection } from '../common/refuse-connection.js';

export interface SmtpServiceOptions {
  root: string;
  /** The dispatcher service this process serves (dispatcher.cnf [SERVICE=…]). */
  service: string;
  /** Already loaded configuration (default: loaded from `root`). */
  config?: InstanceConfig;
  /** Component log (default: log/tcp_smtp_server.log). */
  logger?: Logger;
  /** Queue store (default: the instance's queue/). */
  store?: EnqueueStore;
  /** Told each message's enqueue latency in seconds (end of DATA → on disk), for the metrics. */
  enqueueLatency?: { observe(seconds: number): void };
}

export interface SmtpService {
  /** Takes over a socket the dispatcher accepted (paused). */
  handle(socket: net.Socket): void;
  /** Sessions open now. */
  openConnections(): number;
  /** Stop taking sessions; open ones get `graceMs` to finish, then 421 and close. */
  close(graceMs: number): Promise<void>;
  /** Called when a session opens or closes (for the dispatcher's counts). */
  onChange(listener: (change: 'opened' | 'closed') => void): void;
}

/** A session counted as open: its slot, the socket handed over and, once it has one, its SMTP connection. */
interface OpenSession {
  slot: SessionSlot;
  socket: net.Socket;
  connection: TsubameConnection | null;
}

/** What a session is, decided once at connect. */
interface SessionInfo {
  internal: boolean;
  /** The channel the session's mail comes in on (tcp_intranet for internal clients). */
  sourceChannel: string;
}

/** Client addresses whose INTERNAL_IP verdict is kept (the configuration is fixed per service). */
const INTERNAL_CACHE_SIZE = 4096;

/** After the grace period, sessions told 421 get this long to go before their sockets are destroyed. */
const FORCE_CLOSE_MS = 2000;

export async function createSmtpService(opts: SmtpServiceOptions): Promise<SmtpService> {
  const paths = instancePaths(opts.root);
  const config = opts.config ?? loadInstanceConfigOrThrow(paths.root);
  const settings = resolveInboundSettings(config, opts.service);
  const logger = (opts.logger ?? createLogger(paths.log, 'tcp_smtp_server')).child({ service: settings.service });
  const store: EnqueueStore = opts.store ?? queueStoreFor(paths, config, logger);
  const rewriter = compileRewriter(config.imta);
  const localUsers = new LocalUsers(paths.mailbox, config.aliases, localDomainsOf(config.imta.channelByName.get(LOCAL_CHANNEL), config.options.localHost));
  const mailLog = new MailLog(paths.mailLog);
  const perIp = new PerIpCounter(settings.maxConnsPerIp);
  const nextSessionId = sessionIdGenerator();
  const transcript = settings.slaveDebug ? new Transcript(transcriptPath(paths.log, settings.channel)) : null;
  const tls = readTlsMaterial(settings);
  const jobController = new JobControllerClient(paths.jobControllerSocket, { lasting: true });
  const notices = new EnqueueNotices((refs) => jobController.tell({ op: 'enqueued', refs }));

  const sessions = new WeakMap<SMTPServerSession, SessionInfo>();
  const routes = new WeakMap<SMTPServerAddress, AcceptedRecipient>();
  const open = new Set<OpenSession>();
  const inFlight = new Set<Promise<unknown>>();
  const listeners: Array<(change: 'opened' | 'closed') => void> = [];
  let closing = false;

  const changed = (change: 'opened' | 'closed') => {
    for (const l of listeners) {
      try {
        l(change);
      } catch (err) {
        logger.error({ err: (err as Error).message }, 'onChange listener failed');
      }
    }
  };
  // Asked twice per connection (greeting delay, session channel), by few distinct addresses.
  const internalByIp = new Map<string, boolean>();
  const isInternal = (ip: string) => {
    let internal = internalByIp.get(ip);
    if (internal === undefined) {
      if (internalByIp.size >= INTERNAL_CACHE_SIZE) internalByIp.clear();
      internalByIp.set(ip, (internal = ipInCidrs(ip, settings.internalIp)));
    }
    return internal;
  };
  const sessionInfo = (session: SMTPServerSession): SessionInfo => {
    let info = sessions.get(session);
    if (!info) {
      const internal = isInternal(session.remoteAddress);
      info = { internal, sourceChannel: internal ? settings.intranetChannel : settings.channel };
      sessions.set(session, info);
    }
    return info;
  };
  const reject = (records: MailLogRecord[], reply: SmtpReply) => {
    logMail(records);
    return hookError(reply);
  };
  const logMail = (records: MailLogRecord[]) => {
    try {
      mailLog.write(records);
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'cannot write mail.log');
    }
  };

  const server: TsubameSmtpServer = createInboundServer(
    settings,
    {
      onConnect(session, callback) {
        sessionInfo(session);
        callback();
      },

      onSecure(socket, session, callback) {
        // As Postfix logs it: `TLS connection established from [ip]: TLSv1.3 with cipher …`.
        const cipher = (socket as tls.TLSSocket).getCipher?.();
        const tlsUse = describeTls(cipher?.version ?? null, cipher?.name ?? null);
        logger.info({ cid: session.id, client: session.remoteAddress, tlsVersion: cipher?.version, cipher: cipher?.name }, `TLS connection established from [${session.remoteAddress}]: ${tlsUse}`);
        callback();
      },

      onMailFrom(address, session, callback) {
        if (settings.tls.mode === 'must' && !session.secure) return callback(hookError(REPLIES.tlsRequired));
        if (settings.maxMessagesPerSession > 0 && session.transaction > settings.maxMessagesPerSession) {
          return callback(hookError(REPLIES.tooManyMessages));
        }
        const param = unsupportedParameter(address.args, MAIL_PARAMETERS);
        if (param) return callback(hookError(param));
        const problem = address.address === '' ? null : checkAddressCharset(address.address, Boolean(session.envelope.smtpUtf8));
        if (problem) return callback(hookError(problem));
        callback();
      },

      onRcptTo(address, session, callback) {
        const info = sessionInfo(session);
        const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
        const refuse = (reply: SmtpReply, destination = '') =>
          callback(reject([{ event: 'J', id: '', source: info.sourceChannel, destination, size: 0, from, recipient: address.address, status: formatReply(reply) }], reply));
        const param = unsupportedParameter(address.args, RCPT_PARAMETERS);
        if (param) return refuse(param);
        const charset = checkAddressCharset(address.address, Boolean(session.envelope.smtpUtf8));
        if (charset) return refuse(charset);
        const ascii = asciiDomainForm(address.address);
        if (ascii === null) return refuse(badAddressSyntax());
        const outcome = rewriter.rewrite(ascii, { sourceChannel: info.sourceChannel, direction: 'to' });
        const mayRelay = info.internal || Boolean(session.user);
        const decision = decideRecipient(address.address, outcome, config.imta.channelByName, mayRelay);
        if (!decision.ok) return refuse(decision.reply, outcome.channel ?? '');
        const accept = () => {
          routes.set(address, {
            channel: decision.channel,
            address: decision.address,
            original: address.address,
            orcpt: address.dsn?.orcpt ?? null,
            notify: address.dsn?.notify ?? null,
          });
          callback();
        };
        if (decision.localPart === null) return accept();
        // Local delivery's own verdict: what it would fail is refused here, never accepted and bounced.
        localUsers.verdict(decision.localPart).then(
          (v) => (v.kind === 'deliver' ? accept() : refuse(v.kind === 'unsupported' ? localTargetUnsupported(address.address) : unknownUser(address.address), decision.channel)),
          (err: Error) => {
            logger.error({ err: err.message }, 'local user lookup failed');
            callback(hookError(REPLIES.localError));
          },
        );
      },

      onData(stream, session, callback) {
        const work = handleData(stream, session).then(
          (result) => (result.ok ? callback(null, result.text) : callback(hookError(result.reply))),
          (err: Error) => {
            logger.error({ err: err.message, stack: err.stack }, 'message reception failed');
            callback(hookError(REPLIES.localError));
          },
        );
        inFlight.add(work);
        void work.finally(() => inFlight.delete(work));
      },
    },
    tls,
    transcript ? transcript.logger : false,
    {
      greetingDelayMs: (ip) => (isInternal(ip) ? settings.bannerPurgeDelayInternalMs : settings.bannerPurgeDelayMs),
      maxBadCommands: settings.maxBadCommands,
      deadlines: { requestMs: settings.commandDeadlineMs, minDataRate: settings.minDataRate },
      errorLimits: settings.errorLimits,
      tooManyErrors: (client, errors) => logger.info({ client, errors, limit: settings.errorLimits.hard }, 'too many errors in one session, closing it'),
      etrn: etrnResponder({ allow: config.options.etrnAllow, channelAllow: config.options.etrnChannelAllow, requestFlush: jobControllerFlush(paths.jobControllerSocket), logger }),
    },
  );
  server.on('error', (err: Error & { code?: string }) => logger.debug({ err: err.message, code: err.code }, 'session error'));

  async function handleData(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<{ ok: true; text: string } | { ok: false; reply: SmtpReply }> {
    const info = sessionInfo(session);
    const envelope = session.envelope;
    const from = envelope.mailFrom ? envelope.mailFrom.address : '';
    const recipients = envelope.rcptTo.map((r) => routes.get(r)).filter((r): r is AcceptedRecipient => r !== undefined);
    const arrival = new Date();
    const drafts = planDrafts(
      {
        from,
        mailParams: mailParamsFrom(envelope.mailFrom ? envelope.mailFrom.args : false, envelope.dsn, Boolean(envelope.smtpUtf8)),
        sourceChannel: info.sourceChannel,
        clientAddress: session.remoteAddress,
        clientHelo: session.hostNameAppearsAs || null,
        arrival,
      },
      recipients,
      config.imta.channelByName,
    );
    // The queue id goes into our Received: line, so a message can be traced from its header to mail.log.
    const messageId = store.newMessageId();
    const header = formatReceived({
      helo: session.hostNameAppearsAs || null,
      clientAddress: session.remoteAddress,
      byHost: settings.hostName,
      protocol: session.transmissionType,
      id: messageId,
      recipient: recipients.length === 1 ? recipients[0]!.original : null,
      tls: session.secure && session.tlsOptions ? { version: session.tlsOptions.version ?? null, cipher: session.tlsOptions.name ?? null } : null,
      date: arrival,
    });
    const outcome = await receiveMessage({
      stream,
      store,
      drafts,
      header,
      messageId,
      limits: { maxLineLength: settings.maxLineLength, maxBytes: settings.maxMessageSize, maxReceivedLines: settings.maxReceivedLines },
    });
    const rejected = (status: string): MailLogRecord[] =>
      recipients.map((r) => ({ event: 'J', id: '', source: info.sourceChannel, destination: r.channel, size: outcome.size, from, recipient: r.address, status }));

    switch (outcome.kind) {
      case 'queued': {
        // refs are in the order of the drafts
        const size = outcome.size + Buffer.byteLength(header);
        // A message that came over TLS: the record ends with ` tls=PROTOCOL/CIPHER`, as outbound deliveries' do.
        const tls = session.secure && session.tlsOptions ? `${session.tlsOptions.version ?? 'TLS'}/${session.tlsOptions.name ?? 'unknown'}` : undefined;
        logMail(
          drafts.flatMap((draft, i) =>
            draft.recipients.map((q): MailLogRecord => ({ event: 'E', id: outcome.refs[i]!.id, source: info.sourceChannel, destination: draft.channel, size, from, recipient: q.address, status: 'queued', ...(tls ? { tls } : {}) })),
          ),
        );
        notices.add(outcome.refs);
        opts.enqueueLatency?.observe(outcome.storeMs / 1000);
        const list = outcome.refs.map((r) => r.id).join(' ');
        logger.debug({ cid: session.id, ids: list, size: outcome.size, rcpts: recipients.length }, 'message queued');
        return { ok: true, text: `2.0.0 Ok: queued as ${list}` };
      }
      case 'refused':
        logMail(rejected(formatReply(outcome.reply)));
        logger.info({ cid: session.id, client: session.remoteAddress, violation: outcome.violation }, 'message refused');
        return { ok: false, reply: outcome.reply };
      case 'failed':
        logMail(rejected(formatReply(outcome.reply)));
        logger.error({ cid: session.id, err: outcome.error.message }, 'message not stored');
        return { ok: false, reply: outcome.reply };
      case 'aborted':
        logger.info({ cid: session.id, client: session.remoteAddress, size: outcome.size }, 'client left during DATA, nothing queued');
        return { ok: false, reply: REPLIES.connectionLost };
    }
  }

  function handle(socket: net.Socket): void {
    const ip = normalizeIp(socket.remoteAddress);
    if (!ip) {
      socket.destroy();
      return;
    }
    let counted = false;
    const session: OpenSession = {
      socket,
      connection: null,
      slot: new SessionSlot(() => {
        open.delete(session);
        if (counted) perIp.release(ip);
        changed('closed');
      }),
    };
    open.add(session);
    socket.on('error', () => {}); // the connection reports its own; a refused socket must not throw
    // Until a STARTTLS (which removes this listener): the session's TLS socket is the connection's.
    socket.once('close', session.slot.release);
    changed('opened');
    if (closing) return refuseSocket(socket, REPLIES.shuttingDown);
    if (!perIp.acquire(ip)) {
      logger.info({ client: ip, limit: settings.maxConnsPerIp }, 'too many connections from one address');
      return refuseSocket(socket, REPLIES.tooManyConnections);
    }
    counted = true;
    session.connection = server.connect(socket, {
      id: nextSessionId(),
      remoteAddress: ip,
      remotePort: socket.remotePort,
      localAddress: normalizeIp(socket.localAddress) ?? undefined,
      localPort: socket.localPort,
    });
    session.connection.onEnded(session.slot.release);
  }

  let closed: Promise<void> | null = null;
  function close(graceMs: number): Promise<void> {
    closed ??= shutDown(graceMs);
    return closed;
  }

  async function shutDown(graceMs: number): Promise<void> {
    closing = true;
    await Promise.race([allClosed(open), delay(graceMs)]);
    if (open.size > 0) {
      for (const connection of server.connections) {
        connection.send(421, replyText(REPLIES.shuttingDown));
        connection.close();
      }
      await Promise.race([allClosed(open), delay(FORCE_CLOSE_MS)]);
      for (const s of open) {
        s.connection?._socket.destroy();
        s.socket.destroy();
      }
    }
    await Promise.allSettled([...inFlight]);
    await notices.flushed();
    jobController.close();
    await transcript?.close();
    mailLog.close();
  }

  return {
    handle,
    openConnections: () => open.size,
    close,
    onChange: (l) => void listeners.push(l),
  };
}

function readTlsMaterial(settings: InboundSettings): TlsMaterial | null {
  if (settings.tls.mode === 'none' || !settings.tls.keyFile || !settings.tls.certFile) return null;
  try {
    return { key: readFileSync(settings.tls.keyFile), cert: readFileSync(settings.tls.certFile) };
  } catch (err) {
    throw new Error(`cannot read TLS_KEY/TLS_CERT: ${(err as Error).message}`);
  }
}

/** `TLSv1.3 with cipher TLS_AES_256_GCM_SHA384`, Postfix's words for a session's TLS. */
function describeTls(version: string | null, cipher: string | null): string {
  return `${version ?? 'TLS'} with cipher ${cipher ?? 'unknown'}`;
}

function refuseSocket(socket: net.Socket, reply: SmtpReply): void {
  refuseConnection(socket, `${formatReply(reply)}\r\n`, FORCE_CLOSE_MS);
}

function normalizeIp(ip: string | undefined): string | null {
  if (!ip) return null;
  return ip.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
}

function allClosed(sessions: Set<OpenSession>): Promise<void> {
  return Promise.all([...sessions].map((s) => s.slot.closed)).then(() => {});
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
