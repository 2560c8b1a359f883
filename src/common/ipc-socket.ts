// Newline-delimited JSON over a Unix socket: the one wire format between tsubame's processes
// and its CLI (watcher control socket, job controller socket). The server checks every line
// against its protocol's request type and answers one that does not fit with an error; the
// client sends requests on a connection of its own or on a lasting one, answers in order.
// What is said over each socket is typed in that part's protocol module (job-controller/
// protocol.ts, watcher/control.ts), and spoken by that part's one client module.
import net from 'node:net';
import { unlinkSync } from 'node:fs';

export type JsonObject = Record<string, unknown>;
export type RequestHandler<Req = JsonObject> = (request: Req) => Promise<object> | object;
/** Turns what arrived into a request of the protocol; throws BadRequest (its message is the reply's error) when it is not one. */
type RequestValidator<Req> = (raw: unknown) => Req;

/** A line that is not a request of the socket's protocol. */
export class BadRequest extends Error {
  override name = 'BadRequest';
}

/** The validator of a socket without a protocol of its own: any JSON object. */
function anyJsonObject(raw: unknown): JsonObject {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new BadRequest('bad request: not a JSON object');
  return raw as JsonObject;
}

/** Lines longer than this end the connection (nothing tsubame sends comes near it). */
const MAX_LINE = 16 * 1024 * 1024;

/**
 * Serves requests on `path`; each line in gets exactly one line out, in order. A line that is not
 * JSON, or that `validate` refuses, gets `{ok: false, error}` and never reaches the handler; an
 * error thrown by the handler is answered the same way.
 */
export function serveJsonSocket(path: string, handler: RequestHandler<JsonObject>): Promise<net.Server>;
export function serveJsonSocket<Req>(path: string, handler: RequestHandler<Req>, validate: RequestValidator<Req>): Promise<net.Server>;
export function serveJsonSocket(path: string, handler: RequestHandler<never>, validate: RequestValidator<unknown> = anyJsonObject): Promise<net.Server> {
  try {
    unlinkSync(path); // a stale socket from a killed process
  } catch {
    /* not there */
  }
  const server = net.createServer((socket) => {
    let buffered = '';
    let chain = Promise.resolve();
    socket.setEncoding('utf8');
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      if (buffered.length > MAX_LINE) return socket.destroy();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (!line.trim()) continue;
        chain = chain.then(async () => {
          let reply: object;
          try {
            reply = await handler(validate(parseLine(line)) as never);
          } catch (err) {
            reply = { ok: false, error: (err as Error).message };
          }
          if (!socket.destroyed) socket.write(JSON.stringify(reply) + '\n');
        });
      }
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

function parseLine(line: string): unknown {
  try {
    return JSON.parse(line) as unknown;
  } catch {
    throw new BadRequest('bad request: not JSON');
  }
}

interface Waiter {
  resolve(reply: JsonObject | null): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * The client side of a socket: requests written as lines, replies matched to them in order. A
 * one-shot client connects for its request and is closed after it; a lasting one keeps its
 * connection for the next requests and makes a new one after it breaks (the server restarted),
 * and never keeps the process alive. A request resolves with the reply, or null when nobody
 * listens (the process is not running); it rejects when there is no answer in time (the
 * connection is dropped then, a silent server is treated as gone) or the connection closes first.
 */
export class JsonSocketClient {
  private socket: net.Socket | null = null;
  private buffered = '';
  private readonly pending: Waiter[] = [];
  private closed = false;

  constructor(
    private readonly path: string,
    private readonly lasting = false,
  ) {}

  request(request: object, timeoutMs: number): Promise<JsonObject | null> {
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const socket = this.connection();
      const timer = setTimeout(() => {
        const i = this.pending.indexOf(waiter);
        if (i >= 0) this.pending.splice(i, 1);
        reject(new Error(`no answer from ${this.path} within ${timeoutMs} ms`));
        this.drop(socket, null);
      }, timeoutMs);
      if (this.lasting) timer.unref();
      const waiter: Waiter = { resolve, reject, timer };
      this.pending.push(waiter);
      socket.write(JSON.stringify(request) + '\n');
    });
  }

  /** Drops the connection; later requests resolve null and connect nowhere. */
  close(): void {
    this.closed = true;
    if (this.socket) this.drop(this.socket, null);
  }

  private connection(): net.Socket {
    if (this.socket) return this.socket;
    const socket = net.createConnection(this.path);
    if (this.lasting) socket.unref(); // never what keeps the process alive
    socket.setEncoding('utf8');
    let failure: NodeJS.ErrnoException | null = null;
    socket.on('data', (chunk: string) => {
      if (this.socket !== socket) return;
      this.buffered += chunk;
      let nl: number;
      while ((nl = this.buffered.indexOf('\n')) >= 0) {
        const line = this.buffered.slice(0, nl);
        this.buffered = this.buffered.slice(nl + 1);
        const waiter = this.pending.shift();
        if (!waiter) continue;
        clearTimeout(waiter.timer);
        try {
          waiter.resolve(anyJsonObject(JSON.parse(line)));
        } catch {
          waiter.reject(new Error(`${this.path} answered something that is not a reply: ${line.slice(0, 80)}`));
        }
      }
      if (!this.lasting && this.pending.length === 0) this.close();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => (failure = err)); // 'close' follows
    socket.on('close', () => this.drop(socket, failure));
    this.socket = socket;
    this.buffered = '';
    return socket;
  }

  /** Ends `socket` if it is the current one; what waits on it learns why (nobody listens: null). */
  private drop(socket: net.Socket, failure: NodeJS.ErrnoException | null): void {
    if (this.socket !== socket) return;
    this.socket = null;
    socket.destroy();
    const notListening = failure?.code === 'ENOENT' || failure?.code === 'ECONNREFUSED';
    for (const waiter of this.pending.splice(0)) {
      clearTimeout(waiter.timer);
      if (notListening) waiter.resolve(null);
      else waiter.reject(failure ?? new Error(`${this.path} closed without an answer`));
    }
  }
}

/**
 * Sends one request on a connection of its own and waits for its reply. Resolves null when
 * nobody listens on `path` (the process is not running), rejects on timeout.
 */
export function requestJson(path: string, request: object, timeoutMs = 10_000): Promise<JsonObject | null> {
  return new JsonSocketClient(path).request(request, timeoutMs);
}
