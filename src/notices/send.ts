// Queues a delivery status notification as a new message from the null sender, routed by the
// rewrite rules to the channel of the original sender. A notice whose sender cannot be routed
// goes to the local postmaster instead (a double bounce); nothing is sent for a message from <>.
// A sender that is an SRS address of ours (a forwarded copy that failed) is decoded first: the
// notice goes to the original sender, as a bounce from outside to that address would.
import type { Envelope, QueueRef, QueueStore } from '../queue/index.js';
import type { Rewriter } from '../rewrite/index.js';
import type { MailLog } from '../common/mail-log.js';
import type { Logger } from '../common/logger.js';
import type { InstanceConfig } from '../config/types.js';
import { srsReverse, type SrsSettings } from '../srs/srs.js';
import { createIdGenerator, type IdGenerator } from '../queue/message-id.js';
import { formatRfc5322Date } from '../common/rfc5322-date.js';
import { buildDsn, isGlobal, type DsnRecipient } from './dsn.js';

/** Above this size a failure notice returns the headers only (option.dat CONTENT_RETURN_BLOCK_LIMIT, in 1024-octet blocks). */
export const DEFAULT_RETURN_LIMIT_OCTETS = 1024 * 1024;

/** option.dat CONTENT_RETURN_BLOCK_LIMIT (1024-octet blocks), else the default. */
export function returnLimitOctets(config: InstanceConfig, fallback: number): number {
  const raw = config.options.raw?.CONTENT_RETURN_BLOCK_LIMIT;
  const n = raw === undefined ? NaN : Number(raw);
  return Number.isFinite(n) && n > 0 ? n * 1024 : fallback;
}

export interface NoticeDeps {
  store: QueueStore;
  rewriter: Rewriter;
  mailLog: MailLog;
  logger: Logger;
  localHost: string;
  returnLimitOctets: number;
  /** SRS_DOMAIN and the secrets: a notice to an SRS address of ours goes to the address it encodes. */
  srs?: SrsSettings | null;
  ids?: IdGenerator;
}

export interface NoticeRequest {
  envelope: Envelope;
  /** The queue file of the original (for its contents). */
  path: string;
  recipients: DsnRecipient[];
  /** Where the notice goes: the message's sender unless given (a VERP sender, settle.ts). */
  to?: string;
  now: Date;
  willRetryUntil: Date | null;
}

export type NoticeResult = { sent: true; ref: QueueRef; to: string } | { sent: false; reason: string };

export class NoticeSender {
  private readonly ids: IdGenerator;
  constructor(private readonly deps: NoticeDeps) {
    this.ids = deps.ids ?? createIdGenerator();
  }

  /** Throws when the notice could not be written (the caller keeps the recipients owed a notice). */
  async send(req: NoticeRequest): Promise<NoticeResult> {
    const { envelope } = req;
    if (req.recipients.length === 0) return { sent: false, reason: 'no recipient asked for a notice' };
    if (envelope.from === '') return { sent: false, reason: 'no notice for a message from the null sender' };
    const given = req.to ?? envelope.from;
    const to = this.originalSender(given, req.now);
    const route = this.route(to, envelope.channel);
    if (!route) return { sent: false, reason: `neither the sender <${given}> nor the postmaster can be routed` };
    const { body: original } = await this.deps.store.readMessage(req.path);
    const failed = req.recipients.some((r) => r.action === 'failed');
    const returnFull = failed && envelope.mailParams.ret !== 'HDRS' && original.length <= this.deps.returnLimitOctets;
    const smtputf8 = isGlobal({ smtputf8: envelope.mailParams.smtputf8, to, recipients: req.recipients });
    const message = buildDsn({
      smtputf8,
      reportingMta: this.deps.localHost,
      postmaster: `postmaster@${this.deps.localHost}`,
      to,
      originalId: envelope.id,
      envid: envelope.mailParams.envid ?? null,
      arrival: envelope.arrival,
      recipients: req.recipients,
      original,
      returnFull,
      now: req.now,
      willRetryUntil: req.willRetryUntil,
      uniqueId: this.ids.next(),
      formatDate: (d) => formatRfc5322Date(d),
    });
    const eightBit = message.some((b) => b >= 0x80);
    const [ref] = await this.deps.store.enqueue(
      [
        {
          channel: route.channel,
          from: '',
          mailParams: { size: message.length, ...(eightBit ? { body: '8BITMIME' as const } : {}), ...(smtputf8 ? { smtputf8: true } : {}) },
          sourceChannel: envelope.channel,
          clientAddress: null,
          clientHelo: null,
          arrival: req.now,
          recipients: [{ address: route.address, original: given, orcpt: null, notify: null, state: 'pending', status: null }],
        },
      ],
      message,
    );
    try {
      this.deps.mailLog.write([
        { event: 'E', id: ref!.id, source: envelope.channel, destination: route.channel, size: message.length, from: '', recipient: route.address, status: `delivery status notification for ${envelope.id}` },
      ]);
    } catch (err) {
      this.deps.logger.warn({ err }, 'cannot write mail.log');
    }
    return { sent: true, ref: ref!, to: route.address };
  }

  /** The sender a notice goes to: an SRS address of ours decoded (SRS1 to the forwarder before us); one that does not verify as it is. */
  private originalSender(sender: string, now: Date): string {
    if (!this.deps.srs) return sender;
    const r = srsReverse(sender, this.deps.srs, now.getTime());
    if (r.kind === 'reversed') return r.address;
    if (r.kind === 'invalid') this.deps.logger.warn({ sender, why: r.reason }, 'notice to an SRS address that does not verify');
    return sender;
  }

  private route(sender: string, sourceChannel: string): { channel: string; address: string } | null {
    for (const address of [sender, `postmaster@${this.deps.localHost}`]) {
      const r = this.deps.rewriter.rewrite(address, { sourceChannel, direction: 'to' });
      if (r.channel && r.rewritten) return { channel: r.channel, address: r.rewritten };
      this.deps.logger.warn({ address, error: r.error }, 'notice recipient cannot be routed');
    }
    return null;
  }
}
