// One outbound SMTP/LMTP session on nodemailer's SMTPConnection, in promise form, with the
// result of each transaction classified for the engine. We open the TCP connection ourselves
// (to an address we resolved) so that a refused or silent host is told apart precisely and the
// connect timeout is our own; nodemailer then runs greeting, EHLO/LHLO, STARTTLS and the
// transactions (PIPELINING when offered, one corked MAIL+RCPT…+DATA batch). A channel with
// maysaslclient/mustsaslclient authenticates (AUTH PLAIN, else LOGIN) once the session is
// encrypted, never in clear; a refusal is a ConnectError whose status says why the mail waits.
import net from 'node:net';
import tls from 'node:tls';
import type { Readable } from 'node:stream';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { TlsMode } from '../config/types.js';
import type { Target } from './mx.js';
import type { DeliverySettings } from './settings.js';
import { describeHost, normalizeReply } from './status.js';
import { tlsFactsOf, type TlsFacts } from './tls/facts.js';
import type { TrustStore } from './tls/trust.js';

/** A bunyan-style logger as nodemailer expects (see transcript.ts). */
export interface SessionLogger {
  trace(...args: unknown[]): void;
  debug(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
  fatal(...args: unknown[]): void;
}

export interface SessionOptions {
  target: Target;
  /** EHLO/LHLO name. */
  localName: string;
  lmtp: boolean;
  tls: TlsMode;
  pipelining: boolean;
  settings: DeliverySettings;
  transcript?: SessionLogger | null;
  /**
   * The CAs the server's certificate is checked against (Node's list plus TLS_CA_FILE, see
   * tls/trust.ts); absent: Node's list. The check never stops the session: its result is in
   * SmtpSession.tlsFacts for the TLS policy (tls/decision.ts).
   */
  trust?: TrustStore;
  /** The channel's SMTP AUTH as a client (maysaslclient/mustsaslclient and etc/client_auth); absent: none. */
  auth?: ClientLogin | null;
}

/** What a channel authenticates to its servers with (a smart host usually). */
export interface ClientLogin {
  /** may: when the encrypted session offers AUTH; must: no mail without it. */
  mode: 'may' | 'must';
  username: string;
  password: string;
}

export type ConnectFailureKind = 'refused' | 'timeout' | 'greeting' | 'tls' | 'tls-required' | 'auth' | 'closed';

/** The session could not be set up. `unreachable` = put the host in the reachability cache. */
export class ConnectError extends Error {
  constructor(
    readonly kind: ConnectFailureKind,
    /** `NNN X.Y.Z text` for the recipients' status. */
    readonly status: string,
    readonly unreachable: boolean,
  ) {
    super(status);
    this.name = 'ConnectError';
  }
}

export interface RcptDsn {
  notify: string[] | null;
  orcpt: string | null;
}

export interface SendRequest {
  from: string;
  to: string[];
  /** The message: a buffer (small messages) or a stream. */
  body: Readable | Buffer;
  ret?: 'FULL' | 'HDRS';
  envid?: string;
  use8BitMime?: boolean;
  /** Give SMTPUTF8 at MAIL (nodemailer adds it by itself only for UTF-8 addresses). */
  smtpUtf8?: boolean;
  rcptDsn?: Map<string, RcptDsn>;
}

export interface RcptRejection {
  recipient: string;
  /** Normalised reply `NNN X.Y.Z text`. */
  reply: string;
  code: number;
  command: string;
}

export type SendOutcome =
  /** The message was taken for `accepted`; `rejected` were refused (RCPT, or per recipient after DATA in LMTP). */
  | { kind: 'sent'; reply: string; accepted: string[]; rejected: RcptRejection[] }
  /** The server refused the transaction: `reply` applies to every recipient not in `rejected`. */
  | { kind: 'refused'; reply: string; code: number; command: string; rejected: RcptRejection[] }
  /** The connection broke or timed out: nothing is known about the transaction. */
  | { kind: 'broken'; reply: string }
  /** A local problem (the message could not be read). */
  | { kind: 'local'; reply: string };

type SmtpError = SMTPConnection.SMTPError;
type SendRcpt = (this: Conn, recipient: string, cb: unknown) => unknown;
type SendCommand = (this: Conn, command: string, ...rest: unknown[]) => unknown;
type CreateSendStream = (this: Conn, cb: unknown) => unknown;
/** The private parts of nodemailer's SMTPConnection that a session reads or wraps. */
interface ConnInternals {
  _destroyed?: boolean;
  _supportedExtensions?: string[];
  _supportedAuth?: string[];
  _envelope?: { rejectedErrors?: SmtpError[]; dsn?: { notify: string | null; orcpt: string | null } };
  _sendRcpt?: SendRcpt;
  __sendRcptOriginal?: SendRcpt;
  _sendCommand?: SendCommand;
  __sendCommandOriginal?: SendCommand;
  _createSendStream?: CreateSendStream;
  __createSendStreamOriginal?: CreateSendStream;
}
type Conn = SMTPConnection & ConnInternals;
/** Why a connection failed: nodemailer's error, or the end of the connection, as far as known. */
type ConnectCause = Partial<Pick<SmtpError, 'code' | 'response' | 'message'>>;

export class SmtpSession {
  /** A refused transaction leaves the server in a transaction: RSET before the next. */
  needsReset = false;
  lastUsed = Date.now();
  transactions = 0;
  private broken = false;

