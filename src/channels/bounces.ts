// The bounces channel: a master channel program, like bitbucket and hold, for the bounces that
// come back to VERP addresses (`owner+member=domain@bounces.list.example`, routed here by the
// rewrite rules). Each message is read and parsed (src/notices/dsn-parse.ts); each of its
// recipients gives its records (src/notices/bounce-records.ts: the list and the member from the
// address, the status, diagnostic and remote MTA from the report), which are appended to
// log/bounces.jsonl and fsynced before the recipients are reported delivered. A delay notice or
// an auto-reply is taken (delivered) without a record; a record that cannot be written defers
// the message, so nothing is lost.
import type { ChannelJob, ChannelJobFactory, DeliveryItem, MessageOutcome, RecipientOutcome } from './types.js';
import { instancePaths } from '../common/instance.js';
import { DEFAULT_VERP_DELIMITERS } from '../config/verp-options.js';
import { parseBounce } from '../notices/dsn-parse.js';
import { appendBounceRecords, bounceRecords, type BounceRecord } from '../notices/bounce-records.js';

/** A bounce is read up to this much (the report comes before the returned message). */
const READ_LIMIT = 16 * 1024 * 1024;

export const createBouncesJob: ChannelJobFactory = async (ctx): Promise<ChannelJob> => {
  const file = instancePaths(ctx.root).bounceLog;
  const delimiters = ctx.config.options.verpDelimiters ?? DEFAULT_VERP_DELIMITERS;

  const read = async (item: DeliveryItem): Promise<Buffer> => {
    const first = ctx.readMessage ? await ctx.readMessage(item.ref.path) : await ctx.openBody(item.ref.path);
    if (Buffer.isBuffer(first)) return first;
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of first as AsyncIterable<Buffer | string>) {
      const b = typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk;
      chunks.push(b);
      size += b.length;
      if (size >= READ_LIMIT) break;
    }
    (first as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
    return Buffer.concat(chunks).subarray(0, READ_LIMIT);
  };

  return {
    async deliver(items: DeliveryItem[]): Promise<MessageOutcome[]> {
      const outcomes: MessageOutcome[] = [];
      const records: BounceRecord[] = [];
      const now = new Date();
      for (const item of items) {
        const pending = item.envelope.recipients.filter((r) => r.state === 'pending');
        const each = (result: RecipientOutcome['result'], status: string) => pending.map((r): RecipientOutcome => ({ address: r.address, result, status, remoteHost: null }));
        let message: Buffer;
        try {
          message = await read(item);
        } catch (err) {
          outcomes.push({ ref: item.ref, recipients: each('deferred', `451 4.3.0 could not read the queued message: ${(err as Error).message}`) });
          continue;
        }
        const bounce = parseBounce(message);
        const recipients: RecipientOutcome[] = [];
        for (const r of pending) {
          const made = bounceRecords({ recipient: r.address, bounce, delimiters, time: now, id: item.envelope.id });
          records.push(...made.records);
          recipients.push({ address: r.address, result: 'delivered', status: `250 2.0.0 ${made.note}`, remoteHost: null });
        }
        outcomes.push({ ref: item.ref, recipients });
      }
      try {
        appendBounceRecords(file, records);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        ctx.logger.warn({ err, file }, 'cannot write the bounce records');
        const status = `${code === 'ENOSPC' || code === 'EDQUOT' ? '452 4.3.1' : '451 4.3.0'} cannot write ${file}: ${code}`;
        return outcomes.map((o) => ({ ref: o.ref, recipients: o.recipients.map((r) => (r.result === 'delivered' ? { ...r, result: 'deferred', status } : r)) }));
      }
      return outcomes;
    },
    async close() {},
  };
};
