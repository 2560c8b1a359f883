// Reading queue files on the delivery path with plain synchronous calls: open, fstat, one read,
// close. Queue files are small and were just written (in the page cache), so this costs a few
// microseconds, where the promise API (a FileHandle, a thread-pool round trip per call) cost a
// quarter of a millisecond per message in the relay benchmark. The job controller reads the
// envelope once when it admits a message; a channel job reads the whole file once to send it.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { basename, relative, sep } from 'node:path';
import { findHeaderEnd, MAX_ENVELOPE_BYTES, parseEnvelope } from '../queue/envelope-format.js';
import { QueueFileError } from '../queue/errors.js';
import { HELD_SUFFIX, parseQueueFileName } from '../queue/file-name.js';
import type { Envelope } from '../queue/types.js';

/** Messages up to this size are read whole by channel jobs; larger ones are streamed. */
export const READ_WHOLE_MAX = 4 * 1024 * 1024;
/** Bytes read first when only the envelope is wanted. */
const FIRST_READ = 16 * 1024;
const VERSION_PREFIX = Buffer.from('tsubame-queue ', 'latin1');

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
 * Reads a queue file. Null when it is gone (delivered, deleted or held meanwhile); throws
 * QueueFileError when it is not a valid queue file, and the fs error for anything else.
 */
export function readQueuedFileSync(path: string, opts: ReadOptions = {}): QueuedFile | null {
  const fd = openIfExists(path);
  if (fd === null) return null;
  try {
    const fileSize = fstatSync(fd).size;
    let want = opts.withBody && fileSize <= READ_WHOLE_MAX ? fileSize : Math.min(fileSize, FIRST_READ);
    let head = readAt(fd, 0, want);
    while (findHeaderEnd(head) < 0) {
      if (head.length >= VERSION_PREFIX.length && !head.subarray(0, VERSION_PREFIX.length).equals(VERSION_PREFIX)) {
        throw new QueueFileError(path, 'not a tsubame queue file (no version line)');
      }
      if (head.length >= fileSize || head.length < want) throw new QueueFileError(path, 'no end-of-envelope line (truncated or not a queue file)');
      if (head.length >= MAX_ENVELOPE_BYTES) throw new QueueFileError(path, `no end-of-envelope line in the first ${MAX_ENVELOPE_BYTES} bytes`);
      want = Math.min(fileSize, head.length * 2, MAX_ENVELOPE_BYTES);
      head = Buffer.concat([head, readAt(fd, head.length, want - head.length)]);
    }
    let parsed;
    try {
      parsed = parseEnvelope(head, path.endsWith(HELD_SUFFIX));
    } catch (err) {
      throw new QueueFileError(path, (err as Error).message);
    }
    const expected = parsed.headerLength + parsed.bodyLength;
    if (fileSize !== expected) {
      throw new QueueFileError(path, fileSize < expected ? `truncated: ${fileSize} bytes, the envelope says ${expected}` : `${fileSize - expected} bytes of garbage after the message`);
    }
    const body = opts.withBody && head.length >= fileSize ? head.subarray(parsed.headerLength) : null;
    return { envelope: fixIdentity(parsed.envelope, path, opts.queueDir), size: parsed.bodyLength, headerLength: parsed.headerLength, body };
  } finally {
    closeSync(fd);
  }
}

/**
 * Only the message of a queue file, for sending it (the job has the envelope already): one read
 * of the whole file, the envelope skipped without parsing it, its body-length checked. Null when
 * the file is gone; `stream` when it is larger than READ_WHOLE_MAX (read it with openBody).
 */
export function readMessageSync(path: string): Buffer | 'stream' | null {
  const fd = openIfExists(path);
  if (fd === null) return null;
  try {
    const fileSize = fstatSync(fd).size;
    if (fileSize > READ_WHOLE_MAX) return 'stream';
    const whole = readAt(fd, 0, fileSize);
    const end = findHeaderEnd(whole);
    if (end < 0 || !whole.subarray(0, VERSION_PREFIX.length).equals(VERSION_PREFIX)) throw new QueueFileError(path, 'not a tsubame queue file');
    const m = BODY_LENGTH_RE.exec(whole.subarray(0, end).toString('latin1'));
    if (!m || Number(m[1]) !== fileSize - end) throw new QueueFileError(path, `the file is ${fileSize} bytes, not what its envelope says`);
    return whole.subarray(end);
  } finally {
    closeSync(fd);
  }
}

const BODY_LENGTH_RE = /\nbody-length ([0-9]{1,16})\n/;

function readAt(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got === length ? buf : buf.subarray(0, got);
}

/** The file name and directory win over the contents (an operator may have moved the file), as in QueueStore. */
function fixIdentity(env: Envelope, path: string, queueDir: string | undefined): Envelope {
  const parsed = parseQueueFileName(basename(path));
  if (parsed) env.id = parsed.id;
  if (queueDir) {
    const rel = relative(queueDir, path);
    if (!rel.startsWith('..')) {
      const ch = rel.split(sep)[0];
      if (ch && ch !== basename(path)) env.channel = ch;
    }
  }
  return env;
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
