// Reading queue files on the delivery path with plain synchronous calls: open, fstat, one read,
// close. Queue files are small and were just written (in the page cache), so this costs a few
// microseconds, where the promise API (a FileHandle, a thread-pool round trip per call) cost a
// quarter of a millisecond per message in the relay benchmark. The job controller reads the
// envelope once when it admits a message; a channel job reads the whole file once to send it.
import { closeSync, fstatSync, openSync } from 'node:fs';
import { findHeaderEnd } from '../queue/envelope-format.js';
import { QueueFileError } from '../queue/errors.js';
import { HELD_SUFFIX, identityFromPath } from '../queue/file-name.js';
import { readAtSync, readQueueFileHeaderSync, VERSION_PREFIX } from '../queue/queue-file-reader.js';
import type { Envelope } from '../queue/types.js';

/** Messages up to this size are read whole by channel jobs; larger ones are streamed. */
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
 * Reads a queue file. Null when it is gone (delivered, deleted or held meanwhile); throws
 * QueueFileError when it is not a valid queue file, and the fs error for anything else.
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
 * of the whole file, the envelope skipped without parsing it, its body-length checked. Null when
 * the file is gone; `stream` when it is larger than READ_WHOLE_MAX (read it with openBody).
 */
export function readMessageSync(path: string): Buffer | 'stream' | null {
  const fd = openIfExists(path);
  if (fd === null) return null;
  try {
    const fileSize = fstatSync(fd).size;
    if (fileSize > READ_WHOLE_MAX) return 'stream';
    const whole = readAtSync(fd, 0, fileSize);
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

/** A read-only descriptor, or null when the file is gone (delivered, deleted or renamed meanwhile). */
function openIfExists(path: string): number | null {
  try {
    return openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}
