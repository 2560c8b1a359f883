// The envelope sender of each queue file one message becomes, where the files are planned: the
// SMTP server's enqueue (smtp-server/envelope-plan.ts) and the local channel's list and
// forwarding expansion (channels/local-expansion.ts). The decision is decision.ts's
// senderForCopy on the channels: the one the message came in on, the copy's destination, and
// the one the sender address rewrites to (found once per message, and only when the source
// channel asks for SRS at all).
import type { Channel } from '../config/types.js';
import { senderForCopy, type SrsSenderDecision } from './decision.js';
import type { SrsSettings } from './srs.js';

/**
 * The rewrite rules as asked here: the channel a sender address rewrites to (src/rewrite's
 * Rewriter fits; named here because src/srs sits beside src/rewrite and imports only below it).
 */
interface SenderRewriter {
  rewrite: (address: string, ctx: { sourceChannel: string; direction: 'from' }) => { channel: string | null; error: string | null };
}

export interface CopySenderInput {
  channels: ReadonlyMap<string, Channel>;
  rewriter: SenderRewriter;
  /** null: no SRS secret, senders are never rewritten. */
  settings: SrsSettings | null;
  /** The channel the message came in on. */
  sourceChannel: string;
  /** The envelope sender of the copies ('' for the null sender). */
  from: string;
  now: number;
}

/** The sender decision for a copy queued to `destination` (a channel name), cached per destination. */
export function copySenders(input: CopySenderInput): (destination: string) => SrsSenderDecision {
  const { channels, settings, from } = input;
  const source = channels.get(input.sourceChannel.toLowerCase())?.srs;
  const unchanged: SrsSenderDecision = { rewrite: false, from, reason: 'the channels do not ask for SRS' };
  if (!settings || !source?.source || from === '') return () => unchanged;
  let senderChannel: Channel | undefined | null = null;
  const senderFlags = () => {
    if (senderChannel === null) {
      const r = input.rewriter.rewrite(from, { sourceChannel: input.sourceChannel, direction: 'from' });
      senderChannel = r.channel && !r.error ? channels.get(r.channel.toLowerCase()) : undefined;
    }
    return senderChannel?.srs;
  };
  const cache = new Map<string, SrsSenderDecision>();
  return (destination) => {
    const key = destination.toLowerCase();
    let decision = cache.get(key);
    if (!decision) {
      decision = senderForCopy(from, { source, destination: channels.get(key)?.srs, sender: senderFlags() }, settings, input.now);
      cache.set(key, decision);
    }
    return decision;
  };
}
