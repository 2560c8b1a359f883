// A lasting connection from an SMTP server process to the job controller's socket, for the
// "enqueued" notices: one JSON line out, one line back, in order (the job controller's
// serveJsonSocket answers the lines of a connection in order). It is made on first use and made
// again after it breaks (the job controller restarted), so a notice costs a write and a read
// instead of a connection on both sides. Best effort: every failure is just `false`.
import net from 'node:net';

interface Pending {
  resolve(ok: boolean): void;
  timer: NodeJS.Timeout;
}

export class JobControllerLink {
  private socket: net.Socket | null = null;
  private buffered = '';
  private readonly pending: Pending[] = [];
  private closed = false;

  constructor(
    private readonly socketPath: string,
    private readonly timeoutMs = 5000,
  ) {}

  /** Sends one request; true when the job controller answered `ok`. */
  send(request: Record<string, unknown>): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const socket = this.connection();
      // A job controller that does not answer in time is treated as gone: start afresh next time.
      const timer = setTimeout(() => this.reset(socket), this.timeoutMs);
      timer.unref();
      this.pending.push({ resolve, timer });
      socket.write(JSON.stringify(request) + '\n');
    });
  }

  /** Drops the connection; later sends resolve false. */
  close(): void {
    this.closed = true;
    if (this.socket) this.reset(this.socket);
  }

  private connection(): net.Socket {
    if (this.socket) return this.socket;
    const socket = net.createConnection(this.socketPath);
    socket.unref(); // never what keeps the process alive
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffered += chunk;
      let nl: number;
      while ((nl = this.buffered.indexOf('\n')) >= 0) {
        const line = this.buffered.slice(0, nl);
        this.buffered = this.buffered.slice(nl + 1);
        const waiter = this.pending.shift();
        if (!waiter) continue;
        clearTimeout(waiter.timer);
        waiter.resolve(isOk(line));
      }
    });
    socket.on('error', () => {}); // 'close' follows
    socket.on('close', () => this.reset(socket));
    this.socket = socket;
    this.buffered = '';
    return socket;
  }

  /** Ends `socket` if it is the current one, answering what waits on it with false. */
  private reset(socket: net.Socket): void {
    if (this.socket !== socket) return;
    this.socket = null;
    socket.destroy();
    for (const waiter of this.pending.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.resolve(false);
    }
  }
}

function isOk(line: string): boolean {
  try {
    return (JSON.parse(line) as { ok?: unknown }).ok === true;
  } catch {
    return false;
  }
}
