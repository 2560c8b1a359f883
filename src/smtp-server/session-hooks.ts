// The inbound service's smtp-server hooks, one method per hook as nodemailer's server has one
// handler_VERB per command: each takes the session's facts (inbound-session.ts), runs its stage
// (connect-checks.ts, mail-checks.ts, rcpt-checks.ts, data-stage.ts with data-checks.ts) and
// answers smtp-server. onSecure logs the TLS in use as Postfix does. A policy rule's refusal at
// connect or MAIL is a J record in mail.log (at RCPT and DATA every refusal is); onClose closes
// the session's milter connections.
import type tls from 'node:tls';
import type { SMTPServerAddress, SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { CONNECT_CHECKS } from './connect-checks.js';
import { receiveData, type DataStageDeps } from './data-stage.js';
import { userOf, type InboundSession, type InboundSessions } from './inbound-session.js';
import { MAIL_CHECKS } from './mail-checks.js';
import { RCPT_CHECKS, acceptedRecipient, readRecipient } from './rcpt-checks.js';
import { REPLIES, formatReply, hookError, type SmtpReply } from './replies.js';
import type { InboundHooks } from './server-options.js';
import { newTransactionPolicy } from './session-policy.js';
import { refusalStatus, runChecks, type StageServices, type Verdict } from './stages.js';

type HookCallback = (err?: Error | null) => void;

export class SessionHooks {
  /** Messages being received now (shutdown waits for their answers). */
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly services: StageServices;

  constructor(
    private readonly sessions: InboundSessions,
    private readonly data: DataStageDeps,
  ) {
    this.services = data.services;
  }

  /** The hooks in the form smtp-server's options take them. */
  forServer(): InboundHooks {
    return {
      onConnect: (smtp, callback) => this.onConnect(smtp, callback),
      onSecure: (socket, smtp, callback) => this.onSecure(socket, smtp, callback),
      onMailFrom: (address, smtp, callback) => this.onMailFrom(address, smtp, callback),
      onRcptTo: (address, smtp, callback) => this.onRcptTo(address, smtp, callback),
      onData: (stream, smtp, callback) => this.onData(stream, smtp, callback),
      onClose: (smtp) => this.onClose(smtp),
    };
  }

  onConnect(smtp: SMTPServerSession, callback: HookCallback): void {
    const session = this.sessions.of(smtp);
    runChecks(
      CONNECT_CHECKS,
      { smtp, session, services: this.services },
      (v) => {
        this.logPolicyRefusal(v, session, '', '');
        callback(refusalOf(v));
      },
      (err) => this.checkFailed(err, callback),
    );
  }

  /** The session is over: its filters' connections are closed. */
  onClose(smtp: SMTPServerSession): void {
    const policy = this.sessions.of(smtp).policy;
    policy.ended = true;
    policy.milter?.close();
  }

  onSecure(socket: unknown, smtp: SMTPServerSession, callback: HookCallback): void {
    // RFC 3207 §4.2: what was learnt before STARTTLS is forgotten; smtp-server drops the user, we the switch it made.
    const session = this.sessions.of(smtp);
    if (!smtp.user && session.user) {
      session.user = null;
      session.authMechanism = null;
      session.sourceChannel = session.connectChannel;
    }
    // As Postfix logs it: `TLS connection established from [ip]: TLSv1.3 with cipher …`.
    const cipher = (socket as tls.TLSSocket).getCipher?.();
    const tlsUse = describeTls(cipher?.version ?? null, cipher?.name ?? null);
    this.services.logger.info({ cid: smtp.id, client: smtp.remoteAddress, tlsVersion: cipher?.version, cipher: cipher?.name }, `TLS connection established from [${smtp.remoteAddress}]: ${tlsUse}`);
    callback();
  }

  onMailFrom(address: SMTPServerAddress, smtp: SMTPServerSession, callback: HookCallback): void {
    const session = this.sessions.of(smtp);
    session.accepted = new Map(); // smtp-server calls this hook only when no transaction is under way
    session.policy.tx = newTransactionPolicy();
    runChecks(
      MAIL_CHECKS,
      { address, smtp, session, services: this.services },
      (v) => {
        this.logPolicyRefusal(v, session, address.address, '');
        callback(refusalOf(v));
      },
      (err) => this.checkFailed(err, callback),
    );
  }

  onRcptTo(address: SMTPServerAddress, smtp: SMTPServerSession, callback: HookCallback): void {
    const session = this.sessions.of(smtp);
    const read = readRecipient(address, smtp, session, this.services);
    if (!read.ok) return callback(this.refuseRecipient(address, smtp, session, read.reply, read.destination));
    const rcpt = read.rcpt;
    runChecks(
      RCPT_CHECKS,
      rcpt,
      (v) => {
        if (v.kind === 'refuse') return callback(this.refuseRecipient(address, smtp, session, v.reply, v.destination ?? '', refusalStatus(v)));
        if (v.kind === 'error') return callback(hookError(v.reply));
        session.accepted.set(address.address.toLowerCase(), acceptedRecipient(rcpt));
        callback();
      },
      (err) => this.checkFailed(err, callback),
    );
  }

  onData(stream: SMTPServerDataStream, smtp: SMTPServerSession, callback: (err?: Error | null, message?: string) => void): void {
    const work = receiveData(stream, smtp, this.sessions.of(smtp), this.data).then(
      (result) => (result.ok ? callback(null, result.text) : callback(hookError(result.reply))),
      (err: Error) => {
        this.services.logger.error({ err: err.message, stack: err.stack }, 'message reception failed');
        callback(hookError(REPLIES.localError));
      },
    );
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  /** Resolves once every message being received has been answered. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
  }

  /** A refused RCPT: its J record in mail.log, and the error smtp-server answers with. */
  private refuseRecipient(address: SMTPServerAddress, smtp: SMTPServerSession, session: InboundSession, reply: SmtpReply, destination: string, status = formatReply(reply)): Error {
    const from = smtp.envelope.mailFrom ? smtp.envelope.mailFrom.address : '';
    this.data.logMail([{ event: 'J', id: '', source: session.sourceChannel, destination, size: 0, from, recipient: address.address, status, ...userOf(session) }]);
    return hookError(reply);
  }

  /** A refusal at connect or MAIL by a policy rule: one J record naming it (no recipient known yet). */
  private logPolicyRefusal(v: Verdict, session: InboundSession, from: string, recipient: string): void {
    if (v.kind !== 'refuse' || !v.rule) return;
    this.data.logMail([{ event: 'J', id: '', source: session.sourceChannel, destination: v.destination ?? '', size: 0, from, recipient, status: refusalStatus(v) }]);
  }

  /** A check that threw: the client keeps its mail (4xx), the log says why. */
  private checkFailed(err: unknown, callback: HookCallback): void {
    this.services.logger.error({ err: (err as Error).message }, 'an SMTP check failed');
    callback(hookError(REPLIES.localError));
  }
}

/** The error a refusing verdict gives smtp-server, else nothing (go on). */
function refusalOf(v: Verdict): Error | undefined {
  return v.kind === 'refuse' || v.kind === 'error' ? hookError(v.reply) : undefined;
}

/** `TLSv1.3 with cipher TLS_AES_256_GCM_SHA384`, Postfix's words for a session's TLS. */
function describeTls(version: string | null, cipher: string | null): string {
  return `${version ?? 'TLS'} with cipher ${cipher ?? 'unknown'}`;
}
