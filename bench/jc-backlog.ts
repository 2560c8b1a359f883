// Job controller backlog benchmark: a large queue written while the job controller is stopped,
// then drained through tcp_local to smtp-sink; and the start-up scan of a large queue.
//
//   node dist/bench/jc-backlog.js [--messages 200000] [--scan-messages 100000]
//        [--max-messages 10000] [--runs 2] [--writers 64] [--json]
//
// Per run, two phases, each on a fresh instance (the shipped etc/, tcp_local sent to the sink
// with `daemon 127.0.15.2 port N`; the files go to tcp_local's `subdirs 8`), deleted afterwards:
//
// - drain: --messages files of ~1 KiB written with QueueStore before anything runs,
//   MAX_MESSAGES=--max-messages, then `start-msg job_controller`. Reported: the time until the
//   sink has counted them all and `qm summarize --json` says 0, the job controller's peak RSS
//   (VmHWM, and the largest VmRSS sampled every 100 ms), its CPU time, and its scans.
// - scan: --scan-messages files with tcp_local stopped (`qm stop`, so nothing competes), the
//   shipped MAX_MESSAGES=100000 so that the whole queue is read into the index. Reported: the
//   scan duration from the job controller's "queue scanned" log record (start() to index
//   filled), and the wall time from `start-msg job_controller` to that record.
import { mkdtempSync, rmSync, cpSync, readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startSmtpSink, waitUntil, repoRoot, machineDescription, type Sink } from './lib/peers.js';
import { loadAverage, treeCpuSeconds } from './lib/proc-stats.js';
import { queueStoreFor, writeStoppedChannels, type EnvelopeDraft } from '../src/queue/index.js';
import { instancePaths } from '../src/common/instance.js';
import { loadInstanceConfigOrThrow } from '../src/config/load.js';
import { requestJson } from '../src/common/ipc-socket.js';

const execFileP = promisify(execFile);

const SINK_HOST = '127.0.15.2';
const SINK_PORT = 2560;
const CHANNEL = 'tcp_local';

interface Options {
  messages: number;
  scanMessages: number;
  maxMessages: number;
  runs: number;
  writers: number;
  json: boolean;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { messages: 200_000, scanMessages: 100_000, maxMessages: 10_000, runs: 2, writers: 64, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const n = () => Number(argv[++i]);
    if (a === '--messages') o.messages = n();
    else if (a === '--scan-messages') o.scanMessages = n();
    else if (a === '--max-messages') o.maxMessages = n();
    else if (a === '--runs') o.runs = n();
    else if (a === '--writers') o.writers = n();
    else if (a === '--json') o.json = true;
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

interface DrainResult {
  run: number;
  messages: number;
  writeSeconds: number;
  drainSeconds: number;
  perSecond: number;
  peakRssMiB: number;
  sampledRssMiB: number;
  cpuSeconds: number;
  scans: number;
  /** Sum of the scans' durations (their "queue scanned" records): wall time, overlapping delivery. */
  scanSeconds: number;
  highWater: number;
  loadAverage: string;
}

interface ScanResult {
  run: number;
  messages: number;
  /** From the "queue scanned" record: start() to the index filled. */
  scanMs: number;
  /** `start-msg job_controller` invoked → the record written (process start-up included). */
  wallMs: number;
  /** CPU time of the job controller process when the record was seen (start-up included). */
  cpuMs: number;
  admitted: number;
  peakRssMiB: number;
  loadAverage: string;
}

// ------------------------------------------------------------------------------- instance

function makeInstance(maxMessages: number): string {
  const root = mkdtempSync(join(tmpdir(), 'tsubame-jcbench-'));
  cpSync(join(repoRoot, 'etc'), join(root, 'etc'), { recursive: true });
  for (const d of ['queue', 'log', 'run']) mkdirSync(join(root, d), { recursive: true });
  const imta = join(root, 'etc', 'imta.cnf');
  writeFileSync(imta, readFileSync(imta, 'utf8').replace(/^(tcp_local\s[^\n]*)$/m, `$1 daemon ${SINK_HOST} port ${SINK_PORT}`));
  const jc = join(root, 'etc', 'job_controller.cnf');
  writeFileSync(jc, readFileSync(jc, 'utf8').replace(/^MAX_MESSAGES=.*$/m, `MAX_MESSAGES=${maxMessages}`));
  return root;
}

const body = (() => {
  const text = 'Received: from bench.example by jc-backlog\r\nFrom: <bench@source.test>\r\nTo: <user@sink.test>\r\nSubject: backlog\r\n\r\n';
  return Buffer.from(text + 'x'.repeat(1024 - text.length - 2) + '\r\n', 'latin1');
})();

function draft(n: number): EnvelopeDraft {
  return {
    channel: CHANNEL,
    from: 'bench@source.test',
    mailParams: { size: body.length },
    sourceChannel: 'tcp_intranet',
    clientAddress: '127.0.15.3',
    clientHelo: 'bench.example',
    arrival: new Date(),
    recipients: [{ address: `user${n % 1000}@sink.test`, original: `user${n % 1000}@sink.test`, orcpt: null, notify: null, state: 'pending', status: null }],
  };
}

/** Writes `count` queue files with the instance's own QueueStore (fsynced, as an SMTP server would). */
async function fillQueue(root: string, count: number, writers: number): Promise<number> {
  const store = queueStoreFor(instancePaths(root), loadInstanceConfigOrThrow(root));
  const started = performance.now();
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: writers }, async () => {
        while (next < count) await store.enqueue([draft(next++)], body);
      }),
    );
  } finally {
    await store.close();
  }
  return (performance.now() - started) / 1000;
}

