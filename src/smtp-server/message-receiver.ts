// DATA → queue: the message streams through the DataScanner into one enqueue transaction (one file
// per destination channel), behind the Received: line, and is committed (fsync) only when it
// arrived whole and clean and the end-of-DATA checks took it. Whatever goes wrong, the rest of
// the data is drained so the client gets its reply at the end of DATA; nothing of a refused or
// broken message stays queued.
import type { EnqueueTransaction } from '../queue/index.js';
import { QueueWriteError } from '../queue/errors.js';
import type { EnvelopeDraft, QueueRef } from '../queue/types.js';
import { DataScanner, type DataLimits, type DataViolation } from './data-guard.js';
import { REPLIES, lineTooLong, messageTooBig, tooManyHops, type SmtpReply } from './replies.js';

export interface EnqueueStore {
  /** A new message id (the first queue file's id; the others start with it). */
  newMessageId(): string;
  begin(drafts: EnvelopeDraft[], messageId?: string): EnqueueTransaction;
}

export type ReceiveOutcome =
  /** `storeMs`: from the end of the data to the message on disk (the enqueue latency). */
  | { kind: 'queued'; refs: QueueRef[]; size: number; storeMs: number }
  /** Refused for its content or size (5xx); nothing stored. */
  | { kind: 'refused'; reply: SmtpReply; violation: DataViolation; size: number }
  /** Refused (or not decided) by an end-of-DATA check; nothing stored. */
  | { kind: 'rejected'; reply: SmtpReply; size: number }
  /** Could not be stored (4xx); nothing stored. */
  | { kind: 'failed'; reply: SmtpReply; error: Error; size: number }
  /** The client went away before the end of the data; nothing stored. */
  | { kind: 'aborted'; size: number };

/** Message bytes waiting for the store before the data stream is paused, and resumed. */
const PENDING_HIGH = 256 * 1024;
const PENDING_LOW = 64 * 1024;

export interface ReceiveRequest {
  stream: NodeJS.ReadableStream;
  store: EnqueueStore;
  drafts: EnvelopeDraft[];
  /** Prepended to the message (the Received: line). */
  header: string;
  /** The id the queue files get (from store.newMessageId(), the one in the Received: line); default: a new one. */
  messageId?: string;
  limits: DataLimits;
  /** Asked once the message arrived whole and clean, before the commit: a reply refuses it. */
  beforeCommit?: (size: number) => Promise<SmtpReply | null>;
}

export async function receiveMessage(req: ReceiveRequest): Promise<ReceiveOutcome> {
  const scanner = new DataScanner(req.limits);
  let storeError: Error | null = null;
  let tx: EnqueueTransaction | null = null;
  // Writes go to the transaction in arrival order; the stream is paused while too much waits.
  let pendingBytes = 0;
  let paused = false;
  const store = (chunk: Buffer) => {
    if (storeError || !tx) return;
    pendingBytes += chunk.length;
    tx.write(chunk).then(
      () => settled(chunk.length),
      (err: Error) => {
        storeError ??= err;
        settled(chunk.length);
      },
    );
    if (pendingBytes > PENDING_HIGH && !paused) {
      paused = true;
      req.stream.pause();
    }
  };
  const settled = (bytes: number) => {
    pendingBytes -= bytes;
    if (paused && pendingBytes <= PENDING_LOW) {
      paused = false;
      req.stream.resume();
    }
  };
  try {
    tx = req.store.begin(req.drafts, req.messageId);
    store(Buffer.from(req.header, 'utf8'));
  } catch (err) {
    storeError = err as Error;
  }
  // Read to the end whatever happens: a store error is remembered and the rest is drained, so
  // the source stream is never destroyed under smtp-server (which would answer before the end
  // of the data). After a violation the rest is counted and dropped.
  let dataEnd = 0;
  const complete = await new Promise<boolean>((resolve) => {
    const stream = req.stream;
    stream.on('data', (chunk: Buffer) => {
      if (scanner.scan(chunk) === null) store(chunk);
    });
    stream.once('end', () => {
      dataEnd = performance.now();
      resolve(true);
    });
    stream.once('error', () => {}); // followed by 'close': the client went away
    stream.once('close', () => resolve(false)); // after 'end' this changes nothing
  });
  const size = scanner.bytes;
  if (!complete) {
    await tx?.abort().catch(() => {});
    return { kind: 'aborted', size };
  }
  const violation = scanner.finish();
  if (violation) {
    await tx?.abort().catch(() => {});
    return { kind: 'refused', reply: violationReply(violation, req.limits), violation, size };
  }
  if (req.beforeCommit && tx && !storeError) {
    try {
      const reply = await req.beforeCommit(size);
      if (reply) {
        await tx.abort().catch(() => {});
        return { kind: 'rejected', reply, size };
      }
    } catch (err) {
      storeError = err as Error; // a check that failed keeps the message with the client (4xx)
    }
  }
  if (tx && !storeError) {
    try {
      // waits for the writes still in flight; a failed write makes it throw
      const refs = await tx.commit();
      return { kind: 'queued', refs, size, storeMs: performance.now() - dataEnd };
    } catch (err) {
      storeError = err as Error;
    }
  }
  await tx?.abort().catch(() => {});
  return failed(storeError ?? new Error('no queue transaction'), size);
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
    case 'too-many-hops':
      return tooManyHops(limits.maxReceivedLines ?? 0);
  }
}
