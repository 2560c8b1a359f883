// HAProxy (Debian's haproxy) as a real TCP load balancer on loopback, for the PROXY protocol and
// farm tests: started in the foreground with its own configuration in a temporary directory
// (the `global`/`defaults` below plus the caller's frontends and backends), checked with `-c`
// first so a bad line shows HAProxy's own message, ready once a private `listen` answers, stopped
// by its pid.
//
//   const lb = await startHaproxy({ sections: ['frontend fe', '  bind 127.0.3.1:2525', '  default_backend be', 'backend be', '  server s1 127.0.0.1:2526 send-proxy-v2'] });
//   … await lb.close();
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, waitFor } from './instance.js';

const HAPROXY = ['/usr/sbin/haproxy', '/usr/bin/haproxy'].find((p) => existsSync(p)) ?? 'haproxy';

export interface Haproxy {
  pid: number;
  /** What HAProxy wrote on stdout and stderr (warnings, alerts). */
  output(): string;
  close(): Promise<void>;
}

export async function startHaproxy(opts: { sections: string[]; readyHost?: string; timeoutMs?: number }): Promise<Haproxy> {
  const dir = mkdtempSync(join(tmpdir(), 'tsubame-haproxy-'));
  const readyHost = opts.readyHost ?? '127.0.0.1';
  const readyPort = await freePort(readyHost);
  const timeout = `${opts.timeoutMs ?? 10_000}ms`;
  const config = join(dir, 'haproxy.cfg');
  writeFileSync(
    config,
    [
      'global',
      '  maxconn 500',
      'defaults',
      '  mode tcp',
      '  timeout connect 2s',
      `  timeout client ${timeout}`,
      `  timeout server ${timeout}`,
      // Answers (and closes) as soon as HAProxy listens: the readiness probe.
      'listen tsubame_ready',
      `  bind ${readyHost}:${readyPort}`,
      '  tcp-request connection reject',
      ...opts.sections,
      '',
    ].join('\n'),
  );
  try {
    await promisify(execFile)(HAPROXY, ['-c', '-q', '-f', config]);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`haproxy refuses its configuration: ${(e.stderr || e.stdout || e.message).trim()}`, { cause: err });
  }
  const child: ChildProcess = spawn(HAPROXY, ['-db', '-f', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`haproxy exited: ${output.trim()}`);
        return connects(readyHost, readyPort);
      },
      { timeoutMs: 10_000, what: 'haproxy to listen' },
    );
  } catch (err) {
    await close();
    throw err;
  }
  return { pid: child.pid!, output: () => output, close };
}

function connects(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