async function cli(root: string, command: string, args: string[], timeoutMs = 300_000): Promise<string> {
  const { stdout } = await execFileP(join(repoRoot, 'bin', command), args, { env: { ...process.env, IMTA_ROOT: root }, timeout: timeoutMs, maxBuffer: 64 * 2 ** 20 });
  return stdout;
}

function jcPid(root: string): number | null {
  const path = join(root, 'run', 'job_controller.pid');
  if (!existsSync(path)) return null;
  const pid = Number(readFileSync(path, 'utf8').trim());
  return pid > 0 ? pid : null;
}

/** VmHWM (peak) and VmRSS of a process, in bytes; null when it is gone. */
function memory(pid: number): { hwm: number; rss: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? 0) * 1024;
    return { hwm: kb('VmHWM'), rss: kb('VmRSS') };
  } catch {
    return null;
  }
}

/** Samples the job controller's memory every 100 ms until stopped. */
function memorySampler(root: string) {
  let pid: number | null = null;
  let peakRss = 0;
  let hwm = 0;
  const sample = () => {
    pid ??= jcPid(root);
    const m = pid ? memory(pid) : null;
    if (m) {
      peakRss = Math.max(peakRss, m.rss);
      hwm = Math.max(hwm, m.hwm);
    }
  };
  const timer = setInterval(sample, 100);
  return {
    pid: () => pid,
    stop() {
      sample();
      clearInterval(timer);
      return { peakRss, hwm };
    },
  };
}

interface ScanRecord {
  reason: string;
  seen: number;
  admitted: number;
  ms: number;
  time: string;
}

function scanRecords(root: string): ScanRecord[] {
  const path = join(root, 'log', 'job_controller.log');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"queue scanned"'))
    .map((l) => JSON.parse(l) as ScanRecord);
}

async function stopAndRemove(root: string): Promise<void> {
  await cli(root, 'stop-msg', [], 200_000).catch((e: Error) => console.error(`stop-msg: ${e.message}`));
  rmSync(root, { recursive: true, force: true });
}

// --------------------------------------------------------------------------------- phases

