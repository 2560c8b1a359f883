// Reading queue files: the envelope from the first bytes, the message as the rest. The same
// checks serve two forms: the promise form for the queue tools and the store, and a synchronous
// form for the delivery path — open, fstat, one read, close: queue files there are small and
// were just written (in the page cache), so this costs a few microseconds, where a thread-pool
// round trip per call cost a quarter of a millisecond per message in the relay benchmark. The
// job controller reads the envelope once when it admits a message (QueueStore.readQueued); a
// channel job reads the whole file once to send it (readMessageSync).
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { findHeaderEnd, MAX_ENVELOPE_BYTES, parseEnvelope, parseFraming, type ParsedQueueFile } from './envelope-format.js';
import { QueueFileError } from './errors.js';
import { HELD_SUFFIX, identityFromPath } from './file-name.js';
import type { Envelope } from './types.js';

const FIRST_READ = 16 * 1024;
const VERSION_PREFIX = Buffer.from('tsubame-queue ', 'latin1');

export interface OpenedQueueFile extends ParsedQueueFile {
  /** The bytes read so far (at least the header; maybe more of the body). */
  head: Buffer;
  fileSize: number;
}

/** Reads and parses the envelope of an open queue file; checks the file is as long as it says. */
export async function readQueueFileHeader(fh: FileHandle, path: string, held: boolean, readWholeBelow = 0): Promise<OpenedQueueFile> {
  const { size } = await fh.stat();
  let want: number | null = firstRead(size, readWholeBelow);
  let head = Buffer.alloc(0);
  while (want !== null) {
    const chunk = Buffer.allocUnsafe(want - head.length);
    let got = 0;
    while (got < chunk.length) {
      const { bytesRead } = await fh.read(chunk, got, chunk.length - got, head.length + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    head = Buffer.concat([head, chunk.subarray(0, got)]);
    want = nextRead(head, size, got < chunk.length, path);
  }
  return { ...parseHead(head, size, path, held), head, fileSize: size };
}

/** The same as readQueueFileHeader, with synchronous calls on an open descriptor. */
function readQueueFileHeaderSync(fd: number, path: string, held: boolean, readWholeBelow = 0): OpenedQueueFile {
  const size = fstatSync(fd).size;
  let want: number | null = firstRead(size, readWholeBelow);
  let head = Buffer.alloc(0);
  while (want !== null) {
    const chunk = readAtSync(fd, head.length, want - head.length);
    const short = chunk.length < want - head.length;
    head = Buffer.concat([head, chunk]);
    want = nextRead(head, size, short, path);
  }
  return { ...parseHead(head, size, path, held), head, fileSize: size };
}

/** `length` bytes at `position` (fewer at the end of the file). */
function readAtSync(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got === length ? buf : buf.subarray(0, got);
}

function firstRead(size: number, readWholeBelow: number): number {
  return size <= readWholeBelow ? size : Math.min(size, FIRST_READ);
}

/** After a read: null when the header is complete, else how many bytes to have read next; throws when it never will be. */
function nextRead(head: Buffer, size: number, lastReadShort: boolean, path: string): number | null {
  if (head.length >= VERSION_PREFIX.length && !head.subarray(0, VERSION_PREFIX.length).equals(VERSION_PREFIX)) {
    throw new QueueFileError(path, 'not a tsubame queue file (no version line)');
  }
  if (findHeaderEnd(head) >= 0) return null;
  if (lastReadShort || head.length >= size) throw new QueueFileError(path, 'no end-of-envelope line (truncated or not a queue file)');
  if (head.length >= MAX_ENVELOPE_BYTES) throw new QueueFileError(path, `no end-of-envelope line in the first ${MAX_ENVELOPE_BYTES} bytes`);
  return Math.min(size, head.length * 2, MAX_ENVELOPE_BYTES);
}

/** Parses a complete header and checks the file is as long as the envelope says. */
function parseHead(head: Buffer, size: number, path: string, held: boolean): ParsedQueueFile {
  let parsed: ParsedQueueFile;
  try {
    parsed = parseEnvelope(head, held);
  } catch (err) {
    throw new QueueFileError(path, (err as Error).message);
  }
  checkFileSize(size, parsed, path);
  return parsed;
}

/** The file is as long as its envelope says. */
function checkFileSize(size: number, framing: { headerLength: number; bodyLength: number }, path: string): void {
  const expected = framing.headerLength + framing.bodyLength;
  if (size !== expected) {
    throw new QueueFileError(path, size < expected ? `truncated: ${size} bytes, the envelope says ${expected}` : `${size - expected} bytes of garbage after the message`);
  }
}

// ------------------------------------------------------------ delivery path

/** Messages up to this size are read whole by channel jobs; larger ones are streamed (QueueStore.openBody). */
export const READ_WHOLE_MAX = 4 * 1024 * 1024;

export interface QueuedFile {
  envelope: Envelope;
  /** Message size in bytes (the body after the envelope). */
  size: number;
  /** Offset of the message in the file. */
  headerLength: number;
  /** The message bytes, when asked for and the file is at most READ_WHOLE_MAX. */
  body: Buffer | null;
}

export interface ReadOptions {
  /** The instance's queue/ directory: the channel is taken from the path (as QueueStore does). */
  queueDir?: string;
  /** Read the message too (up to READ_WHOLE_MAX). */
  withBody?: boolean;
}

/**
 * Reads a queue file with synchronous calls. Null when it is gone (delivered, deleted or held
 * meanwhile); throws QueueFileError when it is not a valid queue file, and the fs error for
 * anything else.
 */
export function readQueuedFileSync(path: string, opts: ReadOptions = {}): QueuedFile | null {
  const fd = openIfExists(path);
  if (fd === null) return null;
  try {
    const readWholeBelow = opts.withBody ? READ_WHOLE_MAX : 0;
    const parsed = readQueueFileHeaderSync(fd, path, path.endsWith(HELD_SUFFIX), readWholeBelow);
    const body = opts.withBody && parsed.head.length >= parsed.fileSize ? parsed.head.subarray(parsed.headerLength) : null;
    return { envelope: identityFromPath(parsed.envelope, path, opts.queueDir), size: parsed.bodyLength, headerLength: parsed.headerLength, body };
  } finally {
    closeSync(fd);
  }
}

/**
 * Only the message of a queue file, for sending it (the job has the envelope already): one read
 * of the whole file, the envelope's framing checked (version, end, body length: parseFraming)
 * without parsing the rest of it. Null when the file is gone; `stream` when it is larger than
 * READ_WHOLE_MAX (read it with QueueStore.openBody).
 */
export function readMessageSync(path: string): Buffer | 'stream' | null {
  const fd = openIfExists(path);
  if (fd === null) return null;
  try {
    const fileSize = fstatSync(fd).size;
    if (fileSize > READ_WHOLE_MAX) return 'stream';
    const whole = readAtSync(fd, 0, fileSize);
    let framing: { headerLength: number; bodyLength: number };
    try {
      framing = parseFraming(whole);
    } catch (err) {
      throw new QueueFileError(path, (err as Error).message);
    }
    checkFileSize(fileSize, framing, path);
    return whole.subarray(framing.headerLength);
  } finally {
    closeSync(fd);
  }
}

/** A read-only descriptor, or null when the file is gone (delivered, deleted or renamed meanwhile). */
function openIfExists(path: string): number | null {
  try {
    return openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}
