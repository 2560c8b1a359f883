// The queue files one accepted message becomes: one per destination channel (recipients in RCPT
// order, each address once), split further when the channel says `single` (a file per recipient) or `addrsperfile N`.
import type { Channel } from '../config/types.js';
import type { Envelope, EnvelopeDraft, MailParams, QueuedRecipient } from '../queue/types.js';

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

export function planDrafts(facts: MessageFacts, recipients: AcceptedRecipient[], channels: ReadonlyMap<string, Channel>): EnvelopeDraft[] {
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
    for (const group of split(list, filesizeFor(channels.get(channel.toLowerCase())))) {
      drafts.push({
        channel,
        from: facts.from,
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

function filesizeFor(channel: Channel | undefined): number {
  if (!channel) return 0;
  if (channel.copies === 'single') return 1;
  return channel.addrsPerFile ?? 0;
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

/** MAIL FROM parameters as smtp-server parsed them (`args` keys upper-case) → the envelope's MailParams. */
export function mailParamsFrom(
  args: Record<string, string | true> | false,
  dsn: { ret: string | null; envid: string | null } | undefined,
  smtpUtf8: boolean,
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
  return params;
}
