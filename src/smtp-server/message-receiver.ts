// DATA → queue: the message streams through the DataScanner into one enqueue transaction (one file
// per destination channel), behind the Received: line, and is committed (fsync) only when it
// arrived whole and clean and the end-of-DATA checks took it. Whatever goes wrong, the rest of
// the data is drained so the client gets its reply at the end of DATA; nothing of a refused or
// broken message stays queued. readData() is the reading itself, also used to spool a message
// the checks must read first (inspected-data.ts).
import type { EnqueueTransaction, MessageSpool } from '../queue/index.js';
import { QueueWriteError } from '../queue/errors.js';
import type { CommittedFile, EnvelopeDraft } from '../queue/types.js';
import { DataScanner, type DataLimits, type DataViolation } from './data-guard.js';
import { REPLIES, lineTooLong, messageTooBig, tooManyHops, type SmtpReply } from './replies.js';

export interface EnqueueStore {
  /** A new message id (the first queue file's id; the others start with it). */
  newMessageId(): string;
  begin(drafts: EnvelopeDraft[], messageId?: string): EnqueueTransaction;
  /** Where a message waits for the end-of-DATA checks that read it (message-spool.ts). */
  spool(messageId: string): MessageSpool;
}

export type ReceiveOutcome =
  /** `storeMs`: from the end of the data to the message on disk (the enqueue latency). */
  | { kind: 'queued'; refs: CommittedFile[]; size: number; storeMs: number }
  /** Refused for its content or size (5xx); nothing stored. */
  | { kind: 'refused'; reply: SmtpReply; violation: DataViolation; size: number }
  /** Refused (or not decided) by an end-of-DATA check; nothing stored. `status`: the J records' (the rule that decided and its reply). */
  | { kind: 'rejected'; reply: SmtpReply; status: string; size: number }
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
  /** Asked once the message arrived whole and clean, before the commit: a reply refuses it (`status` for the J records). */
  beforeCommit?: (size: number) => Promise<{ reply: SmtpReply; status: string } | null>;
}

export async function receiveMessage(req: ReceiveRequest): Promise<ReceiveOutcome> {
  let tx: EnqueueTransaction | null = null;
  let beginError: Error | null = null;
  try {
    tx = req.store.begin(req.drafts, req.messageId);
  } catch (err) {
    beginError = err as Error;
  }
  const read = await readData(req.stream, req.limits, tx, Buffer.from(req.header, 'utf8'));
  const size = read.size;
  let storeError = beginError ?? read.storeError;
  if (!read.complete) {
    await tx?.abort().catch(() => {});
    return { kind: 'aborted', size };
  }
  if (read.violation) {
    await tx?.abort().catch(() => {});
    return { kind: 'refused', reply: violationReply(read.violation, req.limits), violation: read.violation, size };
  }
  if (req.beforeCommit && tx && !storeError) {
    try {
      const refusal = await req.beforeCommit(size);
      if (refusal) {
        await tx.abort().catch(() => {});
        return { kind: 'rejected', ...refusal, size };
      }
    } catch (err) {
      storeError = err as Error; // a check that failed keeps the message with the client (4xx)
    }
  }
  if (tx && !storeError) {
    try {
      // waits for the writes still in flight; a failed write makes it throw
      const refs = await tx.commit();
      return { kind: 'queued', refs, size, storeMs: performance.now() - read.dataEnd };
    } catch (err) {
      storeError = err as Error;
    }
  }
  await tx?.abort().catch(() => {});
  return failed(storeError ?? new Error('no queue transaction'), size);
}

/** Where the data goes as it arrives: a queue transaction, or a spool (message-spool.ts). */
export interface DataSink {
  write(chunk: Buffer): Promise<void>;
}

export interface DataReading {
  /** The data ended (false: the client went away first). */
  complete: boolean;
  /** What makes the message unacceptable (size, lines, hops, bare CR/LF); null when clean. */
  violation: DataViolation | null;
  /** Octets of the message as the client sent it. */
  size: number;
  /** performance.now() at the end of the data. */
  dataEnd: number;
  /** The first failed write of the sink (the rest was drained unwritten). */
  storeError: Error | null;
}

/**
 * Reads the DATA stream to its end through the DataScanner, writing the clean data (after `first`)
 * to `sink` in arrival order; the stream is paused while too much waits for the sink. Whatever
 * goes wrong, the rest is read and dropped, so the source stream is never destroyed under
 * smtp-server (which would answer before the end of the data). Never rejects.
 */
export async function readData(stream: NodeJS.ReadableStream, limits: DataLimits, sink: DataSink | null, first?: Buffer): Promise<DataReading> {
  const scanner = new DataScanner(limits);
  let storeError: Error | null = null;
  // Writes go to the sink in arrival order; the stream is paused while too much waits.
  let pendingBytes = 0;
  let paused = false;
  const settled = (bytes: number) => {
    pendingBytes -= bytes;
    if (paused && pendingBytes <= PENDING_LOW) {
      paused = false;
      stream.resume();
    }
  };
  const store = (chunk: Buffer) => {
    if (storeError || !sink) return;
    pendingBytes += chunk.length;
    sink.write(chunk).then(
      () => settled(chunk.length),
      (err: Error) => {
        storeError ??= err;
        settled(chunk.length);
      },
    );
    if (pendingBytes > PENDING_HIGH && !paused) {
      paused = true;
      stream.pause();
    }
  };
  if (first) store(first);
  let dataEnd = 0;
  const complete = await new Promise<boolean>((resolve) => {
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
  return { complete, violation: complete ? scanner.finish() : null, size: scanner.bytes, dataEnd, storeError };
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