async function drainPhase(o: Options, run: number, sink: Sink): Promise<DrainResult> {
  const root = makeInstance(o.maxMessages);
  try {
    const writeSeconds = await fillQueue(root, o.messages, o.writers);
    const base = sink.messages();
    const sampler = memorySampler(root);
    const started = process.hrtime.bigint();
    await cli(root, 'start-msg', ['job_controller']);
    await waitUntil(() => sink.messages() - base >= o.messages, 3_600_000, 50);
    // The sink counts at its 250; the file is removed just after: wait for the queue to be empty too.
    for (const deadline = Date.now() + 60_000; ; ) {
      const summary = JSON.parse(await cli(root, 'imsimta', ['qm', 'summarize', '--json'])) as { messages: number };
      if (summary.messages === 0) break;
      if (Date.now() > deadline) throw new Error(`${summary.messages} messages still queued after the sink counted them all`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const drainSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    const mem = sampler.stop();
    const pid = sampler.pid();
    const cpu = pid ? treeCpuSeconds(pid) : 0;
    const status = (await requestJson(instancePaths(root).jobControllerSocket, { op: 'status' }, 10_000)) as { index?: { scans: number; high_water: number } } | null;
    return {
      run,
      messages: o.messages,
      writeSeconds: round(writeSeconds, 1),
      drainSeconds: round(drainSeconds, 1),
      perSecond: Math.round(o.messages / drainSeconds),
      peakRssMiB: round(mem.hwm / 2 ** 20, 0),
      sampledRssMiB: round(mem.peakRss / 2 ** 20, 0),
      cpuSeconds: round(cpu, 1),
      scans: status?.index?.scans ?? -1,
      scanSeconds: round(scanRecords(root).reduce((sum, r) => sum + r.ms, 0) / 1000, 1),
      highWater: status?.index?.high_water ?? -1,
      loadAverage: loadAverage(),
    };
  } finally {
    await stopAndRemove(root);
  }
}

async function scanPhase(o: Options, run: number): Promise<ScanResult> {
  const root = makeInstance(100_000);
  try {
    await writeStoppedChannels(root, [CHANNEL]);
    await fillQueue(root, o.scanMessages, o.writers);
    const sampler = memorySampler(root);
    const started = performance.now();
    await cli(root, 'start-msg', ['job_controller']);
    const record = await waitFor(() => scanRecords(root).find((r) => r.reason === 'start'), 120_000);
    const wallMs = performance.now() - started;
    const pid = sampler.pid();
    const cpuMs = pid ? Math.round(treeCpuSeconds(pid) * 1000) : -1;
    const mem = sampler.stop();
    return {
      run,
      messages: o.scanMessages,
      scanMs: record.ms,
      wallMs: Math.round(wallMs),
      cpuMs,
      admitted: record.admitted,
      peakRssMiB: round(mem.hwm / 2 ** 20, 0),
      loadAverage: loadAverage(),
    };
  } finally {
    await stopAndRemove(root);
  }
}

async function waitFor<T>(check: () => T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`no "queue scanned" record within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function round(x: number, digits: number): number {
  return Number(x.toFixed(digits));
}

// ----------------------------------------------------------------------------------- main

const o = parseOptions(process.argv.slice(2));
console.log(`# job controller backlog benchmark ${new Date().toISOString()}`);
console.log(`# ${await machineDescription()}`);
console.log(`# drain ${o.messages} files of ${body.length} bytes (MAX_MESSAGES=${o.maxMessages}), scan ${o.scanMessages} files; load before ${loadAverage()}`);
const sink = await startSmtpSink(SINK_HOST, SINK_PORT);
const drains: DrainResult[] = [];
const scanResults: ScanResult[] = [];
try {
  for (let run = 1; run <= o.runs; run++) {
    const s = await scanPhase(o, run);
    scanResults.push(s);
    console.log(`run ${run} scan  ${s.messages} files: scan ${s.scanMs} ms (start-msg → scanned ${s.wallMs} ms, job controller CPU ${s.cpuMs} ms), ${s.admitted} admitted, peak RSS ${s.peakRssMiB} MiB, load ${s.loadAverage}`);
    const d = await drainPhase(o, run, sink);
    drains.push(d);
    console.log(
      `run ${run} drain ${d.messages} files (written in ${d.writeSeconds} s): ${d.drainSeconds} s, ${d.perSecond} msg/s, peak RSS ${d.peakRssMiB} MiB (sampled ${d.sampledRssMiB}), ` +
        `CPU ${d.cpuSeconds} s, ${d.scans} scans (${d.scanSeconds} s), index high water ${d.highWater}, load ${d.loadAverage}`,
    );
  }
} finally {
  await sink.stop();
}
if (o.json) console.log(JSON.stringify({ scans: scanResults, drains }));
