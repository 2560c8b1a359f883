// The queued message made ready for one session: read (a buffer, or a stream whose header is
// peeked), returned when it is looping (too many hops), and its 8-bit content and UTF-8 envelope
// fitted to what the server offered (eight-bit.ts: as it is, converted to 7 bits, or refused).
import type { Readable } from 'node:stream';
import { hasUtf8Address, needsContent, planContent, type ContentNeeds } from './eight-bit.js';
import { headerFacts, headerSectionOf, peekHeader, tooManyHops } from './loop-check.js';
import { resultOf } from './reply-policy.js';
import type { SmtpSession } from './smtp-client.js';
import { describeHost } from './status.js';
import type { DeliveryItem, RecipientResult } from './types.js';

type Prepared =
  | { ok: true; body: Readable | Buffer; use8BitMime: boolean; smtpUtf8: boolean }
  /** Not sent: every recipient of the transaction gets this; `byServer` when it is for what the server lacks. */
  | { ok: false; result: RecipientResult; status: string; byServer: boolean };

interface MessageSource {
  /** The queued message's bytes: a buffer (small messages) or a stream. */
  readMessage(path: string): Promise<NodeJS.ReadableStream | Buffer>;
  /** More Received: lines than this: looping (MAX_RECEIVED_LINES). */
  hopLimit: number;
}

export async function prepareMessage(item: DeliveryItem, from: string, to: string[], session: SmtpSession, source: MessageSource): Promise<Prepared> {
  const unreadable = (err: unknown): Prepared => ({ ok: false, result: 'deferred', status: `451 4.3.0 could not read the queued message: ${(err as Error).message}`, byServer: false });
  let body: Readable | Buffer;
  let header: Buffer;
  try {
    body = (await source.readMessage(item.ref.path)) as Readable | Buffer;
    if (Buffer.isBuffer(body)) header = headerSectionOf(body);
    else ({ header, stream: body } = await peekHeader(body));
  } catch (err) {
    return unreadable(err);
  }
  const giveUp = (p: Prepared): Prepared => {
    if (!Buffer.isBuffer(body)) body.destroy();
    return p;
  };
  const loop = tooManyHops(headerFacts(header), source.hopLimit);
  if (loop) return giveUp({ ok: false, result: 'failed', status: loop, byServer: false });
  const env = item.envelope;
  const needs: ContentNeeds = {
    declared8Bit: env.mailParams.body === '8BITMIME' || env.mailParams.body === 'BINARYMIME',
    smtpUtf8: Boolean(env.mailParams.smtputf8),
    utf8Envelope: hasUtf8Address([from, ...to]),
  };
  const offers = { eightBitMime: session.extensions.includes('8BITMIME'), smtpUtf8: session.extensions.includes('SMTPUTF8') };
  let whole = Buffer.isBuffer(body) ? body : null;
  if (!whole && needsContent(needs, offers)) {
    try {
      whole = await readAll(body as Readable);
    } catch (err) {
      return giveUp(unreadable(err));
    }
  }
  const plan = planContent(needs, offers, whole, describeHost(session.target));
  if (plan.kind === 'refuse') return giveUp({ ok: false, result: resultOf(Number(plan.status.slice(0, 3))), status: plan.status, byServer: true });
  return { ok: true, body: plan.message ?? whole ?? body, use8BitMime: plan.use8BitMime, smtpUtf8: plan.smtpUtf8 };
}

/** A streamed message read whole (only to convert it for a server without 8BITMIME or SMTPUTF8). */
async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : (chunk as Buffer));
  return Buffer.concat(chunks);
}
