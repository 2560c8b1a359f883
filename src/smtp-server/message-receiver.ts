// DATA → queue: the message streams through the DataGuard into one enqueue transaction (one file
// per destination channel), behind the Received: line, and is committed (fsync) only when it
// arrived whole and clean. Whatever goes wrong, the rest of the data is drained so the client
// gets its reply at the end of DATA; nothing of a refused or broken message stays queued.
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { EnqueueTransaction } from '../queue/index.js';
import { QueueWriteError } from '../queue/errors.js';
import type { EnvelopeDraft, QueueRef } from '../queue/types.js';
import { DataGuard, type DataLimits, type DataViolation } from './data-guard.js';
import { REPLIES, lineTooLong, messageTooBig, type SmtpReply } from './replies.js';

export interface EnqueueStore {
  begin(drafts: EnvelopeDraft[]): EnqueueTransaction;
}

export type ReceiveOutcome =
  /** `storeMs`: from the end of the data to the message on disk (the enqueue latency). */
  | { kind: 'queued'; refs: QueueRef[]; size: number; storeMs: number }
  /** Refused for its content or size (5xx); nothing stored. */
  | { kind: 'refused'; reply: SmtpReply; violation: DataViolation; size: number }
  /** Could not be stored (4xx); nothing stored. */
  | { kind: 'failed'; reply: SmtpReply; error: Error; size: number }
  /** The client went away before the end of the data; nothing stored. */
  | { kind: 'aborted'; size: number };

export interface ReceiveRequest {
  stream: NodeJS.ReadableStream;
  store: EnqueueStore;
  drafts: EnvelopeDraft[];
  /** Prepended to the message (the Received: line). */
  header: string;
  limits: DataLimits;
}

export async function receiveMessage(req: ReceiveRequest): Promise<ReceiveOutcome> {
  const guard = new DataGuard(req.limits);
  let storeError: Error | null = null;
  let tx: EnqueueTransaction | null = null;
  try {
    tx = req.store.begin(req.drafts);
    await tx.write(Buffer.from(req.header, 'utf8'));
  } catch (err) {
    storeError = err as Error;
  }
  // Never fails: a store error is remembered and the rest is drained, so the source stream is
  // never destroyed under smtp-server (which would answer before the end of the data).
  let dataEnd = 0;
  req.stream.once('end', () => (dataEnd = performance.now()));
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      if (storeError || !tx) return done();
      tx.write(chunk).then(
        () => done(),
        (err: Error) => {
          storeError = err;
          done();
        },
      );
    },
  });
  try {
    await pipeline(req.stream, guard, sink);
  } catch {
    await tx?.abort().catch(() => {});
    return { kind: 'aborted', size: guard.bytes };
  }
  const size = guard.bytes;
  if (guard.violation) {
    await tx?.abort().catch(() => {});
    return { kind: 'refused', reply: violationReply(guard.violation, req.limits), violation: guard.violation, size };
  }
  if (storeError || !tx) {
    await tx?.abort().catch(() => {});
    return failed(storeError ?? new Error('no queue transaction'), size);
  }
  try {
    const refs = await tx.commit();
    return { kind: 'queued', refs, size, storeMs: performance.now() - (dataEnd || performance.now()) };
  } catch (err) {
    await tx.abort().catch(() => {});
    return failed(err as Error, size);
  }
}

function failed(error: Error, size: number): ReceiveOutcome {
  // Any queue write problem (full, read-only, not a directory…) keeps the message with the client.
  const reply = error instanceof QueueWriteError ? REPLIES.storageFull : REPLIES.localError;
  return { kind: 'failed', reply, error, size };
}

export function violationReply(v: DataViolation, limits: DataLimits): SmtpReply {
  switch (v) {
    case 'bare-cr':
    case 'bare-lf':
      return REPLIES.bareNewline;
    case 'line-too-long':
      return lineTooLong(limits.maxLineLength);
    case 'too-big':
      return messageTooBig(limits.maxBytes);
  }
}
