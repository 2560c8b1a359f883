// smtp-server's connection, adjusted where it has no option (smtp-server 3.21.6 is pinned in
// package.json; these override methods of its SMTPConnection, see
// node_modules/smtp-server/dist/esm/smtp-connection.js):
// - the pause before the greeting: the library waits a fixed 100 ms in init() to catch early
//   talkers; here it is Messaging Server's BANNER_PURGE_DELAY, chosen per client (INTERNAL_IP
//   clients usually get none), so a client that opens a connection per message is not capped
//   at ~10 messages/s. Early talkers still get the library's `421 … You talk too soon`.
// - replies whose text starts with an enhanced status code are sent as they are (the library
//   would put its default code for the reply code in front of ours);
// - the number of unrecognized commands before disconnection (fixed at 10 in the library) is
//   MAX_BAD_COMMANDS.
// - a per-request deadline (request-deadline.ts): a command line, a TLS handshake and the DATA
//   phase must finish in time however often the client sends an octet, else `421 4.4.2 <host>
//   Error: timeout exceeded` and close, as Postfix does. The parser's input is observed as it
//   arrives (parser-tap.ts; the parser is made by _createParser, again after STARTTLS), and the
//   deadline does not run against the client while the server holds things up (a handler has
//   not answered, input waits unread, the message is being stored): the library's idle timeout
//   makes the same exception.
// - ETRN (RFC 1985), which the library does not know. The library dispatches a verb to the
//   connection's `handler_<VERB>` method (`_onCommand` → `_isSupported` → `_getHandler`), so
//   handler_ETRN below makes it a command like the built-in ones: the library's early-talker,
//   sequencing (the next pipelined command waits for our callback), disabledCommands and
//   error handling all apply, and nothing reads the socket beside the library's parser. The
//   keyword is added to the EHLO reply the library builds (handler_EHLO sends it with one
//   synchronous send(250, [lines])). test/integration/smtp-etrn.test.ts pins both, so a
//   library upgrade that changes the dispatch or the EHLO reply fails the suite.
// - XVERP (Postfix's MAIL parameter, xverp.ts) is added to the EHLO reply the same way, for the
//   clients that may give it (policy.xverp); test/integration/smtp-xverp.test.ts pins it.
// - error limits (error-limits.ts, Postfix's smtpd_soft/hard_error_limit): every 4xx/5xx reply
//   (but 452 too many recipients) and every junk command past the junk limit counts; past the
//   soft limit each command waits SMTP_ERROR_SLEEP_TIME before it is handled (a timer: other
//   sessions go on meanwhile), at the hard limit the next command gets `421 4.7.0 <host> Error:
//   too many errors`. _onCommand is where the library takes each command line (after the
//   previous one was answered); test/integration/smtp-error-limits.test.ts pins it.
// - AUTH (RFC 4954) is ours (handler_AUTH): the library's would answer 538 before STARTTLS, read
//   any garbage as base64, and let a PLAIN authorization identity through. Here the AUTH stage
//   (auth-stage.ts) decides whether AUTH is offered (the EHLO line is dropped when it is not) and
//   checks the credentials, sasl.ts reads the exchange strictly; a reply may wait (failure delay,
//   penalty) with the request deadline held, as for the error limits.
// - implicit TLS (TLS_PORT, RFC 8314): a socket handed over already wrapped in TLS makes a session
//   that is secure from its greeting (connectImplicitTls below does the handshake with the
//   library's own _upgrade, the one its `secure` option uses).
// - `DATA foo` and `RSET foo` get `501 5.5.4 Syntax: …` (RFC 5321 §4.1.1 gives them no
//   argument); the library ignored the argument of both.
// - the end of the session, told once (onEnded) whichever socket closes first: smtp-server's
//   upgrade() removes every listener of the plaintext socket, so a listener the service put
//   there would never hear of a session that did STARTTLS (its slot was kept for ever).
// The server subclass only makes connect() create this connection class (and return it).
import type net from 'node:net';
import tls from 'node:tls';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { SMTPConnection, type SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import type { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import type { EtrnResponder } from './etrn.js';
import { SessionErrors, type ErrorLimits } from './error-limits.js';
import { tapParser } from './parser-tap.js';
import { RequestDeadline, type DeadlineLimits } from './request-deadline.js';
import { ENHANCED_CODE_PREFIX, replyText, type SmtpReply } from './replies.js';
import type { AuthAnswer, AuthResponder } from './auth-stage.js';
import { LOGIN_PASSWORD_CHALLENGE, LOGIN_USERNAME_CHALLENGE, SASL_REPLIES, readAuthCommand, readField, readPlain, readResponse, type SaslCredentials } from './sasl.js';

export interface ConnectionPolicy {
  /** Milliseconds to wait before the greeting for this client address. */
  greetingDelayMs(remoteAddress: string): number;
  /** Unrecognized commands before `421` and disconnection; 0 = no limit. */
  maxBadCommands: number;
  /** Answers ETRN (advertised in EHLO); absent = ETRN is not offered (502). */
  etrn?: EtrnResponder | null;
  /** Per-request deadlines (SMTP_COMMAND_DEADLINE, SMTP_MIN_DATA_RATE). */
  deadlines: DeadlineLimits;
  /** Soft and hard error limits of a session. */
  errorLimits: ErrorLimits;
  /** Told when a session is closed for reaching the hard error limit (for the log). */
  tooManyErrors?(remoteAddress: string, errors: number): void;
  /** SMTP AUTH (auth-stage.ts); absent = AUTH is not offered (503). */
  auth?: AuthResponder | null;
  /** Whether a client (its address, authenticated or not) may give XVERP and sees it in EHLO (xverp.ts); absent = nobody. */
  xverp?(remoteAddress: string, authenticated: boolean): boolean;
}

/** The library's own threshold in `_onCommand` (`this._unrecognizedCommands >= 10`). */
const LIBRARY_BAD_COMMAND_LIMIT = 10;

export class TsubameSmtpServer extends SMTPServer {
  readonly policy: ConnectionPolicy;

  constructor(options: SMTPServerOptions, policy: ConnectionPolicy) {
    super(options);
    this.policy = policy;
  }

  override connect(socket: net.Socket | tls.TLSSocket, socketOptions?: SMTPConnectionOptions | null): TsubameConnection {
    // Same as SMTPServer.connect, with our connection class.
    const connection = new TsubameConnection(this, socket, socketOptions);
    if (socket instanceof tls.TLSSocket && socket.encrypted) {
      // Implicit TLS: the handshake is done, the session is secure from its greeting (ESMTPS, onSecure, no STARTTLS).
      connection.session.secure = connection.secure = true;
      connection.tlsOptions = socket.getCipher();
    }
    this.connections.add(connection);
    connection.on('error', (err: Error) => this._onError(err));
    connection.on('connect', (data: Parameters<SMTPServer['_onClientConnect']>[0]) => this._onClientConnect(data));
    connection.init();
    return connection;
  }

  /**
   * A socket of a TLS_PORT: the TLS handshake first (the library's _upgrade, with the server's
   * certificate and SNI contexts), within `deadlineMs`, then the session. `connected` gets the
   * session; a failed or late handshake closes the socket.
   */
  connectImplicitTls(socket: net.Socket, socketOptions: SMTPConnectionOptions, deadlineMs: number, connected: (connection: TsubameConnection) => void): void {
    const timer = deadlineMs > 0 ? setTimeout(() => socket.destroy(), deadlineMs) : null;
    timer?.unref();
    const upgrade = (this as unknown as LibraryServer)._upgrade.bind(this);
    upgrade(socket, (err, tlsSocket) => {
      if (timer) clearTimeout(timer);
      if (err || !tlsSocket || socket.destroyed) {
        socket.destroy();
        tlsSocket?.destroy();
        return;
      }
      connected(this.connect(tlsSocket, socketOptions));
    });
  }
}

/** The library's implicit TLS handshake (SMTPServer._upgrade, not in its type declarations). */
interface LibraryServer {
  _upgrade(socket: net.Socket, callback: (err: Error | null, tlsSocket?: tls.TLSSocket) => void): void;
}

export class TsubameConnection extends SMTPConnection {
  /** Unrecognized commands so far (the library's counter maps onto this, see below). */
  badCommands = 0;

  get policy(): ConnectionPolicy {
    return (this._server as TsubameSmtpServer).policy;
  }

  override init(): void {
    this._setListeners(() => {
      const maxClients = this._server.options.maxClients;
      if (maxClients && this._server.connections.size > maxClients) {
        return this.send(421, this.name + ' Too many connected clients, try again in a moment', false);
      }
      const delay = this.policy.greetingDelayMs(this.remoteAddress);
      if (delay <= 0) return this.connectionReady();
      // Anything the client sends before this fires is answered "421 You talk too soon".
      const readyTimer = setTimeout(() => this.connectionReady(), delay);
      readyTimer.unref();
    });
  }

  // Not initialised here: the library's constructor calls _createParser before our fields exist.
  private declare requestClock: RequestDeadline | undefined;
  private declare deadlineTimer: NodeJS.Timeout | undefined;
  private declare deadlineTimerAt: number | undefined;

  private get clock(): RequestDeadline {
    return (this.requestClock ??= new RequestDeadline(this.policy.deadlines));
  }

  private declare sessionErrors: SessionErrors | undefined;

  /** The session's error count (made on first use: send() runs before our fields exist). */
  get errors(): SessionErrors {
    return (this.sessionErrors ??= new SessionErrors(this.policy.errorLimits));
  }

  override _onCommand(command: Buffer, callback?: () => void): void {
    // Plaintext behind STARTTLS, early talkers, an AUTH continuation: the library's own cases.
    if (this._upgrading || !this._ready || this._nextHandler || this._closing || this._closed) return super._onCommand(command, callback);
    const verb = command.toString('latin1').split(' ', 1)[0]!.toUpperCase();
    const verdict = this.errors.beforeCommand(verb);
    if (verdict.action === 'close') {
      this.policy.tooManyErrors?.(this.remoteAddress, this.errors.errors);
      return this.send(421, `4.7.0 ${this.name} Error: too many errors`);
    }
    if (verdict.delayMs <= 0) return super._onCommand(command, callback);
    // The client waits for us meanwhile: the request deadline must not run against it.
    this._handlerPending = true;
    const timer = setTimeout(() => {
      this._handlerPending = false;
      if (!this._closing && !this._closed) super._onCommand(command, callback);
    }, verdict.delayMs);
    timer.unref();
  }

  override handler_DATA(command: Buffer, callback: () => void): void {
    if (hasArgument(command)) {
      this.send(501, '5.5.4 Syntax: DATA');
      return callback();
    }
    super.handler_DATA(command, callback);
  }

  override handler_RSET(command: Buffer, callback: () => void): void {
    if (hasArgument(command)) {
      this.send(501, '5.5.4 Syntax: RSET');
      return callback();
    }
    super.handler_RSET(command, callback);
  }

  override _createParser(): SMTPStream {
    const parser = super._createParser();
    const clock = this.clock;
    if (!clock.enabled) return parser;
    return tapParser(parser, {
      input: (chunk) => {
        clock.received(performance.now(), chunk);
        this.armDeadline();
      },
      dataStarted: () => {
        clock.dataStarted(performance.now());
        this.armDeadline();
      },
      dataEnded: (rest) => {
        clock.dataEnded(performance.now(), rest);
        this.armDeadline();
      },
    });
  }

  override upgrade(callback: () => void, secureCallback?: () => void): void {
    this.clock.handshakeStarted(performance.now());
    this.armDeadline();
    const plain = this._socket;
    super.upgrade(callback, () => {
      this.clock.handshakeEnded();
      secureCallback?.();
    });
    // upgrade() removed every listener of the plaintext socket (ours too); its close ends the
    // session as much as the TLS socket's does, which the library listens to.
    plain.once('close', () => this.ended());
  }

  override _onClose(): void {
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
    super._onClose();
    this.ended();
  }

  // Not initialised here (see requestClock): set by onEnded, read by ended.
  private declare endListeners: Array<() => void> | undefined;
  private declare hasEnded: boolean | undefined;

  /** `listener` is called once when the session is over (its socket closed, plaintext or TLS). */
  onEnded(listener: () => void): void {
    if (this.hasEnded) return void queueMicrotask(listener);
    (this.endListeners ??= []).push(listener);
  }

  private ended(): void {
    if (this.hasEnded) return;
    this.hasEnded = true;
    for (const listener of this.endListeners?.splice(0) ?? []) listener();
  }

  /** One timer per connection, set for the earliest deadline; it looks again when it fires. */
  private armDeadline(): void {
    const at = this.clock.deadline();
    if (at === null || this._closing || this._closed) return;
    if (this.deadlineTimer && (this.deadlineTimerAt ?? Infinity) <= at) return;
    clearTimeout(this.deadlineTimer);
    this.deadlineTimerAt = at;
    this.deadlineTimer = setTimeout(() => this.onDeadline(), Math.max(0, at - performance.now()));
    this.deadlineTimer.unref();
  }

  private onDeadline(): void {
    this.deadlineTimer = undefined;
    this.deadlineTimerAt = undefined;
    if (this._closing || this._closed) return;
    const now = performance.now();
    if (!this.clock.expired(now)) return this.armDeadline();
    if (this.serverIsBehind()) {
      this.clock.restart(now);
      return this.armDeadline();
    }
    // send() closes the connection after a 421 (also while a TLS handshake runs, when it writes nothing).
    this.send(421, `4.4.2 ${this.name} Error: timeout exceeded`);
  }

  /** The client waits for us: a handler has not called back, input is queued unread, or the message is being stored. */
  private serverIsBehind(): boolean {
    const parser = this._parser;
    if (this._handlerPending) return true;
    if (!parser) return false;
    return parser.writableLength > 0 || (Boolean(this._dataStream) && !parser._dataMode);
  }

  /** EHLO keywords to add to the reply handler_EHLO is building (set only during that call). */
  private ehloExtensions: string[] = [];
  /** The EHLO reply being built must not offer AUTH (before STARTTLS, or not on this service; set only during that call). */
  private ehloHidesAuth = false;

  override send(code: number, data?: string | string[] | null, context?: string | false): void {
    // Too many recipients (452 4.5.3) tells the client to send the rest in another transaction: flow control, not an error.
    if (context === 'DATA_OK') this.errors.messageAccepted();
    else if (context !== 'TOO_MANY_RECIPIENTS') this.errors.replied(code);
    if ((this.ehloExtensions.length > 0 || this.ehloHidesAuth) && code === 250 && Array.isArray(data)) {
      data = [...data.filter((line) => !(this.ehloHidesAuth && /^AUTH /i.test(line))), ...this.ehloExtensions];
      this.ehloExtensions = [];
      this.ehloHidesAuth = false;
    }
    super.send(code, data, typeof data === 'string' && ENHANCED_CODE_PREFIX.test(data) ? false : context);
  }

  override handler_EHLO(command: Buffer, callback: () => void): void {
    this.ehloExtensions = this.policy.etrn && !this._server.options.lmtp ? ['ETRN'] : [];
    if (this.policy.xverp?.(this.remoteAddress, Boolean(this.session.user))) this.ehloExtensions.push('XVERP');
    this.ehloHidesAuth = this.authAvailability() !== 'yes';
    try {
      super.handler_EHLO(command, callback);
    } finally {
      this.ehloExtensions = [];
      this.ehloHidesAuth = false;
    }
  }

  private authAvailability(): 'yes' | 'needs-tls' | 'no' {
    const auth = this.policy.auth;
    return auth && !this._server.options.lmtp ? auth.availability(this.secure) : 'no';
  }

  // ------------------------------------------------------------------ AUTH (RFC 4954)

  override handler_AUTH(command: Buffer, callback: () => void): void {
    const availability = this.authAvailability();
    if (availability === 'no') return this.reply(SASL_REPLIES.notOffered, callback);
    if (availability === 'needs-tls') return this.reply(SASL_REPLIES.needsTls, callback);
    if (this.session.user) return this.reply(SASL_REPLIES.already, callback);
    if (this.session.envelope?.mailFrom) return this.reply(SASL_REPLIES.inTransaction, callback);
    const read = readAuthCommand(command.toString('latin1'));
    if (!read.ok) return this.reply(read.reply, callback);
    const penalty = this.policy.auth!.admit(this.session);
    if (penalty) return this.answerAuth(penalty, callback);
    if (read.mechanism === 'PLAIN') {
      if (read.initial === null) return this.challenge('', (line, cb) => this.plainResponse(line, cb), callback);
      return this.plainResponse(read.initial, callback);
    }
    if (read.initial === null) return this.challenge(LOGIN_USERNAME_CHALLENGE, (line, cb) => this.loginUsername(line, cb), callback);
    this.loginUsername(read.initial, callback);
  }

  /** 334 and the handler of the client's next line (the library hands it over whatever it is). */
  private challenge(text: string, next: (line: string, callback: () => void) => void, callback: () => void): void {
    this._nextHandler = (line: Buffer, cb: () => void) => next(line.toString('latin1'), cb);
    this.send(334, text);
    callback();
  }

  private plainResponse(line: string, callback: () => void): void {
    const response = readResponse(line);
    if (response.kind !== 'bytes') return this.reply(response.kind === 'abort' ? SASL_REPLIES.aborted : response.reply, callback);
    const plain = readPlain(response.bytes);
    if (!plain.ok) return this.reply(plain.reply, callback);
    this.checkCredentials(plain.credentials, callback);
  }

  private loginUsername(line: string, callback: () => void): void {
    const response = readResponse(line);
    if (response.kind !== 'bytes') return this.reply(response.kind === 'abort' ? SASL_REPLIES.aborted : response.reply, callback);
    const login = readField(response.bytes);
    if (!login.ok || login.value === '') return this.reply(login.ok ? SASL_REPLIES.badField : login.reply, callback);
    this.challenge(LOGIN_PASSWORD_CHALLENGE, (next, cb) => this.loginPassword(login.value, next, cb), callback);
  }

  private loginPassword(login: string, line: string, callback: () => void): void {
    const response = readResponse(line);
    if (response.kind !== 'bytes') return this.reply(response.kind === 'abort' ? SASL_REPLIES.aborted : response.reply, callback);
    const password = readField(response.bytes);
    if (!password.ok) return this.reply(password.reply, callback);
    this.checkCredentials({ mechanism: 'LOGIN', login, authzid: '', password: password.value }, callback);
  }

  private checkCredentials(credentials: SaslCredentials, callback: () => void): void {
    this.policy.auth!.verify(credentials, this.session).then(
      (answer) => this.answerAuth(answer, callback),
      () => this.reply(SASL_REPLIES.temporary, callback),
    );
  }

  /** The answer, after its delay (the handler is pending meanwhile, so the request deadline waits too). */
  private answerAuth(answer: AuthAnswer, callback: () => void): void {
    const finish = (): void => {
      if (this._closing || this._closed) return callback();
      if (answer.user) {
        this.session.user = answer.user;
        this.session.transmissionType = this._transmissionType();
      }
      this.reply(answer.reply, callback);
    };
    if (answer.delayMs <= 0) return finish();
    setTimeout(finish, answer.delayMs).unref();
  }

  private reply(reply: SmtpReply, callback: () => void): void {
    this.send(reply.code, replyText(reply));
    callback();
  }

  // After the 221 the library half-closes and keeps reading until the client closes too. Clients
  // that close with a reset (smtp-source does) then make every session end in an ECONNRESET
  // read error, which Node turns into an exception with a stack trace. As Postfix's smtpd does,
  // the socket is closed once the 221 and our FIN are written; nothing after QUIT is read.
  override handler_QUIT(command: Buffer, callback: () => void): void {
    super.handler_QUIT(command, callback);
    const socket = this._socket;
    if (!socket.destroyed) socket.once('finish', () => socket.destroy());
  }

  handler_ETRN(command: Buffer, callback: () => void): void {
    const etrn = this.policy.etrn;
    if (!etrn || this._server.options.lmtp) {
      this.send(502, '5.5.1 Error: command not implemented');
      return callback();
    }
    const request = {
      line: command.toString('latin1'),
      remoteAddress: this.remoteAddress,
      greeted: Boolean(this.hostNameAppearsAs),
      inTransaction: Boolean(this.session.envelope?.mailFrom),
    };
    etrn(request).then(
      (reply) => this.send(reply.code, replyText(reply)),
      () => this.send(458, '4.3.0 Unable to queue messages'),
    ).finally(callback);
  }
}

/** A command line with something after its verb. */
function hasArgument(command: Buffer): boolean {
  return command.toString('latin1').trim().split(/\s+/).length > 1;
}

// The library only ever does `this._unrecognizedCommands = 0` (reset after a message) and
// `this._unrecognizedCommands++`, then disconnects when the value is >= 10. An accessor on our
// prototype turns that into MAX_BAD_COMMANDS: every increment counts one bad command, and the
// value read is 10 once the configured limit is reached.
Object.defineProperty(TsubameConnection.prototype, '_unrecognizedCommands', {
  configurable: true,
  get(this: TsubameConnection): number {
    const limit = this.policy.maxBadCommands;
    return limit > 0 && (this.badCommands ?? 0) >= limit ? LIBRARY_BAD_COMMAND_LIMIT : 0;
  },
  set(this: TsubameConnection, value: number) {
    this.badCommands = value === 0 ? 0 : (this.badCommands ?? 0) + 1;
  },
});
