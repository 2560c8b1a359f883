// Shared pieces of the reload and log tests: an instance started with start-msg whose imta.cnf
// refuses (or accepts) blocked.test, a line-oriented SMTP client, swaks, the watcher's status
// and the records of the component logs.
import net from 'node:net';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { MtaInstance } from '../helpers/running-instance.js';
import { waitFor } from '../helpers/instance.js';
import { instancePaths } from '../../src/common/instance.js';
import { askWatcher } from '../../src/watcher/client.js';
import type { StatusReply } from '../../src/watcher/control.js';

/** The rule for blocked.test: refused, or routed to the local mailboxes. */
export const REFUSE_BLOCKED = 'blocked.test         $?Mail to blocked.test is not accepted';
export const ACCEPT_BLOCKED = 'blocked.test         $U%localhost@localhost';

export function imtaCnf(blockedRule: string, comment = 'test instance'): string {
  return `! ${comment}
localhost            $U%localhost@localhost
${blockedRule}
.                    $U%$H@tcp-daemon
[]                   $U%[$L]@tcp-daemon

l
localhost

tcp_local smtp mx
tcp-daemon
`;
}

/** A started instance on `address` with mailbox alice and the refusing rule. */
export async function startMta(opts: { address: string; service?: string; options?: string; imta?: string }): Promise<MtaInstance> {
  const mta = await MtaInstance.create({ address: opts.address, service: opts.service });
  mta.inst.write('etc/imta.cnf', opts.imta ?? imtaCnf(REFUSE_BLOCKED));
  mta.inst.write('etc/option.dat', `INTERNAL_IP=127.0.0.0/8\n${opts.options ?? ''}`);
  mta.inst.write('mailbox/alice/new/.keep', '');
  const r = await mta.cli('start-msg', []);
  if (r.code !== 0) {
    await mta.cleanup();
    throw new Error(`start-msg: ${r.code} ${r.stderr}`);
  }
  await mta.processes(); // remember the pids for cleanup
  return mta;
}

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

function runTool(file: string, args: string[], timeoutMs = 20_000): Promise<ToolResult> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: unknown }).code as number | undefined) ?? 1 : 0;
      resolve({ code: typeof code === 'number' ? code : 1, stdout: String(stdout), stderr: String(stderr) });
    });
    child.stdin?.end();
  });
}

export function swaks(address: string, port: number, args: string[]): Promise<ToolResult> {
  return runTool('/usr/bin/swaks', ['--server', `${address}:${port}`, '--local-interface', address, '--timeout', '10', '--hide-informational', ...args]);
}

/** Messages delivered into mailbox/alice/new. */
export function aliceMessages(mta: MtaInstance): string[] {
  const dir = join(mta.root, 'mailbox', 'alice', 'new');
  return existsSync(dir) ? readdirSync(dir).filter((n) => !n.startsWith('.')) : [];
}

export interface SmtpReply {
  code: number;
  text: string;
}

/** A plain SMTP client: one command, one (possibly multi-line) reply. */
export class SmtpTalk {
  private buffered = '';
  private closed = false;
  private waiter: (() => void) | null = null;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.buffered += d;
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on('error', () => {});
  }

  static open(host: string, port: number): Promise<SmtpTalk> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ host, port, localAddress: host });
      socket.once('connect', () => resolve(new SmtpTalk(socket)));
      socket.once('error', reject);
    });
  }

  /** The next complete reply, within `timeoutMs`. */
  reply(timeoutMs = 10_000): Promise<SmtpReply> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`no SMTP reply within ${timeoutMs} ms (have ${JSON.stringify(this.buffered)})`));
      }, timeoutMs);
      const check = () => {
        const lines = this.buffered.split('\r\n');
        for (let i = 0; i < lines.length - 1; i++) {
          if (/^\d{3} /.test(lines[i]!) || /^\d{3}$/.test(lines[i]!)) {
            const text = lines.slice(0, i + 1).join('\n');
            this.buffered = lines.slice(i + 1).join('\r\n');
            clearTimeout(timer);
            this.waiter = null;
            return resolve({ code: Number(lines[i]!.slice(0, 3)), text });
          }
        }
        if (this.closed) {
          clearTimeout(timer);
          this.waiter = null;
          reject(new Error(`connection closed (have ${JSON.stringify(this.buffered)})`));
        }
      };
      this.waiter = check;
      check();
    });
  }

  async command(line: string, timeoutMs?: number): Promise<SmtpReply> {
    this.socket.write(`${line}\r\n`);
    return this.reply(timeoutMs);
  }

  /** Writes without waiting for a reply (message data). */
  write(text: string): void {
    this.socket.write(text);
  }

  get hasData(): boolean {
    return this.buffered.length > 0;
  }

  close(): void {
    this.socket.destroy();
  }
}

export async function watcherStatus(mta: MtaInstance): Promise<StatusReply> {
  const reply = await askWatcher(instancePaths(mta.root), { op: 'status' });
  if (!reply) throw new Error('the watcher does not run');
  return reply as unknown as StatusReply;
}

/** Waits until no reload is pending, and returns the counts then. */
export async function settledReloads(mta: MtaInstance, until: (r: StatusReply['reloads']) => boolean, what: string): Promise<StatusReply['reloads']> {
  return waitFor(
    async () => {
      const r = (await watcherStatus(mta)).reloads;
      return !r.pending && until(r) ? r : null;
    },
    { timeoutMs: 20_000, intervalMs: 50, what },
  );
}

/** The JSON records of log/<file>. */
export function logRecords(mta: MtaInstance, file: string): Array<Record<string, unknown>> {
  const path = join(mta.root, 'log', file);
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
