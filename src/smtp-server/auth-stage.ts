// The AUTH stage: what the SMTP server answers to credentials (SASL PLAIN or LOGIN, read by the
// connection with sasl.ts). AUTH is offered on a service whose channel has maysaslserver or
// mustsaslserver, only over TLS unless the channel has saslcleartext. The directory checks the
// password (directory/source.ts: etc/users or LDAP); a success makes the session the user's and
// switches it to the saslswitchchannel, whose mail may relay. A failure is answered after
// SASL_FAILURE_DELAY with one reply whatever went wrong (unknown user, wrong password, locked,
// another authorization identity), so neither the reply nor its time tells whether a user
// exists; it is counted for the client address and the login name (auth-failures.ts), and past
// SASL_FAILURES_PER_ADDRESS or SASL_FAILURES_PER_USER, or the channel's disconnectbadauthlimit
// in one session, AUTH gets SASL_PENALTY_DELAY then 421, with a J record in mail.log.
import type { SMTPServerSession } from 'smtp-server';
import type { Logger } from '../common/logger.js';
import type { MailLogRecord } from '../common/mail-log.js';
import type { Channel } from '../config/types.js';
import type { DirectoryUser, UserDirectory } from '../directory/types.js';
import type { AuthFailures } from './auth-failures.js';
import type { InboundSession, InboundSessions } from './inbound-session.js';
import { formatReply, oneLine, type SmtpReply } from './replies.js';
import { SASL_REPLIES, type SaslCredentials } from './sasl.js';
import type { InboundSettings } from './settings.js';

/** What the connection sends, and when. */
export interface AuthAnswer {
  reply: SmtpReply;
  /** Wait this long before replying (ms; the request deadline does not run meanwhile). */
  delayMs: number;
  /** On success: the name smtp-server keeps as the session's user (and Received: says ESMTPSA). */
  user?: string;
}

/** Whether AUTH may be used now: yes, only after STARTTLS, or not on this service. */
export type AuthAvailability = 'yes' | 'needs-tls' | 'no';

/** What the connection (connection.ts) asks of the service while it runs an AUTH exchange. */
export interface AuthResponder {
  availability(secure: boolean): AuthAvailability;
  /** At the AUTH command, before any credentials: the penalty for an address past its limit, or null. */
  admit(smtp: SMTPServerSession): AuthAnswer | null;
  /** The credentials read: checked. Never rejects. */
  verify(credentials: SaslCredentials, smtp: SMTPServerSession): Promise<AuthAnswer>;
}

/** Counts of one server process since it started, for the metrics. */
export interface AuthCounters {
  succeeded: number;
  failed: number;
  /** AUTH answered 421: a client address or login past its limit, or a session past disconnectbadauthlimit. */
  refused: number;
}

export function newAuthCounters(): AuthCounters {
  return { succeeded: 0, failed: 0, refused: 0 };
}

export interface AuthStageDeps {
  settings: InboundSettings;
  sessions: InboundSessions;
  directory: UserDirectory;
  failures: AuthFailures;
  counters: AuthCounters;
  channelByName: ReadonlyMap<string, Channel>;
  /** STARTTLS can be offered (a certificate and maytlsserver/musttlsserver). */
  startTls: boolean;
  logger: Logger;
  logMail(records: MailLogRecord[]): void;
}

type Limit = 'address' | 'user' | 'session';

export class AuthStage implements AuthResponder {
  constructor(private readonly deps: AuthStageDeps) {}

  availability(secure: boolean): AuthAvailability {
    const { sasl } = this.deps.settings;
    if (sasl.server === 'none') return 'no';
    if (secure || sasl.cleartext) return 'yes';
    return this.deps.startTls ? 'needs-tls' : 'no';
  }

  admit(smtp: SMTPServerSession): AuthAnswer | null {
    if (this.deps.failures.blocked(smtp.remoteAddress) !== 'address') return null;
    return this.refused(smtp, this.deps.sessions.of(smtp), null, 'address');
  }