  constructor(
    readonly target: Target,
    private readonly conn: Conn,
    private readonly settings: DeliverySettings,
    /** True when the session runs over TLS. */
    readonly secure: boolean,
    /** EHLO keywords nodemailer acts on (PIPELINING removed when the channel says nopipelining). */
    readonly extensions: string[],
    /** The TLS in use (tlsSummary), for mail.log; null in clear. */
    readonly tls: string | null = null,
    /** What the handshake saw (protocol, cipher, chain, trust), for the TLS policy; null in clear. */
    readonly tlsFacts: TlsFacts | null = null,
  ) {
    conn.on('end', () => {
      this.broken = true;
    });
  }

  get usable(): boolean {
    return !this.broken && !this.conn._destroyed && !this.conn.destroyed;
  }

  async send(req: SendRequest): Promise<SendOutcome> {
    this.lastUsed = Date.now();
    if (this.needsReset) {
      const ok = await this.reset();
      if (!ok) {
        if (!Buffer.isBuffer(req.body)) req.body.destroy();
        return { kind: 'broken', reply: `421 4.4.2 ${describeHost(this.target)} did not accept RSET` };
      }
    }
    const dsnWanted = Boolean(req.ret || req.envid || [...(req.rcptDsn?.values() ?? [])].some((d) => d.notify !== null || Boolean(d.orcpt)));
    const envelope: Record<string, unknown> = { from: req.from, to: req.to, use8BitMime: req.use8BitMime };
    if (dsnWanted) envelope.dsn = { ret: req.ret ?? null, envid: req.envid ?? null, notify: null, orcpt: null };
    this.installRcptDsn(req.rcptDsn);
    this.installMailParameters(Boolean(req.smtpUtf8));
    this.installDataTimeout();
    const outcome = await new Promise<SendOutcome>((resolve) => {
      if (!Buffer.isBuffer(req.body)) {
        req.body.on('error', () => {
          /* reported through nodemailer's ESTREAM */
        });
      }
      this.conn.send(envelope, req.body, (err: SmtpError | null, info: SMTPConnection.SentMessageInfo) => {
        if (!err) {
          resolve({
            kind: 'sent',
            reply: normalizeReply(info.response ?? '250 2.0.0 OK'),
            accepted: info.accepted ?? [],
            rejected: rejections(info.rejectedErrors),
          });
          return;
        }
        resolve(this.classify(err));
      });
    });
    this.transactions++;
    this.lastUsed = Date.now();
    this.restoreCommandTimeout();
    if (outcome.kind === 'refused') this.needsReset = true;
    if (outcome.kind === 'broken' || outcome.kind === 'local') this.close();
    return outcome;
  }

  /** RSET; false (and the session closed) when the server does not take it. */
  reset(): Promise<boolean> {
    return new Promise((resolve) => {
      if (!this.usable) return resolve(false);
      this.conn.reset((err) => {
        if (err) {
          this.close();
          return resolve(false);
        }
        this.needsReset = false;
        resolve(true);
      });
    });
  }

  /** QUIT and close (nodemailer closes the socket when the reply comes or on its close timeout). */
  quit(): void {
    if (!this.usable) return this.close();
    this.broken = true;
    try {
      this.conn.quit();
      // A server that never answers QUIT must not keep the socket (and the process) for the command timeout.
      setTimeout(() => this.conn.close(), 2000).unref();
    } catch {
      this.conn.close();
    }
  }

