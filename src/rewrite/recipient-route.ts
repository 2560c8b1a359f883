// Where a rewritten recipient is queued: the rewrite result checked against the configured
// channels and, for the local channel `l`, the one canonical spelling of the local part (the
// user RCPT checks is the one queued and delivered to: `"alice"@host` is alice@host). Pure.
// The SMTP server adds its relay policy on top (src/smtp-server/recipient-policy.ts); the
// directory asks it which addresses are local (src/directory/locality.ts).
import { canonicalLocalPart, formatAddress, parseAddress } from '../common/address.js';
import type { Channel } from '../config/types.js';

/** The local delivery channel, whose recipients must be known users. */
export const LOCAL_CHANNEL = 'l';

/** What routing needs of a rewrite result. */
export interface RewriteOutcome {
  channel: string | null;
  rewritten: string | null;
  error: string | null;
  /** The error is temporary (`$V`/`$Z` before the hosted domains are known): 4xx, a deferral. */
  temporary?: true;
}

export type RecipientRoute =
  /** `address`: the envelope To to queue; `localPart`: for channel `l`, the user that must exist. */
  | { ok: true; channel: Channel; address: string; localPart: string | null }
  /** No channel takes it: the rewrite's error, if it gave one. */
  | { ok: false; error: string | null; temporary?: true };

export function routeRecipient(outcome: RewriteOutcome, channels: ReadonlyMap<string, Channel>): RecipientRoute {
  if (outcome.temporary) return { ok: false, error: outcome.error, temporary: true };
  if (!outcome.channel || !outcome.rewritten || outcome.error) return { ok: false, error: outcome.error };
  const channel = channels.get(outcome.channel.toLowerCase());
  if (!channel) return { ok: false, error: `no channel ${outcome.channel}` };
  if (channel.name.toLowerCase() !== LOCAL_CHANNEL) return { ok: true, channel, address: outcome.rewritten, localPart: null };
  const parsed = parseAddress(outcome.rewritten);
  if (!parsed) return { ok: true, channel, address: outcome.rewritten, localPart: outcome.rewritten };
  const localPart = canonicalLocalPart(parsed.localPart);
  return { ok: true, channel, address: formatAddress({ ...parsed, localPart }), localPart };
}
