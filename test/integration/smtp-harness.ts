// Test fixture for the inbound SMTP service: a temporary instance, the service created in this
// process, a pauseOnConnect listener on 127.0.5.x feeding it sockets (as the dispatcher does),
// a raw SMTP probe, swaks/smtp-source runners, and readers of the queue and mail.log.
import net from 'node:net';
import tls from 'node:tls';
import { execFile } from 'node:child_process';
import { readdirSync, existsSync, readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeInstance, freePort, type TestInstance } from '../helpers/instance.js';
import { createSmtpService, type SmtpService } from '../../src/smtp-server/service.js';
import { QueueStore } from '../../src/queue/index.js';
import type { Envelope } from '../../src/queue/types.js';
import { silentLogger } from '../../src/common/logger.js';
import { parseMailLogLine, type ParsedMailLogRecord } from '../../src/common/mail-log.js';

/** The service listens here; INTERNAL_IP is this address only. */
export const SERVER_IP = '127.0.5.1';
/** A client address outside INTERNAL_IP. */
export const EXTERNAL_IP = '127.0.5.2';
/** A client address inside INTERNAL_IP (the server's own). */
export const INTERNAL_IP = SERVER_IP;

export const TEST_IMTA = `! rewrite rules
localhost            $U%localhost@localhost
local.test           $U%$D@localhost
hosted.test          $U%$D@bitbucket-daemon
blocked.test         $?Mail to blocked.test is not accepted
.                    $U%$H@tcp-daemon
[]                   $U%[$L]@tcp-daemon

! The tests' clients are on loopback with made-up domains: no SPF, DKIM or DMARC lookups.
defaults spfnone noauthverify

l
localhost

tcp_local smtp mx
tcp-daemon

tcp_intranet smtp mx
tcp_intranet-daemon

bitbucket
bitbucket-daemon
`;

export interface FixtureOptions {
  imta?: string;
  /** Extra option.dat lines. */
  options?: string;
  mailboxes?: string[];
  aliases?: string;
  /** Extra files (path relative to the root → contents). */
  files?: Record<string, string>;
  /** Extra lines of dispatcher.cnf's [SERVICE=SMTP] section (ENABLE_RBL=1 …). */
  service?: string;
  /** A second listener on a TLS_PORT of the service (its port is `tlsPort`). */
  tlsPort?: boolean;
}

/** A temporary instance, its SMTP service created in this process and a pauseOnConnect listener
 * on `serverIp` feeding it sockets as the dispatcher does. INTERNAL_IP is `serverIp` alone. */
export async function startInProcessSmtp(
  serverIp: string,
  opts: FixtureOptions,
): Promise<{ inst: TestInstance; port: number; service: SmtpService; listener: net.Server; tlsPort: number | null; tlsListener: net.Server | null }> {
  const port = await freePort(serverIp);
  const tlsPort = opts.tlsPort ? await freePort(serverIp) : null;
  const inst = makeInstance({
    files: {
      'etc/imta.cnf': opts.imta ?? TEST_IMTA,
      'etc/dispatcher.cnf': `[SERVICE=SMTP]\nPORT=${port}\n${tlsPort ? `TLS_PORT=${tlsPort}\n` : ''}INTERFACE_ADDRESS=${serverIp}\n${opts.service ?? ''}\n`,
      'etc/job_controller.cnf': '[POOL=DEFAULT]\nJOB_LIMIT=2\n',
      'etc/option.dat': `INTERNAL_IP=${serverIp}/32\nLOCAL_HOST=mx.tsubame.test\n${opts.options ?? ''}\n`,
      'etc/aliases': opts.aliases ?? '',
      ...(opts.files ?? {}),
    },
  });
  for (const user of opts.mailboxes ?? ['joe']) mkdirSync(join(inst.root, 'mailbox', user, 'new'), { recursive: true });
  let service: SmtpService;
  try {
    service = await createSmtpService({ root: inst.root, service: 'SMTP', logger: silentLogger() });
  } catch (err) {
    inst.remove();
    throw err;
  }
  const listen = async (p: number): Promise<net.Server> => {
    const listener = net.createServer({ pauseOnConnect: true }, (socket) => service.handle(socket));
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(p, serverIp, () => resolve());
    });
    return listener;
  };
  const listener = await listen(port);
  const tlsListener = tlsPort ? await listen(tlsPort) : null;
  return { inst, port, service, listener, tlsPort, tlsListener };
}