  close(): void {
    this.broken = true;
    try {
      this.conn.close();
    } catch {
      /* already closed */
    }
  }

  private classify(err: SmtpError): SendOutcome {
    const code: string = err.code ?? '';
    const command: string = err.command ?? '';
    const response: string | undefined = typeof err.response === 'string' ? err.response : undefined;
    const envelopeRejections = () => rejections(err.rejectedErrors ?? this.conn._envelope?.rejectedErrors);
    if (code === 'ESTREAM') return { kind: 'local', reply: `451 4.3.0 could not read the queued message: ${err.message}` };
    if ((code === 'EENVELOPE' || code === 'EMESSAGE') && response) {
      // A refused MAIL applies to every recipient (pipelined RCPTs behind it only got 503s).
      const mailRefused = command === 'MAIL FROM';
      return {
        kind: 'refused',
        reply: normalizeReply(response),
        code: replyCode(response),
        command: code === 'EMESSAGE' ? 'end of DATA' : command || 'DATA',
        rejected: mailRefused ? [] : envelopeRejections(),
      };
    }
    if (code === 'EMESSAGE' && /size/i.test(err.message ?? '')) {
      return { kind: 'refused', reply: `552 5.3.4 message too big for ${describeHost(this.target)} (${err.message})`, code: 552, command: 'MAIL FROM', rejected: [] };
    }
    if (code === 'EENVELOPE') {
      // Refused locally before anything was sent (e.g. an address nodemailer will not send).
      return { kind: 'refused', reply: `553 5.1.3 ${err.message}`, code: 553, command: 'MAIL FROM', rejected: [] };
    }
    const reason = code === 'ETIMEDOUT' ? 'conversation timed out' : 'lost connection';
    const reply = response ? normalizeReply(response) : `451 4.4.2 ${reason} with ${describeHost(this.target)}${command ? ` while sending ${command}` : ''}`;
    return { kind: 'broken', reply: response && !reply.startsWith('4') ? `451 4.4.2 ${reason} with ${describeHost(this.target)}: ${reply}` : reply };
  }

  /** Per-recipient NOTIFY/ORCPT: nodemailer keeps one DSN object per envelope, set it before each RCPT. */
  private installRcptDsn(map: Map<string, RcptDsn> | undefined): void {
    const c = this.conn;
    const original = c.__sendRcptOriginal ?? c._sendRcpt;
    if (typeof original !== 'function') return;
    c.__sendRcptOriginal = original;
    c._sendRcpt = function (this: Conn, recipient: string, cb: unknown) {
      const dsn = this._envelope?.dsn;
      if (dsn) {
        const d = map?.get(recipient);
        dsn.notify = d?.notify?.length ? d.notify.map((n) => n.toUpperCase()).join(',') : null;
        dsn.orcpt = d?.orcpt ?? null;
      }
      return original.call(this, recipient, cb);
    };
  }

  /** SMTPUTF8 on MAIL when the message was given it, also for an all-ASCII envelope (RFC 6531 §3.4). */
  private installMailParameters(smtpUtf8: boolean): void {
    const c = this.conn;
    const original = c.__sendCommandOriginal ?? c._sendCommand;
    if (typeof original !== 'function') return;
    c.__sendCommandOriginal = original;
    c._sendCommand = function (this: Conn, command: string, ...rest: unknown[]) {
      const line = smtpUtf8 && /^MAIL FROM:/i.test(command) && !/ SMTPUTF8(?: |$)/i.test(command) ? `${command} SMTPUTF8` : command;
      return original.call(this, line, ...rest);
    };
  }

  /** RFC 5321 §4.5.3.2: the data block and the final dot get the longer data timeout. */
  private installDataTimeout(): void {
    const c = this.conn;
    const original = c.__createSendStreamOriginal ?? c._createSendStream;
    if (typeof original !== 'function') return;
    c.__createSendStreamOriginal = original;
    const dataTimeout = this.settings.dataTimeoutMs;
    c._createSendStream = function (this: Conn, cb: unknown) {
      if (this._socket) this._socket.setTimeout(dataTimeout);
      return original.call(this, cb);
    };
  }

