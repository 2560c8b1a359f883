// The RCPT decision, from the rewrite result: where the recipient is queued, or why it is refused.
// Relay policy as Messaging Server's INTERNAL_IP + Postfix's reject_unauth_destination: clients
// that may relay (internal or authenticated) send anywhere; others only to channels that do not
// send mail on over SMTP (the local channel `l`, hosted domains, bitbucket…). Pure: the routing
// is src/rewrite/recipient-route.ts, the local user lookup is the caller's next step (the directory).
import type { Channel } from '../config/types.js';
import { routeRecipient, type RewriteOutcome } from '../rewrite/index.js';
import { REPLIES, relayDenied, unroutable, type SmtpReply } from './replies.js';
import { isRelayChannel } from './settings.js';

export type RecipientDecision =
  | {
      ok: true;
      /** Destination channel (its name as configured). */
      channel: string;
      /** Envelope To to queue. */
      address: string;
      /** For channel `l`: the local part whose user must exist (canonical: RFC 5321 quoting resolved). */
      localPart: string | null;
    }
  | { ok: false; reply: SmtpReply };

export function decideRecipient(
  rcpt: string,
  outcome: RewriteOutcome,
  channels: ReadonlyMap<string, Channel>,
  mayRelay: boolean,
): RecipientDecision {
  const route = routeRecipient(outcome, channels);
  if (!route.ok) return { ok: false, reply: route.temporary ? REPLIES.directoryUnavailable : unroutable(route.error) };
  const denied = relayRefusal(rcpt, route.channel, mayRelay);
  if (denied) return { ok: false, reply: denied };
  return { ok: true, channel: route.channel.name, address: route.address, localPart: route.localPart };
}

/** The refusal of a recipient routed to `channel` for a client that may not relay, or null. */
export function relayRefusal(rcpt: string, channel: Channel, mayRelay: boolean): SmtpReply | null {
  return !mayRelay && isRelayChannel(channel) ? relayDenied(rcpt) : null;
}
