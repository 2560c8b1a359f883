// Dispatcher hand-off benchmark: connections per second through the dispatcher to the SMTP
// server processes (connect, read the greeting line, close), on a temporary instance started
// with start-msg on 127.0.4.200. Prints connections/s and p50/p99 greeting latency per
// concurrency level.
//   node dist/bench/accept.js [--seconds 5] [--concurrency 1,20,100] [--procs 2] [--json]
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ADDRESS = '127.0.4.200';
const repo = fileURLToPath(new URL('../..', import.meta.url));

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const seconds = Number(option('seconds', '5'));
const levels = option('concurrency', '1,20,100').split(',').map(Number);
const procs = Number(option('procs', '2'));
const asJson = process.argv.includes('--json');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, ADDRESS, () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** One connection: connect, wait for the first line, close. Resolves with the ms it took. */
function greet(port: number): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ host: ADDRESS, port });
    let buffered = '';
    socket.setEncoding('utf8');
    socket.setTimeout(10_000, () => socket.destroy(new Error('no greeting within 10 s')));
    socket.on('data', (d: string) => {
      buffered += d;
      if (buffered.includes('\n')) {
        socket.destroy();
        resolve(performance.now() - t0);
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error('closed before the greeting')));
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : 0;
}

async function run(port: number, concurrency: number) {
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  const deadline = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        try {
          latencies.push(await greet(port));
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    concurrency,
    connections: latencies.length,
    errors,
    seconds: Number(elapsed.toFixed(2)),
    perSecond: Math.round(latencies.length / elapsed),
    p50ms: Number(percentile(latencies, 50).toFixed(2)),
    p99ms: Number(percentile(latencies, 99).toFixed(2)),
  };
}

const root = mkdtempSync(join(tmpdir(), 'tsubame-bench-accept-'));
const port = await freePort();
for (const d of ['etc', 'queue', 'log', 'run']) mkdirSync(join(root, d), { recursive: true });
writeFileSync(join(root, 'etc/imta.cnf'), 'localhost $U%localhost@localhost\n.         $U%$H@tcp-daemon\n\nl\nlocalhost\n\ntcp_local smtp mx\ntcp-daemon\n');
writeFileSync(join(root, 'etc/dispatcher.cnf'), `[SERVICE=SMTP]\nPORT=${port}\nINTERFACE_ADDRESS=${ADDRESS}\nMIN_PROCS=${procs}\nMAX_PROCS=${procs}\nMIN_CONNS=50\nMAX_CONNS=200\nMAX_LIFE_CONNS=0\nMAX_HANDOFFS=50\n`);
writeFileSync(join(root, 'etc/job_controller.cnf'), '[POOL=DEFAULT]\nJOB_LIMIT=1\n');
writeFileSync(join(root, 'etc/option.dat'), 'INTERNAL_IP=127.0.0.0/8\n');
const cli = (cmd: string) => spawnSync(join(repo, 'bin', cmd), ['--root', root], { encoding: 'utf8', timeout: 60_000 });
try {
  const started = cli('start-msg');
  if (started.status !== 0) throw new Error(`start-msg: ${started.stderr.trim()}`);
  await greet(port); // warm
  const results = [];
  for (const c of levels) results.push(await run(port, c));
  if (asJson) console.log(JSON.stringify({ bench: 'accept', procs, results }));
  else {
    console.log(`dispatcher hand-off, ${procs} SMTP server processes, ${seconds} s per level`);
    for (const r of results) console.log(`  concurrency ${String(r.concurrency).padStart(3)}: ${r.perSecond} conn/s  p50 ${r.p50ms} ms  p99 ${r.p99ms} ms  (${r.connections} ok, ${r.errors} errors)`);
  }
} finally {
  cli('stop-msg');
  rmSync(root, { recursive: true, force: true });
}