  private restoreCommandTimeout(): void {
    if (this.usable && this.conn._socket) this.conn._socket.setTimeout(this.settings.commandTimeoutMs);
  }
}

/** Connects, greets, EHLO/LHLO, STARTTLS per the channel's TLS mode. Throws ConnectError. */
export async function openSession(opts: SessionOptions): Promise<SmtpSession> {
  try {
    return await attempt(opts, opts.tls);
  } catch (err) {
    // maytls: a failed TLS handshake is retried once in plaintext (Postfix's opportunistic level does the same).
    if (err instanceof ConnectError && err.kind === 'tls' && opts.tls === 'maytls') return attempt(opts, 'notls');
    throw err;
  }
}

async function attempt(opts: SessionOptions, tls: TlsMode): Promise<SmtpSession> {
  const { target, settings } = opts;
  const socket = await connectTcp(target, settings.connectTimeoutMs);
  const servername = net.isIP(target.host) ? undefined : target.host;
  const conn = new SMTPConnection({
    host: target.ip,
    port: target.port,
    connection: socket,
    servername,
    name: opts.localName,
    lmtp: opts.lmtp,
    ignoreTLS: tls === 'notls',
    requireTLS: tls === 'musttls',
    opportunisticTLS: tls === 'maytls',
    // The handshake never fails on the certificate: the session records what it saw (tlsFacts),
    // and the TLS policy (tls/decision.ts: musttls, MTA-STS, DANE) decides whether to deliver.
    tls: { rejectUnauthorized: false, servername, ...(opts.trust?.secureContext ? { secureContext: opts.trust.secureContext } : {}) },
    connectionTimeout: settings.greetingTimeoutMs + settings.connectTimeoutMs,
    greetingTimeout: settings.greetingTimeoutMs,
    socketTimeout: settings.commandTimeoutMs,
    socketCloseTimeout: 1000,
    logger: opts.transcript ?? false,
    transactionLog: Boolean(opts.transcript),
  }) as Conn;
  return new Promise<SmtpSession>((resolve, reject) => {
    let settled = false;
    const fail = (err: ConnectCause | ConnectError) => {
      if (settled) return;
      settled = true;
      conn.close();
      reject(connectFailure(err, target, tls));
    };
    conn.on('error', fail);
    conn.once('end', () => fail({ code: 'ECONNECTION', message: 'connection closed' }));
    conn.connect((err?: SmtpError) => {
      if (err) return fail(err);
      if (settled) return;
      settled = true;
      conn.removeListener('error', fail);
      conn.on('error', () => {
        /* after setup, errors reach the send callback */
      });
      if (tls === 'musttls' && !conn.secure) {
        conn.close();
        return reject(new ConnectError('tls-required', `451 4.7.4 TLS is required, but was not offered by ${describeHost(target)}`, false));
      }
      const ext: string[] = conn._supportedExtensions ?? [];
      if (!opts.pipelining && Array.isArray(conn._supportedExtensions)) {
        // `nopipelining`: nodemailer has no switch; without the keyword in its list it goes lock-step.
        conn._supportedExtensions = ext.filter((e) => e !== 'PIPELINING');
      }
      authenticate(conn, opts.auth ?? null, target).then(
        () => resolve(new SmtpSession(target, conn, settings, Boolean(conn.secure), [...(conn._supportedExtensions ?? [])], conn.secure ? tlsSummary(conn._socket) : null, conn.secure ? tlsFactsOf(conn._socket) : null)),
        (err: ConnectError) => {
          conn.close();
          reject(err);
        },
      );
    });
  });
}

/**
 * SMTP AUTH as the channel's client, only inside TLS (a password never crosses the network in
 * clear): PLAIN when offered, else LOGIN. mustsaslclient without TLS or without a mechanism we
 * speak, and a refusal in either mode (as Postfix's smtp_sasl_auth_soft_bounce), is a 4xx
 * ConnectError: the mail waits with that reason in the queue. The transcript never has the
 * password (nodemailer logs the AUTH line masked).
 */
function authenticate(conn: Conn, auth: ClientLogin | null, target: Target): Promise<void> {
  if (!auth) return Promise.resolve();
  const host = describeHost(target);
  const offered = (conn._supportedAuth ?? []).map((m) => m.toUpperCase());
  if (!conn.secure) {
    if (auth.mode === 'may') return Promise.resolve();
    return Promise.reject(new ConnectError('auth', `451 4.7.0 mustsaslclient: ${host} is given SMTP AUTH credentials only over TLS, and this session is not encrypted (add maytls or musttls to the channel, or check that the host offers STARTTLS)`, false));
  }
  const method = offered.includes('PLAIN') ? 'PLAIN' : offered.includes('LOGIN') ? 'LOGIN' : null;
  if (method === null) {
    if (auth.mode === 'may') return Promise.resolve();
    return Promise.reject(new ConnectError('auth', `451 4.7.0 mustsaslclient: ${host} offers no SMTP AUTH mechanism tsubame speaks (PLAIN, LOGIN)${offered.length ? `: it offers ${offered.join(' ')}` : ''}`, false));
  }
  return new Promise((resolve, reject) => {
    conn.login({ user: auth.username, pass: auth.password, method }, (err?: SmtpError | null) => {
      if (!err) return resolve();
      const reply = typeof err.response === 'string' ? normalizeReply(err.response) : err.message;
      reject(new ConnectError('auth', `451 4.7.0 ${host} refused SMTP AUTH ${method} as ${auth.username} (etc/client_auth): ${reply}`, false));
    });
  });
}

/**
 * `TLSv1.3/TLS_AES_256_GCM_SHA384/Untrusted`: protocol, cipher and how far the server's
 * certificate was checked, in Postfix's words: Verified (chain and name), Trusted (chain, not
 * the name), Untrusted (no valid chain). tls/decision.ts gives the same words per MX host name
 * (and Verified/Trusted for a DANE match).
 */
function tlsSummary(socket: unknown): string | null {
  if (!(socket instanceof tls.TLSSocket)) return null;
  const protocol = socket.getProtocol() ?? 'TLS';
  const cipher = socket.getCipher()?.name ?? 'unknown';
  const trust = socket.authorized ? 'Verified' : String(socket.authorizationError) === 'ERR_TLS_CERT_ALTNAME_INVALID' ? 'Trusted' : 'Untrusted';
  return `${protocol}/${cipher}/${trust}`;
}

function connectTcp(target: Target, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: target.ip, port: target.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ConnectError('timeout', `451 4.4.1 connect to ${describeHost(target)}: Connection timed out`, true));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      const text = err.code === 'ECONNREFUSED' ? 'Connection refused' : err.code === 'EHOSTUNREACH' ? 'No route to host' : err.message;
      reject(new ConnectError('refused', `451 4.4.1 connect to ${describeHost(target)}: ${text}`, true));
    });
  });
}