/** Every file below `dir`, sorted (none when it does not exist). */
export function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else out.push(join(d, e.name));
    }
  };
  walk(dir);
  return out.sort();
}

export function readMailLog(path: string): ParsedMailLogRecord[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => parseMailLogLine(l))
    .filter((r): r is ParsedMailLogRecord => r !== null);
}

export class SmtpFixture {
  private constructor(
    readonly inst: TestInstance,
    readonly port: number,
    readonly service: SmtpService,
    private readonly listener: net.Server,
    /** The TLS_PORT (FixtureOptions.tlsPort), else null. */
    readonly tlsPort: number | null = null,
    private readonly tlsListener: net.Server | null = null,
  ) {}

  get root(): string {
    return this.inst.root;
  }

  static async start(opts: FixtureOptions = {}): Promise<SmtpFixture> {
    const { inst, port, service, listener, tlsPort, tlsListener } = await startInProcessSmtp(SERVER_IP, opts);
    return new SmtpFixture(inst, port, service, listener, tlsPort, tlsListener);
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => this.listener.close(() => r()));
    if (this.tlsListener) await new Promise<void>((r) => this.tlsListener!.close(() => r()));
    await this.service.close(200);
    this.inst.remove();
  }

  /** Queue files of a channel (subdirectories included, temporaries not). */
  queueFiles(channel: string): string[] {
    return listFiles(join(this.root, 'queue', channel));
  }

  /** Every queue file of every channel. */
  allQueueFiles(): string[] {
    const q = join(this.root, 'queue');
    if (!existsSync(q)) return [];
    return readdirSync(q, { withFileTypes: true })
      .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
      .flatMap((e) => this.queueFiles(e.name));
  }

  store(): QueueStore {
    return new QueueStore({ queueDir: join(this.root, 'queue'), corruptDir: join(this.root, 'corrupt'), subdirs: () => 0 });
  }

  async readQueued(path: string): Promise<{ envelope: Envelope; body: Buffer }> {
    return this.store().readMessage(path);
  }

  mailLog(): ParsedMailLogRecord[] {
    return readMailLog(join(this.root, 'log', 'mail.log'));
  }

  probe(localAddress: string = INTERNAL_IP): Promise<SmtpProbe> {
    return SmtpProbe.connect(SERVER_IP, this.port, localAddress);
  }
}

export interface Reply {
  code: number;
  lines: string[];
  /** All lines joined by newlines, codes included. */
  text: string;
}

/** A raw SMTP client: exact bytes out, whole replies in. */
export class SmtpProbe {
  private buffer = '';
  private replies: Reply[] = [];
  private waiters: Array<(r: Reply | null) => void> = [];
  closed = false;
  readonly connectedAt: number;
  firstByteAt: number | null = null;

