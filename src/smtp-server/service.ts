// The inbound SMTP service of one server process, its composition root: the configuration, the
// queue store, the rewriter and the directory (files or LDAP: directory/source.ts; users for
// SMTP AUTH and sender ownership too) and the AUTH stage, the policy's compiled mappings, DNS
// lookup and milter settings (inbound-policy.ts), mail.log and the job controller link are made
// here once; new sockets (accepted by this process from the shared listening socket, or handed
// over by the dispatcher; on a TLS_PORT after the handshake) become sessions (session-intake.ts,
// the one place every socket arrives before smtp-server sees it) of an
// smtp-server whose hooks are one method each (session-hooks.ts), each running its stage's
// ordered checks: connect-checks.ts, mail-checks.ts, rcpt-checks.ts, data-checks.ts. DATA is
// streamed into the queue and answered 250 only once it is on disk (data-stage.ts).
import type net from 'node:net';
import { readFileSync } from 'node:fs';
import { instancePaths } from '../common/instance.js';
import { createLogger, type Logger } from '../common/logger.js';
import { MailLog, type MailLogRecord } from '../common/mail-log.js';
import { loadInstanceConfigOrThrow } from '../config/load.js';
import type { InstanceConfig } from '../config/types.js';
import { localityOf } from '../directory/locality.js';
import { openDirectory } from '../directory/source.js';
import { KdfGate } from '../directory/kdf-gate.js';
import { AuthFailures } from './auth-failures.js';
import { AuthStage, newAuthCounters, type AuthCounters } from './auth-stage.js';
import { queueStoreFor } from '../queue/index.js';
import { compileRewriter } from '../rewrite/index.js';
import { srsSettingsOf } from '../srs/index.js';
import { EnqueueNotices } from './enqueue-notices.js';
import { mayUseXverp } from './xverp.js';
import { etrnResponder, jobControllerFlush } from './etrn.js';
import { InboundSessions, InternalClients } from './inbound-session.js';
import { buildInboundPolicy } from './inbound-policy.js';
import { JobControllerClient } from '../job-controller/client.js';
import type { EnqueueStore } from './message-receiver.js';
import { createInboundServer, type TlsMaterial } from './server-options.js';
import { SessionHooks } from './session-hooks.js';
import { SessionIntake } from './session-intake.js';
import { PerIpGate } from './client-limits.js';
import { resolveInboundSettings, type InboundSettings } from './settings.js';
import type { StageServices } from './stages.js';
import { Transcript, transcriptPath } from './transcript.js';

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
  /**
   * MAX_CONNS_PER_IP: the process's gate, shared by the services a reload makes and counted with
   * the dispatcher across processes (default: a gate of this service alone).
   */
  perIp?: PerIpGate;
  /** The process's gate on concurrent password hashes (default: one of this service's own). */
  kdfGate?: KdfGate;
  /** The process's failed-AUTH counts, kept across reloads (default: this service's own). */
  authFailures?: AuthFailures;
  /** The process's AUTH counts for the metrics (default: this service's own). */
  authCounters?: AuthCounters;
}

export interface SmtpService {
  /** Takes over a new socket (paused), before smtp-server sees it. */
  handle(socket: net.Socket): void;
  /** Sessions open now. */
  openConnections(): number;
  /** Stop taking sessions; open ones get `graceMs` to finish, then 421 and close. */
  close(graceMs: number): Promise<void>;
  /** Called when a session opens or closes (for the dispatcher's counts). */
  onChange(listener: (change: 'opened' | 'closed') => void): void;
}

