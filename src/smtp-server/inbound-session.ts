// What the service knows of one inbound SMTP session, in one typed object per session (next to
// smtp-server's own session object, which carries the envelope, `secure` and `user`): decided
// once at connect, whether the client is internal and the channel its mail comes in on (switched
// by a successful AUTH to the saslswitchchannel); the authenticated user; for the transaction
// under way, each accepted recipient with where it is queued; and what the policy checks keep
// (session-policy.ts).
import type { SMTPServerSession } from 'smtp-server';
import { ipInCidrs, type Cidr } from '../common/cidr.js';
import type { DirectoryUser } from '../directory/types.js';
import type { AcceptedRecipient } from './envelope-plan.js';
import { newSessionPolicy, type SessionPolicy } from './session-policy.js';

export interface InboundSession {
  /** An INTERNAL_IP client: may relay (as an authenticated one may). */
  readonly internal: boolean;
  /** The channel the session's mail comes in on (tcp_intranet for internal clients; the saslswitchchannel once authenticated). */
  sourceChannel: string;
  /** The channel chosen at connect, which a STARTTLS (that ends an authentication) goes back to. */
  readonly connectChannel: string;
  /** The user a successful AUTH named (kept for the session: a reload does not change its rights); null before. */
  user: DirectoryUser | null;
  /** The SASL mechanism that user authenticated with (a milter's {auth_type}); null before. */
  authMechanism: string | null;
  /** Failed AUTH commands in this session (the channel's disconnectbadauthlimit). */
  authFailures: number;
  /**
   * The transaction's accepted recipients by address in lower case, as smtp-server keys its
   * envelope (a repeated RCPT replaces the earlier one there and here). Emptied at MAIL.
   */
  accepted: Map<string, AcceptedRecipient>;
  /** The policy checks' state: filters, SPF, hold/discard/delay of the transaction. */
  readonly policy: SessionPolicy;
}

/** Client addresses whose INTERNAL_IP verdict is kept (the configuration is fixed per service). */
const INTERNAL_CACHE_SIZE = 4096;

/** Whether a client address is in INTERNAL_IP; asked twice per connection (greeting delay, session), by few distinct addresses. */
export class InternalClients {
  private readonly byIp = new Map<string, boolean>();

  constructor(private readonly internalIp: readonly Cidr[]) {}

  isInternal(ip: string): boolean {
    let internal = this.byIp.get(ip);
    if (internal === undefined) {
      if (this.byIp.size >= INTERNAL_CACHE_SIZE) this.byIp.clear();
      this.byIp.set(ip, (internal = ipInCidrs(ip, this.internalIp)));
    }
    return internal;
  }
}

/** Each smtp-server session's InboundSession, made when a hook first asks (at connect). */
export class InboundSessions {
  private readonly bySession = new WeakMap<SMTPServerSession, InboundSession>();

  constructor(
    private readonly clients: InternalClients,
    private readonly channels: { channel: string; intranetChannel: string },
  ) {}

  of(session: SMTPServerSession): InboundSession {
    let facts = this.bySession.get(session);
    if (!facts) {
      const internal = this.clients.isInternal(session.remoteAddress);
      const channel = internal ? this.channels.intranetChannel : this.channels.channel;
      facts = { internal, sourceChannel: channel, connectChannel: channel, user: null, authMechanism: null, authFailures: 0, accepted: new Map(), policy: newSessionPolicy() };
      this.bySession.set(session, facts);
    }
    return facts;
  }
}

/** The authenticated user for a mail.log record (` sasl_username=`), if the session has one. */
export function userOf(session: InboundSession): { user?: string } {
  return session.user ? { user: session.user.name } : {};
}
