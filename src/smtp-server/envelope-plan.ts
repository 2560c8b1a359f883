// The queue files one accepted message becomes: one per destination channel (recipients in RCPT
// order, each address once), split further when the channel says `single` (a file per recipient) or `addrsperfile N`.
// Each file's envelope sender is the message's, or what `senderFor` makes of it for that channel
// (SRS: srs/copy-sender.ts).
import type { Channel } from '../config/types.js';
import type { Envelope, EnvelopeDraft, MailParams, QueuedRecipient } from '../queue/types.js';
import { recipientsPerFile } from '../queue/recipients-per-file.js';
import type { Rewriter } from '../rewrite/index.js';
import { copySenders, type SrsSettings } from '../srs/index.js';
import { DEFAULT_VERP_DELIMITERS } from '../config/verp-options.js';
import { xverpDelimiters } from './xverp.js';

export interface AcceptedRecipient {
  channel: string;
  /** Rewritten envelope To. */
  address: string;
  /** As given in RCPT TO. */
  original: string;
  orcpt: string | null;
  notify: string[] | null;
  /** Accepted but not to be queued (an access table's $B): why. */
  discard?: string;
}

/** What every file of one message shares. */
export type MessageFacts = Pick<Envelope, 'from' | 'mailParams' | 'sourceChannel' | 'clientAddress' | 'clientHelo' | 'arrival'>;

export function planDrafts(facts: MessageFacts, recipients: AcceptedRecipient[], channels: ReadonlyMap<string, Channel>, senderFor?: (channel: string) => string): EnvelopeDraft[] {
  const byChannel = new Map<string, AcceptedRecipient[]>();
  // Two RCPTs that rewrite to one address (`"alice"@x` and `alice@x`) are one recipient, queued
  // once (the first one given), as smtp-server already does for two spellings differing in case.
  const seen = new Set<string>();
  for (const r of recipients) {
    const key = `${r.channel}\0${r.address.toLowerCase()}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const list = byChannel.get(r.channel);
    if (list) list.push(r);
    else byChannel.set(r.channel, [r]);
  }
  const drafts: EnvelopeDraft[] = [];
  for (const [channel, list] of byChannel) {
    const from = senderFor ? senderFor(channel) : facts.from;
    for (const group of split(list, recipientsPerFile(channels.get(channel.toLowerCase())))) {
      drafts.push({
        channel,
        from,
        mailParams: { ...facts.mailParams },
        sourceChannel: facts.sourceChannel,
        clientAddress: facts.clientAddress,
        clientHelo: facts.clientHelo,
        arrival: facts.arrival,
        recipients: group.map(toQueued),
      });
    }
  }
  return drafts;
}

/** planDrafts' `senderFor` for a message: its sender, SRS-encoded for the channels that ask for it. */
export function senderPerChannel(channels: ReadonlyMap<string, Channel>, rewriter: Rewriter, srs: SrsSettings | null, facts: MessageFacts): (channel: string) => string {
  const decide = copySenders({ channels, rewriter, settings: srs, sourceChannel: facts.sourceChannel, from: facts.from, now: facts.arrival.getTime() });
  return (channel) => decide(channel).from;
}

function split<T>(list: T[], size: number): T[][] {
  if (size <= 0 || list.length <= size) return [list];
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
  return out;
}

function toQueued(r: AcceptedRecipient): QueuedRecipient {
  return { address: r.address, original: r.original, orcpt: r.orcpt, notify: r.notify, state: 'pending', status: null };
}

/**
 * MAIL FROM parameters as smtp-server parsed them (`args` keys upper-case), checked by the MAIL
 * stage → the envelope's MailParams; a bare XVERP takes `verpDelimiters` (VERP_DELIMITERS).
 */
export function mailParamsFrom(
  args: Record<string, string | true> | false,
  dsn: { ret: string | null; envid: string | null } | undefined,
  smtpUtf8: boolean,
  verpDelimiters: string = DEFAULT_VERP_DELIMITERS,
): MailParams {
  const params: MailParams = {};
  const a = args || {};
  if (typeof a.SIZE === 'string' && /^\d+$/.test(a.SIZE)) params.size = Number(a.SIZE);
  if (typeof a.BODY === 'string') {
    const body = a.BODY.toUpperCase();
    if (body === '7BIT' || body === '8BITMIME' || body === 'BINARYMIME') params.body = body;
  }
  if (dsn?.ret === 'FULL' || dsn?.ret === 'HDRS') params.ret = dsn.ret;
  if (dsn?.envid) params.envid = dsn.envid;
  if (smtpUtf8) params.smtputf8 = true;
  const verp = xverpDelimiters(args, verpDelimiters);
  if (verp !== undefined) params.verp = verp;
  return params;
}