  private constructor(readonly socket: net.Socket | tls.TLSSocket) {
    this.connectedAt = performance.now();
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.firstByteAt ??= performance.now();
      this.buffer += d;
      this.parse();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w(null);
    });
  }

  /** A connection that starts with TLS (a TLS_PORT). */
  static connectTls(host: string, port: number, localAddress: string, options: tls.ConnectionOptions = {}): Promise<SmtpProbe> {
    return new Promise((resolve, reject) => {
      const raw = net.connect({ host, port, localAddress });
      raw.once('error', reject);
      const socket = tls.connect({ socket: raw, rejectUnauthorized: false, servername: 'mx.tsubame.test', ...options }, () => resolve(new SmtpProbe(socket)));
      socket.once('error', reject);
    });
  }

  static connect(host: string, port: number, localAddress: string): Promise<SmtpProbe> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port, localAddress });
      socket.once('connect', () => resolve(new SmtpProbe(socket)));
      socket.once('error', reject);
    });
  }

  private parse(): void {
    for (;;) {
      const lines: string[] = [];
      let rest = this.buffer;
      let done = false;
      for (;;) {
        const nl = rest.indexOf('\r\n');
        if (nl < 0) break;
        const line = rest.slice(0, nl);
        rest = rest.slice(nl + 2);
        lines.push(line);
        if (!/^\d{3}-/.test(line)) {
          done = true;
          break;
        }
      }
      if (!done) return;
      this.buffer = rest;
      const reply: Reply = { code: Number(lines[lines.length - 1]!.slice(0, 3)), lines, text: lines.join('\n') };
      const w = this.waiters.shift();
      if (w) w(reply);
      else this.replies.push(reply);
    }
  }

  /** The next reply; null when the connection closed first. Rejects after `timeoutMs`. */
  reply(timeoutMs = 5000): Promise<Reply | null> {
    const ready = this.replies.shift();
    if (ready) return Promise.resolve(ready);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(done);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`no SMTP reply within ${timeoutMs} ms (buffer: ${JSON.stringify(this.buffer)})`));
      }, timeoutMs);
      const done = (r: Reply | null) => {
        clearTimeout(timer);
        resolve(r);
      };
      this.waiters.push(done);
    });
  }

  /** After `220 Ready to start TLS`: the handshake over this connection; the probe to use from then on. `options` adds to the client's TLS options (an old protocol version…). */
  startTls(options: tls.ConnectionOptions = {}): Promise<SmtpProbe> {
    this.socket.removeAllListeners('data');
    return new Promise((resolve, reject) => {
      const secure = tls.connect({ socket: this.socket, rejectUnauthorized: false, servername: 'mx.tsubame.test', ...options }, () => resolve(new SmtpProbe(secure)));
      secure.once('error', reject);
    });
  }

  get encrypted(): boolean {
    return this.socket instanceof tls.TLSSocket;
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Sends one command line (CRLF added) and returns its reply. */
  async command(line: string): Promise<Reply | null> {
    this.write(`${line}\r\n`);
    return this.reply();
  }

  /** Greeting + EHLO. */
  async hello(name = 'client.test'): Promise<Reply> {
    const greeting = await this.reply();
    if (greeting?.code !== 220) throw new Error(`greeting: ${greeting?.text}`);
    const ehlo = await this.command(`EHLO ${name}`);
    if (ehlo?.code !== 250) throw new Error(`EHLO: ${ehlo?.text}`);
    return ehlo;
  }

  /** Resolves when the server closed the connection (or after timeoutMs, false). */
  waitClosed(timeoutMs = 5000): Promise<boolean> {
    if (this.closed) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

export interface ToolResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a client tool (swaks, smtp-source) with a deadline. */
export function runTool(file: string, args: string[], timeoutMs = 20_000, input?: string, env?: NodeJS.ProcessEnv): Promise<ToolResult> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { env, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? ((err as NodeJS.ErrnoException & { code?: unknown }).code as number | null | undefined) ?? 1 : 0;
      resolve({ code: typeof code === 'number' ? code : 1, stdout: String(stdout), stderr: String(stderr) });
    });
    if (input !== undefined) child.stdin?.end(input);
    else child.stdin?.end();
  });
}

export function swaks(fixture: SmtpFixture, args: string[], opts: { localAddress?: string } = {}): Promise<ToolResult> {
  return runTool('/usr/bin/swaks', ['--server', `${SERVER_IP}:${fixture.port}`, '--local-interface', opts.localAddress ?? INTERNAL_IP, '--timeout', '10', '--hide-informational', ...args]);
}

/** `MAIL FROM` … `RCPT TO` … for a probe after EHLO; returns the RCPT reply. */
export async function mailTo(probe: SmtpProbe, rcpt: string, from = 'sender@client.test'): Promise<Reply | null> {
  const mail = await probe.command(`MAIL FROM:<${from}>`);
  if (mail?.code !== 250) throw new Error(`MAIL: ${mail?.text}`);
  return probe.command(`RCPT TO:<${rcpt}>`);
}
