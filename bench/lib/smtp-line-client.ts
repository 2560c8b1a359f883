// A minimal SMTP client for benchmarks that time single commands: one command at a time on one
// connection (no pipelining), each reply read whole (multi-line replies joined), so the time
// from a command to its reply is the server's time for that command plus one round trip on
// loopback.
import net from 'node:net';

export class SmtpLineClient {
  private buffer = '';
  private readonly lines: string[] = [];
  private waiter: ((reply: string) => void) | null = null;
  private failure: Error | null = null;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.buffer += d;
      let nl: number;
      while ((nl = this.buffer.indexOf('\r\n')) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 2);
        this.lines.push(line);
        if (/^\d{3}(?: |$)/.test(line)) this.deliver();
      }
    });
    socket.on('error', (err) => (this.failure = err));
    socket.on('close', () => {
      this.failure ??= new Error('connection closed');
      this.waiter?.('');
    });
  }

  static connect(host: string, port: number, localAddress?: string): Promise<SmtpLineClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port, localAddress });
      socket.once('connect', () => resolve(new SmtpLineClient(socket)));
      socket.once('error', reject);
    });
  }

  private pending: string[] = [];

  private deliver(): void {
    const reply = this.lines.splice(0).join('\n');
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w(reply);
    } else this.pending.push(reply);
  }

  /** The next reply (the greeting first). */
  reply(timeoutMs = 30_000): Promise<string> {
    const ready = this.pending.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply within ${timeoutMs} ms`)), timeoutMs);
      this.waiter = (r) => {
        clearTimeout(timer);
        if (this.failure && r === '') reject(this.failure);
        else resolve(r);
      };
    });
  }

  /** Sends a command; its reply. */
  command(line: string): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return this.reply();
  }

  close(): void {
    this.socket.destroy();
  }
}
