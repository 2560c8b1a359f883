// Reading queue files: the envelope from the first bytes, the message as the rest. The same
// checks serve two forms: the promise form for the queue tools and the store, and a synchronous
// form for the delivery path (small files just written: a few microseconds, where a thread-pool
// round trip per call cost a quarter of a millisecond per message in the relay benchmark).
import { fstatSync, readSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { findHeaderEnd, MAX_ENVELOPE_BYTES, parseEnvelope, type ParsedQueueFile } from './envelope-format.js';
import { QueueFileError } from './errors.js';

const FIRST_READ = 16 * 1024;
export const VERSION_PREFIX = Buffer.from('tsubame-queue ', 'latin1');

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
export function readQueueFileHeaderSync(fd: number, path: string, held: boolean, readWholeBelow = 0): OpenedQueueFile {
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
export function readAtSync(fd: number, position: number, length: number): Buffer {
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
  const expected = parsed.headerLength + parsed.bodyLength;
  if (size !== expected) {
    throw new QueueFileError(path, size < expected ? `truncated: ${size} bytes, the envelope says ${expected}` : `${size - expected} bytes of garbage after the message`);
  }
  return parsed;
}
