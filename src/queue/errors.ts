// Errors the queue store reports. Writers map QueueWriteError to a 4xx reply (the client keeps the
// message); readers quarantine files that raise QueueFileError.

/** The queue could not be written (disk full, read-only, permissions…): a temporary failure. */
export class QueueWriteError extends Error {
  readonly temporary = true as const;
  constructor(
    message: string,
    /** The system error code (ENOSPC, EROFS, EACCES, EDQUOT, ENOTDIR, EIO…), or EQUEUE for other causes. */
    readonly code: string,
  ) {
    super(message);
    this.name = 'QueueWriteError';
  }

  static from(err: unknown, what: string): QueueWriteError {
    if (err instanceof QueueWriteError) return err;
    const e = err as NodeJS.ErrnoException;
    const code = typeof e?.code === 'string' ? e.code : 'EQUEUE';
    return new QueueWriteError(`${what}: ${describeErrno(code, e?.message ?? String(err))}`, code);
  }
}

/** A queue file that cannot be parsed (truncated, foreign, wrong version…). */
export class QueueFileError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
    this.name = 'QueueFileError';
  }
}

const ERRNO_TEXT: Record<string, string> = {
  ENOSPC: 'no space left on the queue file system',
  EDQUOT: 'disk quota exceeded on the queue file system',
  EROFS: 'the queue file system is read-only',
  EACCES: 'permission denied on the queue directory',
  EPERM: 'operation not permitted on the queue directory',
  ENOTDIR: 'a queue directory is not a directory',
  EEXIST: 'a file is in the way of a queue directory',
  EIO: 'I/O error on the queue file system',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in the system',
};

function describeErrno(code: string, fallback: string): string {
  const text = ERRNO_TEXT[code];
  return text ? `${text} (${code})` : fallback;
}
