// VERP, variable envelope return paths (pure): Postfix's XVERP form, where a message from
// `owner@list.example` to `member@domain` is sent with the envelope sender
// `owner+member=domain@list.example` ("+=" are the delimiters, option.dat VERP_DELIMITERS), so a
// bounce says by its address alone which member bounced, whatever the bouncing MTA writes.
// The member's local part may hold anything an address may (quoted strings, "+", "=", "@"): the
// domain is what follows the last second delimiter, and the owner what precedes the first, so
// an owner whose local part holds the first delimiter cannot be encoded (verpSender says null).
// An encoded local part that is not a dot-atom is written as a quoted string.
// A message is VERPed when its channel has the `verp` keyword or when it asked for it itself
// (XVERP on MAIL, kept in its envelope's MailParams.verp with its own delimiters).
import type { Channel } from '../config/types.js';
import type { MailParams } from '../queue/types.js';
import { canonicalLocalPart, isValidDomain, parseAddress, unquoteLocalPart } from '../common/address.js';
import { DEFAULT_VERP_DELIMITERS } from '../config/verp-options.js';

/**
 * The envelope sender for `recipient` of a message from `sender`: `owner+member=domain@ownerdomain`,
 * or null when there is none to make (the null sender of a notice, a sender or recipient without
 * a domain, an owner whose local part holds the first delimiter).
 */
export function verpSender(sender: string, recipient: string, delimiters: string = DEFAULT_VERP_DELIMITERS): string | null {
  const [first, second] = [delimiters[0]!, delimiters[1]!];
  const owner = parseAddress(sender);
  const member = parseAddress(recipient);
  if (!owner || !member || owner.domain === null || member.domain === null || owner.route.length > 0) return null;
  const ownerLocal = unquoteLocalPart(owner.localPart);
  if (ownerLocal === '' || ownerLocal.includes(first)) return null;
  const local = `${ownerLocal}${first}${unquoteLocalPart(member.localPart)}${second}${member.domain}`;
  return `${writeLocalPart(local)}@${owner.domain}`;
}

/**
 * The delimiters a message on `channel` is VERPed with, or null when it is not: the message's own
 * when it asked (XVERP, as Postfix takes them), else `channelDelimiters` (VERP_DELIMITERS) on a
 * channel with `verp`.
 */
export function verpDelimitersOf(channel: Pick<Channel, 'verp'> | undefined, params: Pick<MailParams, 'verp'>, channelDelimiters: string = DEFAULT_VERP_DELIMITERS): string | null {
  return params.verp ?? (channel?.verp ? channelDelimiters : null);
}

/**
 * The envelope sender (MAIL FROM) of a transaction of `channel`: its `envelopesender` when set,
 * else the message's; VERPed (`delimiters` not null, verpDelimitersOf), made the recipient's own
 * (a VERPed message is sent one recipient per transaction: `recipient` is that one). A sender
 * that cannot be VERPed is kept as it is.
 */
export function transactionSender(channel: Pick<Channel, 'senderRewrite'>, envelopeFrom: string, recipient: string, delimiters: string | null): string {
  const from = channel.senderRewrite ?? envelopeFrom;
  return delimiters !== null ? (verpSender(from, recipient, delimiters) ?? from) : from;
}

export interface VerpAddress {
  /** The list's address: the owner as it was before encoding (`owner@list.example`). */
  owner: string;
  /** The member the bounce is for (`member@domain`), local part quoted as needed. */
  member: string;
}

/** The owner and member a VERP address stands for, or null when it is not one. */
export function decodeVerp(address: string, delimiters: string = DEFAULT_VERP_DELIMITERS): VerpAddress | null {
  const [first, second] = [delimiters[0]!, delimiters[1]!];
  const parsed = parseAddress(address.trim());
  if (parsed?.domain == null || parsed.route.length > 0) return null;
  const local = unquoteLocalPart(parsed.localPart);
  const start = local.indexOf(first);
  if (start <= 0) return null;
  const rest = local.slice(start + 1);
  const end = rest.lastIndexOf(second);
  if (end <= 0 || end === rest.length - 1) return null;
  const memberLocal = rest.slice(0, end);
  const memberDomain = rest.slice(end + 1);
  if (!isValidDomain(memberDomain) || memberDomain.endsWith('.')) return null;
  return { owner: `${writeLocalPart(local.slice(0, start))}@${parsed.domain}`, member: `${writeLocalPart(memberLocal)}@${memberDomain}` };
}

/** A local part's content written as an address takes it: a dot-atom as it is, anything else quoted. */
function writeLocalPart(content: string): string {
  return canonicalLocalPart(`"${content.replace(/["\\]/g, '\\$&')}"`);
}
