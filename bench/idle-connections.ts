// Idle-connection benchmark: the resident memory of one SMTP server process holding many idle
// sessions (greeted, EHLO answered, then silent), on an instance started with start-msg.
//
//   node dist/bench/idle-connections.js [--connections 1000] [--runs 3] [--json]
//
// The service has one SMTP server process (MIN_PROCS = MAX_PROCS = 1, MAX_CONNS above the
// count, no retirement). The connections come from 40 per loopback address (127.0.9.100 and
// up) so that the shipped MAX_CONNS_PER_IP (50) is kept. Reported per run: RSS of the server process after a warm-up
// (20 messages, so the code is loaded and compiled), with all connections open, and after they
// have closed; the difference per connection; the dispatcher's RSS with them open; the time it
// took to open them (each waits for its greeting and EHLO reply).
import net from 'node:net';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { machineDescription, repoRoot, runSmtpSource, waitListening } from './lib/peers.js';
import { loadAverage, rssBytes } from './lib/proc-stats.js';

const execFileP = promisify(execFile);
const SERVER_ADDRESS = '127.0.9.20';
const SERVER_PORT = 2627;
/** Connections per client address: below the shipped MAX_CONNS_PER_IP (50). */
const PER_ADDRESS = 40;
/** Client source addresses 127.0.9.100 and up, enough for `count` connections. */
function clientAddresses(count: number): string[] {
  const n = Math.ceil(count / PER_ADDRESS);
  if (100 + n > 255) throw new Error(`at most ${(255 - 100) * PER_ADDRESS} connections (client addresses 127.0.9.100-254)`);
  return Array.from({ length: n }, (_, i) => `127.0.9.${100 + i}`);
}
/** Connections being opened at once. */
const OPEN_CONCURRENCY = 50;

interface Options {
  connections: number;
  runs: number;
  json: boolean;
}

interface RunResult {
  run: number;
  connections: number;
  rssIdleMiB: number;
  rssLoadedMiB: number;
  rssAfterMiB: number;
  bytesPerConnection: number;
  dispatcherRssMiB: number;
  openSeconds: number;
  loadAverage: string;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { connections: 1000, runs: 3, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--connections') o.connections = Number(argv[++i]);
    else if (a === '--runs') o.runs = Number(argv[++i]);
    else if (a === '--json') o.json = true;
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

/** Opens a session and waits for the greeting and the EHLO reply; the socket then stays idle. */
function openIdleSession(localAddress: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ host: SERVER_ADDRESS, port: SERVER_PORT, localAddress });
    let buffered = '';
    let stage: 'greeting' | 'ehlo' = 'greeting';
    socket.setEncoding('latin1');
    socket.setTimeout(30_000, () => socket.destroy(new Error(`no ${stage} reply within 30 s`)));
    const onData = (d: string) => {
      buffered += d;
      // A reply is complete at a line "NNN text" (no dash after the code).
      if (!/(^|\n)\d{3} [^\n]*\r\n$/.test(buffered)) return;
      if (!buffered.startsWith(stage === 'greeting' ? '220' : '250')) return fail(new Error(`unexpected ${stage} reply: ${buffered.trim()}`));
      buffered = '';
      if (stage === 'greeting') {
        stage = 'ehlo';
        socket.write('EHLO idle.client.test\r\n');
        return;
      }
      socket.off('data', onData);
      socket.off('error', fail);
      socket.setTimeout(0);
      socket.on('error', () => {});
      resolve(socket);
    };
    const fail = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    socket.on('data', onData);
    socket.once('error', fail);
    socket.once('close', () => fail(new Error(`closed during the ${stage}`)));
  });
}

async function openMany(count: number): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  const addresses = clientAddresses(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(OPEN_CONCURRENCY, count) }, async () => {
      while (next < count) {
        const i = next++;
        sockets.push(await openIdleSession(addresses[i % addresses.length]!));
      }
    }),
  );
  return sockets;
}

interface ProcessRow {
  role: string;
  pid: number;
  connections?: number;
}

