// A real Redis (Debian's redis-server) for the farm tests: its own configuration in a temporary
// directory (loopback address and port, no persistence), in the foreground, ready once it
// answers PING, stopped by its pid. `stop` and `start` again keep the address and port (a Redis
// that goes away and comes back, empty, as after a restart without persistence).
//
//   const redis = await startRedis({ host: '127.0.7.1' });
//   … redis.url … await redis.stop(); await redis.start(); … await redis.close();
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from './instance.js';

const REDIS_SERVER = ['/usr/bin/redis-server', '/usr/sbin/redis-server'].find((p) => existsSync(p)) ?? 'redis-server';

export interface TestRedis {
  host: string;
  port: number;
  url: string;
  pid(): number | null;
  /** Stops it (SIGKILL: as a crash; SIGTERM otherwise) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same address and port. */
  start(): Promise<void>;
  /** One command's reply over a raw connection (RESP), e.g. ['KEYS', '*']. */
  command(args: string[]): Promise<string>;
  close(): Promise<void>;
}

export async function startRedis(opts: { host?: string } = {}): Promise<TestRedis> {
  const host = opts.host ?? '127.0.0.1';
  const port = await freePort(host);
  const dir = mkdtempSync(join(tmpdir(), 'tsubame-redis-'));
  const config = join(dir, 'redis.conf');
  writeFileSync(config, [`bind ${host}`, `port ${port}`, `dir ${dir}`, 'save ""', 'appendonly no', 'protected-mode no', 'daemonize no', 'loglevel warning', `logfile ${join(dir, 'redis.log')}`, ''].join('\n'));
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  const start = async () => {
    const c = spawn(REDIS_SERVER, [config], { stdio: 'ignore' });
    child = c;
    exited = new Promise((resolve) => c.once('exit', () => resolve()));
    await waitFor(
      async () => {
        if (c.exitCode !== null) throw new Error(`redis-server exited (${c.exitCode}); see ${join(dir, 'redis.log')}`);
        return (await command(host, port, ['PING']).catch(() => '')) === '+PONG';
      },
      { timeoutMs: 10_000, what: 'redis-server to answer PING' },
    );
  };
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill(signal);
    await exited;
  };
  await start();
  return {
    host,
    port,
    url: `redis://${host}:${port}/0`,
    pid: () => child?.pid ?? null,
    stop,
    start,
    command: (args) => command(host, port, args),
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Sends one RESP command, resolves with the raw reply's text (first reply only, up to 2 s). */
function command(host: string, port: number, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    let got = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve(got.trimEnd());
    }, 2000);
    s.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.once('connect', () => s.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`));
    s.on('data', (d) => {
      got += d.toString();
      // Simple replies end at the first CRLF; arrays are read until a short pause (the timer) or complete.
      if (/^[+\-:]/.test(got) && got.endsWith('\r\n')) {
        clearTimeout(timer);
        s.destroy();
        resolve(got.trimEnd());
      }
    });
  });
}