function connectFailure(err: ConnectCause | ConnectError, target: Target, tls: TlsMode): ConnectError {
  if (err instanceof ConnectError) return err;
  const code: string = err?.code ?? '';
  const response: string | undefined = typeof err?.response === 'string' ? err.response : undefined;
  if (code === 'ETLS') {
    if (tls === 'musttls' && response) {
      return new ConnectError('tls-required', `451 4.7.4 TLS is required, but ${describeHost(target)} refused STARTTLS: ${normalizeReply(response)}`, false);
    }
    return new ConnectError('tls', `451 4.7.5 TLS handshake with ${describeHost(target)} failed: ${err.message}`, false);
  }
  if (code === 'ETIMEDOUT') {
    return new ConnectError('timeout', `451 4.4.2 ${describeHost(target)}: timeout while receiving the initial server greeting`, true);
  }
  if (response) {
    // 421/554 greeting or a refused EHLO: the host does not want mail from us now; next MX.
    const reply = normalizeReply(response);
    return new ConnectError('greeting', reply.startsWith('4') ? `${reply} (greeting from ${describeHost(target)})` : `451 4.4.2 ${describeHost(target)} refused to talk to me: ${reply}`, false);
  }
  return new ConnectError('closed', `451 4.4.2 ${describeHost(target)}: lost connection during the greeting (${err?.message ?? 'closed'})`, true);
}

function rejections(list: SmtpError[] | undefined): RcptRejection[] {
  return (list ?? []).map((e) => ({
    recipient: e.recipient!, // set on each per-recipient error
    reply: normalizeReply(e.response ?? '451 4.0.0 rejected'),
    code: replyCode(e.response ?? '451'),
    command: e.code === 'EMESSAGE' ? 'end of DATA' : (e.command ?? 'RCPT TO'),
  }));
}

function replyCode(response: string): number {
  const m = /^(\d{3})/.exec(response);
  return m ? Number(m[1]) : 451;
}
