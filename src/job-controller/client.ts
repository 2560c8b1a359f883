// The one client of the job controller's socket (protocol.ts), used by every part that asks it
// something: the SMTP server (enqueued notices on a lasting connection, ETRN), submit, the CLI
// (flush, counters, qm), the watcher (reload, the jobs of `imsimta process`) and the metrics
// endpoint (status). Each request gets the time its kind is given in protocol.ts.
import { JsonSocketClient } from '../common/ipc-socket.js';
import type { QueueRef } from '../queue/types.js';
import { requestTimeoutMs, type JobControllerRequest, type ReplyTo } from './protocol.js';

export interface JobControllerClientOptions {
  /**
   * Keep the connection for the next requests (the SMTP server's notices: a write and a read
   * each instead of a connection on both sides), made again after it breaks; it never keeps the
   * process alive. Default: a connection per request.
   */
  lasting?: boolean;
  /** The time a request is given (default: requestTimeoutMs, by its kind). */
  timeoutMs?: (request: JobControllerRequest) => number;
}

export class JobControllerClient {
  private readonly socket: JsonSocketClient | null;
  private readonly timeoutMs: (request: JobControllerRequest) => number;

  constructor(
    private readonly socketPath: string,
    opts: JobControllerClientOptions = {},
  ) {
    this.socket = opts.lasting ? new JsonSocketClient(socketPath, true) : null;
    this.timeoutMs = opts.timeoutMs ?? requestTimeoutMs;
  }

  /** The job controller's reply; null when it is not running. Rejects when it does not answer in time. */
  async ask<R extends JobControllerRequest>(request: R): Promise<ReplyTo<R['op']> | null> {
    const socket = this.socket ?? new JsonSocketClient(this.socketPath);
    return (await socket.request(request, this.timeoutMs(request))) as ReplyTo<R['op']> | null;
  }

  /** Best effort: true when the job controller carried the request out, false for anything else (not running, no answer, refused). */
  tell(request: JobControllerRequest): Promise<boolean> {
    return this.ask(request).then(
      (reply) => reply?.ok === true,
      () => false,
    );
  }

  /** Drops a lasting connection; later requests find no job controller (null, false). */
  close(): void {
    this.socket?.close();
  }
}

/**
 * One request on a connection of its own: the reply, or null when the job controller is not
 * running. `timeoutMs` replaces the time its kind is given, for a caller that would rather go
 * without the answer than wait that long (start-msg's courtesy line).
 */
export function askJobController<R extends JobControllerRequest>(socketPath: string, request: R, timeoutMs?: number): Promise<ReplyTo<R['op']> | null> {
  return new JobControllerClient(socketPath, timeoutMs === undefined ? {} : { timeoutMs: () => timeoutMs }).ask(request);
}

/**
 * Tells the job controller about new queue files. Best effort: when it is down the files are
 * found by its start-up scan, so a failure here loses nothing.
 */
export function notifyEnqueued(socketPath: string, refs: QueueRef[]): Promise<boolean> {
  if (refs.length === 0) return Promise.resolve(true);
  return new JobControllerClient(socketPath).tell({ op: 'enqueued', refs });
}
