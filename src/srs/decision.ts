// When a forwarded copy's envelope sender is SRS-encoded, decided as Messaging Server decides it
// (channel keywords, default off): the message came in on a channel marked `sourcesrs`, this copy
// leaves on a channel marked `destinationsrs`, and the original MAIL FROM address rewrites to a
// channel marked `addresssrs` (a sender outside). With `sourcesrs destinationsrs addresssrs` on
// tcp_local, mail from the Internet forwarded back to the Internet (an alias or list member, an
// LDAP mailForwardingAddress) gets SRS0=…@SRS_DOMAIN; mail of local senders and mail delivered
// here keep their sender. Plain data in and out; the caller (where the queue files of one
// message are planned) applies it per destination channel.
import type { SrsChannelFlags } from '../config/types.js';
import { srsForward, type SrsSettings } from './srs.js';

export interface SrsRoute {
  /** The channel the message came in on. */
  source: SrsChannelFlags | undefined;
  /** The channel this copy is queued to. */
  destination: SrsChannelFlags | undefined;
  /** The channel the original MAIL FROM address rewrites to; undefined for `<>` or when it routes nowhere. */
  sender: SrsChannelFlags | undefined;
}

export type SrsSenderDecision =
  | { rewrite: false; from: string; reason: string }
  | { rewrite: true; from: string; original: string };

/** Whether the channels ask for SRS on this copy (sourcesrs, destinationsrs, addresssrs all set). */
export function srsRequested(route: SrsRoute): boolean {
  return Boolean(route.source?.source && route.destination?.destination && route.sender?.address);
}

/** The envelope sender of one copy: SRS-encoded when the channels ask for it and an SRS secret exists. */
export function senderForCopy(from: string, route: SrsRoute, settings: SrsSettings | null, now: number): SrsSenderDecision {
  if (!srsRequested(route)) return { rewrite: false, from, reason: 'the channels do not ask for SRS' };
  if (!settings || settings.secrets.length === 0) return { rewrite: false, from, reason: 'no SRS secret (etc/srs.secrets)' };
  const r = srsForward(from, settings, now);
  return r.kind === 'rewritten' ? { rewrite: true, from: r.address, original: from } : { rewrite: false, from, reason: r.reason };
}