async function startInstance(o: Options): Promise<{ root: string; cli: (cmd: string, args?: string[]) => Promise<{ stdout: string }> }> {
  const root = mkdtempSync(join(tmpdir(), 'tsubame-bench-idle-'));
  cpSync(join(repoRoot, 'etc'), join(root, 'etc'), { recursive: true });
  for (const d of ['queue', 'log', 'run']) mkdirSync(join(root, d), { recursive: true });
  const dispatcherCnf = join(root, 'etc', 'dispatcher.cnf');
  const service = `PORT=${SERVER_PORT}\nINTERFACE_ADDRESS=${SERVER_ADDRESS}\nMIN_PROCS=1\nMAX_PROCS=1\nMIN_CONNS=${o.connections + 100}\nMAX_CONNS=${o.connections + 100}\nMAX_LIFE_CONNS=0\nMAX_LIFE_TIME=0`;
  writeFileSync(dispatcherCnf, readFileSync(dispatcherCnf, 'utf8').replace(/^PORT=.*$/m, service));
  const cli = (cmd: string, args: string[] = []) => execFileP(join(repoRoot, 'bin', cmd), [...args, '--root', root], { timeout: 120_000 });
  await cli('imsimta', ['qm', 'stop', 'tcp_local']); // the warm-up mail stays queued
  await cli('start-msg');
  await waitListening(SERVER_ADDRESS, SERVER_PORT, 10_000);
  return { root, cli };
}

async function processes(cli: (cmd: string, args?: string[]) => Promise<{ stdout: string }>): Promise<ProcessRow[]> {
  const { stdout } = await cli('imsimta', ['process', '--json']);
  return stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as ProcessRow);
}

async function waitFor<T>(check: () => Promise<T | null>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const MiB = 2 ** 20;
const mib = (bytes: number) => Number((bytes / MiB).toFixed(1));

async function measure(o: Options, run: number): Promise<RunResult> {
  const { root, cli } = await startInstance(o);
  let sockets: net.Socket[] = [];
  try {
    const warm = await runSmtpSource(['-s', '5', '-m', '20', '-f', 'warm@client.test', '-t', 'someone@remote.test', `${SERVER_ADDRESS}:${SERVER_PORT}`]);
    if (warm.code !== 0) throw new Error(`warm-up: ${warm.stderr.trim()}`);
    const rows = await processes(cli);
    const servers = rows.filter((r) => r.role === 'smtp_server');
    if (servers.length !== 1) throw new Error(`expected one SMTP server process, found ${servers.length}`);
    const server = servers[0]!.pid;
    const dispatcher = rows.find((r) => r.role === 'dispatcher')!.pid;
    await waitFor(async () => ((await processes(cli)).find((r) => r.pid === server)?.connections === 0 ? true : null), 'the warm-up sessions to end');
    const rssIdle = rssBytes(server)!;

    const started = performance.now();
    sockets = await openMany(o.connections);
    const openSeconds = (performance.now() - started) / 1000;
    await waitFor(async () => ((await processes(cli)).find((r) => r.pid === server)?.connections === o.connections ? true : null), `${o.connections} connections on the server process`);
    const rssLoaded = rssBytes(server)!;
    const dispatcherRss = rssBytes(dispatcher)!;

    for (const s of sockets) s.destroy();
    sockets = [];
    await waitFor(async () => ((await processes(cli)).find((r) => r.pid === server)?.connections === 0 ? true : null), 'the connections to close');
    const rssAfter = rssBytes(server)!;
    return {
      run,
      connections: o.connections,
      rssIdleMiB: mib(rssIdle),
      rssLoadedMiB: mib(rssLoaded),
      rssAfterMiB: mib(rssAfter),
      bytesPerConnection: Math.round((rssLoaded - rssIdle) / o.connections),
      dispatcherRssMiB: mib(dispatcherRss),
      openSeconds: Number(openSeconds.toFixed(2)),
      loadAverage: loadAverage(),
    };
  } finally {
    for (const s of sockets) s.destroy();
    await cli('stop-msg').catch((err: Error) => console.error(`stop-msg: ${err.message}`));
    rmSync(root, { recursive: true, force: true });
  }
}

const o = parseOptions(process.argv.slice(2));
if (!o.json) {
  console.log(`# idle connections benchmark ${new Date().toISOString()}`);
  console.log(`# ${await machineDescription()}; load average ${loadAverage()} at start`);
  console.log(`# ${o.connections} idle sessions (after EHLO) on one SMTP server process`);
}
const results: RunResult[] = [];
for (let run = 1; run <= o.runs; run++) {
  const r = await measure(o, run);
  results.push(r);
  if (!o.json) {
    console.log(
      `run ${run}: server RSS ${r.rssIdleMiB} MiB idle → ${r.rssLoadedMiB} MiB with ${r.connections} connections (${(r.bytesPerConnection / 1024).toFixed(1)} KiB each) → ${r.rssAfterMiB} MiB after they closed; dispatcher ${r.dispatcherRssMiB} MiB; opened in ${r.openSeconds} s; load ${r.loadAverage}`,
    );
  }
}
if (o.json) console.log(JSON.stringify({ bench: 'idle-connections', options: o, results }));