  async verify(credentials: SaslCredentials, smtp: SMTPServerSession): Promise<AuthAnswer> {
    const { failures, directory, logger } = this.deps;
    const session = this.deps.sessions.of(smtp);
    const { login } = credentials;
    const blocked = failures.blocked(smtp.remoteAddress, login);
    if (blocked) return this.refused(smtp, session, login, blocked);
    // RFC 4616: an authorization identity other than the login asks to act as someone else; nobody may.
    if (credentials.authzid !== '' && credentials.authzid.toLowerCase() !== login.toLowerCase()) return this.failed(smtp, session, credentials, 'foreign-authzid');
    let result;
    try {
      result = await directory.authenticate(login, credentials.password);
    } catch (err) {
      result = { ok: false as const, reason: 'unavailable' as const, why: (err as Error).message };
    }
    if (result.ok) return this.succeeded(smtp, session, credentials, result.user);
    if (result.reason === 'invalid') return this.failed(smtp, session, credentials, result.why);
    logger.error({ cid: smtp.id, client: smtp.remoteAddress, source: directory.source, why: result.why }, 'AUTH could not be checked: the directory is unavailable');
    return { reply: SASL_REPLIES.temporary, delayMs: 0 };
  }

  private succeeded(smtp: SMTPServerSession, session: InboundSession, credentials: SaslCredentials, user: DirectoryUser): AuthAnswer {
    const { settings, channelByName, counters, logger } = this.deps;
    session.user = user;
    session.authMechanism = credentials.mechanism;
    // The session's own channel names where authenticated mail goes, else the service's channel.
    const target = channelByName.get(session.sourceChannel.toLowerCase())?.sasl?.switchChannel ?? settings.sasl.switchChannel;
    const switched = target ? (channelByName.get(target.toLowerCase())?.name ?? null) : null;
    if (switched) session.sourceChannel = switched;
    counters.succeeded++;
    logger.info({ cid: smtp.id, client: smtp.remoteAddress, user: user.name, mechanism: credentials.mechanism, channel: session.sourceChannel }, `${user.name} authenticated using ${credentials.mechanism}`);
    return { reply: SASL_REPLIES.success, delayMs: 0, user: user.name };
  }

  private failed(smtp: SMTPServerSession, session: InboundSession, credentials: SaslCredentials, why: string): AuthAnswer {
    const { failures, counters, logger, settings } = this.deps;
    failures.failed(smtp.remoteAddress, credentials.login);
    session.authFailures++;
    counters.failed++;
    // The login is logged (an operator wants to see which account is attacked), never the password.
    logger.info({ cid: smtp.id, client: smtp.remoteAddress, login: printable(credentials.login), mechanism: credentials.mechanism, why, failures: session.authFailures }, 'AUTH failed');
    const limit = settings.sasl.badAuthLimit;
    if (limit > 0 && session.authFailures >= limit) return this.refused(smtp, session, credentials.login, 'session', settings.sasl.limits.failureDelayMs);
    return { reply: SASL_REPLIES.failed, delayMs: settings.sasl.limits.failureDelayMs };
  }

  /** 421 after a pause: the J record, the count, the log line. */
  private refused(smtp: SMTPServerSession, session: InboundSession, login: string | null, limit: Limit, delayMs = this.deps.settings.sasl.limits.penaltyDelayMs): AuthAnswer {
    const { counters, logger, settings } = this.deps;
    counters.refused++;
    const reply: SmtpReply = { code: 421, enhanced: '4.7.0', text: `${settings.hostName} Error: too many failed authentications, try again later` };
    this.deps.logMail([
      {
        event: 'J',
        id: '',
        source: session.sourceChannel,
        destination: '',
        size: 0,
        from: '',
        recipient: '',
        status: `${formatReply(reply)} client=${smtp.remoteAddress} limit=${limit}`,
        ...(login !== null ? { user: printable(login) } : {}),
      },
    ]);
    logger.warn({ cid: smtp.id, client: smtp.remoteAddress, login: login === null ? undefined : printable(login), limit }, 'AUTH refused: too many failed authentications');
    return { reply, delayMs };
  }
}

/** A login for the logs: printable, bounded. */
function printable(login: string): string {
  return oneLine(login).replace(/[^\x21-\x7e]/g, '?').slice(0, 128);
}
