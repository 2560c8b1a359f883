// The RCPT decision, from the rewrite result: where the recipient is queued, or why it is refused.
// Relay policy as Messaging Server's INTERNAL_IP + Postfix's reject_unauth_destination: clients
// that may relay (internal or authenticated) send anywhere; others only to channels that do not
// send mail on over SMTP (the local channel `l`, hosted domains, bitbucket…). Pure: the local
// user lookup is the caller's second step (see LocalUsers).
import type { Channel } from '../config/types.js';
import { canonicalLocalPart, formatAddress, parseAddress } from '../rewrite/index.js';
import { relayDenied, unroutable, type SmtpReply } from './replies.js';
import { isRelayChannel } from './settings.js';

/** The local delivery channel, whose recipients must be known users. */
export const LOCAL_CHANNEL = 'l';

export interface RewriteOutcome {
  channel: string | null;
  rewritten: string | null;
  error: string | null;
}

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
  if (!outcome.channel || !outcome.rewritten || outcome.error) return { ok: false, reply: unroutable(outcome.error) };
  const channel = channels.get(outcome.channel.toLowerCase());
  if (!channel) return { ok: false, reply: unroutable(`no channel ${outcome.channel}`) };
  if (!mayRelay && isRelayChannel(channel)) return { ok: false, reply: relayDenied(rcpt) };
  if (channel.name.toLowerCase() !== LOCAL_CHANNEL) return { ok: true, channel: channel.name, address: outcome.rewritten, localPart: null };
  // One spelling for the local channel, computed here once: the user RCPT checks is the one
  // queued and delivered to (`"alice"@host` is alice@host).
  const parsed = parseAddress(outcome.rewritten);
  if (!parsed) return { ok: true, channel: channel.name, address: outcome.rewritten, localPart: outcome.rewritten };
  const localPart = canonicalLocalPart(parsed.localPart);
  return { ok: true, channel: channel.name, address: formatAddress({ ...parsed, localPart }), localPart };
}
