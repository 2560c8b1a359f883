// Reading queue files: the envelope from the first bytes, the message as the rest.
import type { FileHandle } from 'node:fs/promises';
import { findHeaderEnd, MAX_ENVELOPE_BYTES, parseEnvelope, type ParsedQueueFile } from './envelope-format.js';
import { QueueFileError } from './errors.js';

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
  let want = size <= readWholeBelow ? size : Math.min(size, FIRST_READ);
  let head = Buffer.alloc(0);
  for (;;) {
    const chunk = Buffer.allocUnsafe(want - head.length);
    let got = 0;
    while (got < chunk.length) {
      const { bytesRead } = await fh.read(chunk, got, chunk.length - got, head.length + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    head = Buffer.concat([head, chunk.subarray(0, got)]);
    if (head.length >= VERSION_PREFIX.length && !head.subarray(0, VERSION_PREFIX.length).equals(VERSION_PREFIX)) {
      throw new QueueFileError(path, 'not a tsubame queue file (no version line)');
    }
    if (findHeaderEnd(head) >= 0) break;
    if (got < chunk.length || head.length >= size) throw new QueueFileError(path, 'no end-of-envelope line (truncated or not a queue file)');
    if (head.length >= MAX_ENVELOPE_BYTES) throw new QueueFileError(path, `no end-of-envelope line in the first ${MAX_ENVELOPE_BYTES} bytes`);
    want = Math.min(size, head.length * 2, MAX_ENVELOPE_BYTES);
  }
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
  return { ...parsed, head, fileSize: size };
}
