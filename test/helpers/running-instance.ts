// A test instance that is started with start-msg: its etc/ files, the processes it runs (every
// pid seen is remembered, so that cleanup can kill them if stop-msg fails), and small
// raw-socket probes of its SMTP port.
import net from 'node:net';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeInstance, runCli, freePort, waitFor, type TestInstance, type CliResult } from './instance.js';

export interface ProcessRow {
  role: string;
  pid: number;
  service?: string;
  connections?: number;
  served?: number;
  [key: string]: unknown;
}

export const IMTA_CNF = `! test instance
localhost            $U%localhost@localhost
.                    $U%$H@tcp-daemon
[]                   $U%[$L]@tcp-daemon

l
localhost

tcp_local smtp mx
tcp-daemon
`;

export class MtaInstance {
  readonly pids = new Set<number>();
  private constructor(readonly inst: TestInstance, readonly address: string, readonly port: number) {}

  get root(): string {
    return this.inst.root;
  }

  /** A new instance with a [SERVICE=SMTP] on `address`:<free port>; `service` adds lines to that section. */
  static async create(opts: { address: string; service?: string; globals?: string }): Promise<MtaInstance> {
    const port = await freePort(opts.address);
    const inst = makeInstance({
      files: {
        'etc/imta.cnf': IMTA_CNF,
        'etc/dispatcher.cnf': `${opts.globals ?? ''}\n[SERVICE=SMTP]\nPORT=${port}\nINTERFACE_ADDRESS=${opts.address}\n${opts.service ?? ''}\n`,
        'etc/job_controller.cnf': '[POOL=DEFAULT]\nJOB_LIMIT=2\n',
        'etc/option.dat': 'INTERNAL_IP=127.0.0.0/8\n',
      },
    });
    return new MtaInstance(inst, opts.address, port);
  }

  cli(command: string, args: string[], timeoutMs = 30_000): Promise<CliResult> {
    return runCli(command, [...args, '--root', this.root], { timeoutMs });
  }

  imsimta(args: string[], timeoutMs = 30_000): Promise<CliResult> {
    return runCli('imsimta', [...args, '--root', this.root], { timeoutMs });
  }

  async processes(): Promise<ProcessRow[]> {
    const r = await this.imsimta(['process', '--json']);
    if (r.code !== 0) throw new Error(`imsimta process: ${r.code} ${r.stderr}`);
    const rows = r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as ProcessRow);
    for (const row of rows) if (typeof row.pid === 'number') this.pids.add(row.pid);
    return rows;
  }

  async pidOf(role: string): Promise<number | undefined> {
    return (await this.processes()).find((r) => r.role === role)?.pid;
  }

  /** Files left in run/ (pid files, sockets). */
  runFiles(): string[] {
    const dir = join(this.root, 'run');
    return existsSync(dir) ? readdirSync(dir) : [];
  }

  /** stop-msg; when that fails, SIGKILL every pid seen. Then removes the directory. */
  async cleanup(): Promise<void> {
    try {
      const r = await this.cli('stop-msg', [], 60_000);
      if (r.code !== 0) throw new Error(r.stderr);
    } catch {
      /* fall through to the kills */
    }
    for (const pid of this.pids) {
      // pid_max is small here and pids wrap during long tests: kill only what is still ours.
      if (!belongsToInstance(pid, this.root)) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    this.inst.remove();
  }
}

/** Whether `pid` is a live process of the instance at `root` (its environment names IMTA_ROOT=root). */
export function belongsToInstance(pid: number, root: string): boolean {
  let environ: string;
  try {
    environ = readFileSync(`/proc/${pid}/environ`, 'latin1');
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    if (stat[stat.lastIndexOf(')') + 2] === 'Z') return false;
  } catch {
    return false;
  }
  return environ.split('\0').includes(`IMTA_ROOT=${root}`);
}

/** Running (a zombie not reaped yet by its new parent counts as gone). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

/** A raw TCP session that collects what the server sends. */
export class RawSession {
  received = '';
  closed = false;
  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (this.received += d));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => {});
  }

  /** `localAddress`: the client's address (a loopback one), for limits per client address. */
  static open(host: string, port: number, timeoutMs = 5000, localAddress?: string): Promise<RawSession> {
    return new Promise((resolve, reject) => {
      // Half-open: a server that answers and closes its side (421) still holds the session until we close ours.
      const socket = net.createConnection({ host, port, allowHalfOpen: true, ...(localAddress ? { localAddress } : {}) });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to ${host}:${port} timed out`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(new RawSession(socket));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /** The first reply line (the greeting), waited for up to `timeoutMs`. */
  banner(timeoutMs = 10_000): Promise<string> {
    return waitFor(() => (this.received.includes('\n') ? this.received.split('\n')[0]!.trimEnd() : this.closed ? 'CLOSED' : null), {
      timeoutMs,
      intervalMs: 10,
      what: 'an SMTP greeting',
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Connects, reads the greeting line, closes. */
export async function greeting(host: string, port: number, timeoutMs = 10_000): Promise<string> {
  const s = await RawSession.open(host, port);
  try {
    return await s.banner(timeoutMs);
  } finally {
    s.close();
  }
}

/** True when nothing listens on host:port. */
export function refused(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.createConnection({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

/** A greeting from an SMTP server process: 2xx or 4xx, and not one of the dispatcher's own refusals. */
export const SERVER_GREETING = /^[24]\d\d[ -](?!4\.3\.2 Too many connections|4\.3\.2 Service shutting down|4\.3\.0 Service temporarily unavailable)/;