export async function createSmtpService(opts: SmtpServiceOptions): Promise<SmtpService> {
  const paths = instancePaths(opts.root);
  const config = opts.config ?? loadInstanceConfigOrThrow(paths.root);
  const settings = resolveInboundSettings(config, opts.service);
  const logger = (opts.logger ?? createLogger(paths.log, 'tcp_smtp_server')).child({ service: settings.service });
  const store: EnqueueStore = opts.store ?? queueStoreFor(paths, config, logger);
  const directory = openDirectory(config, {
    gate: opts.kdfGate ?? new KdfGate(),
    onEvent: (e) => (e.type === 'connected' ? logger.debug(e, 'LDAP connection') : logger.warn(e, 'LDAP connection')),
    onDomainsEvent: (e) => (e.type === 'refreshed' ? logger.debug(e, 'hosted domains read') : logger.warn(e, 'hosted domains not read')),
  });
  // The rules' $V/$Z ask the hosted domains: their first reading (LDAP_TIMEOUT at most) before the first RCPT.
  await directory.hostedDomains.ready();
  const rewriter = compileRewriter(config.imta, { hostedDomains: directory.hostedDomains });
  const locality = localityOf(config.imta, { rewriter, localHost: config.options.localHost });
  const limits = settings.sasl.limits;
  const authFailures = opts.authFailures ?? new AuthFailures({ perAddress: limits.failuresPerAddress, perUser: limits.failuresPerUser, windowMs: limits.windowMs });
  authFailures.setLimits({ perAddress: limits.failuresPerAddress, perUser: limits.failuresPerUser, windowMs: limits.windowMs });
  const services: StageServices = {
    config,
    settings,
    logger,
    rewriter,
    directory,
    isLocal: (address) => locality.isLocal(address),
    srs: srsSettingsOf(config),
    policy: buildInboundPolicy(config, settings),
  };
  const mailLog = new MailLog(paths.mailLog);
  const logMail = (records: MailLogRecord[]) => {
    try {
      mailLog.write(records);
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'cannot write mail.log');
    }
  };
  const transcript = settings.slaveDebug ? new Transcript(transcriptPath(paths.log, settings.channel)) : null;
  const tls = readTlsMaterial(settings);
  const jobController = new JobControllerClient(paths.jobControllerSocket, { lasting: true });
  const notices = new EnqueueNotices((refs) => jobController.tell({ op: 'enqueued', refs }));
  const clients = new InternalClients(settings.internalIp);
  const sessions = new InboundSessions(clients, settings);
  const hooks = new SessionHooks(sessions, { services, store, notices, logMail, enqueueLatency: opts.enqueueLatency });
  const auth = new AuthStage({
    settings,
    sessions,
    directory,
    failures: authFailures,
    counters: opts.authCounters ?? newAuthCounters(),
    channelByName: config.imta.channelByName,
    startTls: tls !== null && settings.tls.mode !== 'none',
    logger,
    logMail,
  });

  const server = createInboundServer(settings, hooks.forServer(), tls, transcript ? transcript.logger : false, {
    greetingDelayMs: (ip) => (clients.isInternal(ip) ? settings.bannerPurgeDelayInternalMs : settings.bannerPurgeDelayMs),
    maxBadCommands: settings.maxBadCommands,
    deadlines: { requestMs: settings.commandDeadlineMs, minDataRate: settings.minDataRate },
    errorLimits: settings.errorLimits,
    tooManyErrors: (client, errors) => logger.info({ client, errors, limit: settings.errorLimits.hard }, 'too many errors in one session, closing it'),
    etrn: etrnResponder({ allow: config.options.etrnAllow, channelAllow: config.options.etrnChannelAllow, requestFlush: jobControllerFlush(paths.jobControllerSocket), logger }),
    auth,
    xverp: (ip, authenticated) => mayUseXverp(clients.isInternal(ip), authenticated),
  });
  server.on('error', (err: Error & { code?: string }) => logger.debug({ err: err.message, code: err.code }, 'session error'));
  const perIp = opts.perIp ?? new PerIpGate(settings.maxConnsPerIp);
  perIp.setLimit(settings.maxConnsPerIp);
  const intake = new SessionIntake(server, perIp, logger, { ports: settings.implicitTlsPorts, handshakeDeadlineMs: settings.commandDeadlineMs || settings.socketTimeoutMs }, settings.proxy);

  const shutDown = async (graceMs: number): Promise<void> => {
    await intake.drain(graceMs);
    await hooks.settled();
    await notices.allSent();
    services.policy.close();
    jobController.close();
    await directory.close().catch(() => {});
    await transcript?.close();
    mailLog.close();
  };
  let closed: Promise<void> | null = null;

  return {
    handle: (socket) => intake.handle(socket),
    openConnections: () => intake.size,
    close: (graceMs) => (closed ??= shutDown(graceMs)),
    onChange: (listener) => intake.onChange(listener),
  };
}

function readTlsMaterial(settings: InboundSettings): TlsMaterial | null {
  // Files are named when STARTTLS (maytlsserver/musttlsserver) or a TLS_PORT uses them (settings.ts).
  if (!settings.tls.keyFile || !settings.tls.certFile) return null;
  try {
    return { key: readFileSync(settings.tls.keyFile), cert: readFileSync(settings.tls.certFile) };
  } catch (err) {
    throw new Error(`cannot read TLS_KEY/TLS_CERT: ${(err as Error).message}`, { cause: err });
  }
}
