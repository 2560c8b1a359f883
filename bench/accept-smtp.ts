// Accept-rate benchmark: how fast messages get into the queue over SMTP, tsubame against
// Postfix's smtpd on the same machine in the same run.
//
//   node dist/bench/accept-smtp.js [--messages 10000] [--sessions 20] [--size 1024] [--runs 3]
//        [--modes new,reuse] [--only tsubame|postfix] [--mtas postfix,tsubame,floor-file,…]
//        [--dispatcher tuned|shipped] [--procs 2] [--accept-mode shared|handoff] [--writer-threads 1] [--json]
//
// smtp-source -s SESSIONS -m MESSAGES -l SIZE sends the load: mode "new" opens a connection per
// message, mode "reuse" adds -d (each session keeps its connection for all its messages).
// Nothing is delivered while it runs, so only the accept path is measured:
// - tsubame: the shipped etc/ with its tcp_local channel stopped (`imsimta qm stop tcp_local`);
//   the SMTP server processes still write, fsync and log every message and tell the job
//   controller, which indexes it. `--dispatcher tuned` (default) runs `--procs` (2) SMTP server processes
//   that never retire; `shipped` keeps the shipped dispatcher.cnf (MAX_LIFE_CONNS=100 etc.).
//   `--accept-mode` sets the service's ACCEPT_MODE (default: the shipped one, SHARED). Each run
//   reports how the server processes shared the sessions (`imsimta process --json` served).
// - Postfix: bench/postfix/instance.sh, then `smtpd_client_restrictions = check_client_access
//   static:HOLD`, so that cleanup writes (and fsyncs) each message into the hold queue and qmgr
//   never sees it.
// - floor-file, floor-file-thread, floor-journal, floor-smtp-server (only when --mtas names them):
//   bench/lib/accept-floor-server.ts, the least a Node.js responder can do per message with
//   --procs processes, keeping each message in a fsynced file of its own (what DESIGN.md asks of
//   tsubame; through libuv's pool, or by a writer thread in batches) or in a group-committed
//   journal; and the same file with smtp-server in front.
// Each MTA gets a fresh instance per run and mode and a 200-message warm-up; the order of the
// two alternates between runs. The instance directories are removed only at the end: on ext4
// a file system with many recently deleted inodes makes every file creation slower for a few
// minutes (docs/BENCHMARKS.md, "Durable enqueue"), which would penalise whoever runs next. Reported per run: msg/s (messages / smtp-source wall time) and
// the CPU the MTA's whole process tree used per message (user + system, from /proc), which
// other load on the machine changes much less than the rate.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { machineDescription, repoRoot, runSmtpSource, startPostfix, waitListening, waitRefused, type PostfixInstance } from './lib/peers.js';
import { loadAverage, treeCpuSeconds } from './lib/proc-stats.js';
import { discardDir } from './lib/discard.js';
import { floorMessages, type FloorKind } from './lib/accept-floor-server.js';

const execFileP = promisify(execFile);

const POSTFIX_ADDRESS = '127.0.9.10';
const POSTFIX_PORT = 2625;
const TSUBAME_ADDRESS = '127.0.9.11';
const TSUBAME_PORT = 2626;
/** Where nothing listens: Postfix's relay host and tsubame's tcp_local smart host. */
const NOWHERE = '127.0.9.12';
const WARM_UP = 200;

type Mode = 'new' | 'reuse';
type Mta = 'tsubame' | 'postfix' | 'floor-file' | 'floor-file-thread' | 'floor-journal' | 'floor-smtp-server';
const MTAS: Mta[] = ['postfix', 'tsubame', 'floor-file', 'floor-file-thread', 'floor-journal', 'floor-smtp-server'];
const FLOOR_ADDRESS = '127.0.9.13';
const FLOOR_PORT = 2627;

interface Options {
  messages: number;
  sessions: number;
  size: number;
  runs: number;
  modes: Mode[];
  only: Mta | null;
  /** The MTAs measured, in this order on odd runs (reversed on even ones). */
  mtas: Mta[];
  dispatcher: 'tuned' | 'shipped';
  /** Server processes with `--dispatcher tuned`. */
  procs: number;
  /** Writer threads per process of floor-file-thread. */
  writerThreads: number;
  /** ACCEPT_MODE of the service; null: as shipped. */
  acceptMode: 'shared' | 'handoff' | null;
  json: boolean;
}

interface RunResult {
  run: number;
  mode: Mode;
  mta: Mta;
  messages: number;
  seconds: number;
  perSecond: number;
  cpuMsPerMessage: number;
  loadAverage: string;
  /** tsubame: sessions each SMTP server process served (warm-up included), largest first. */
  spread?: number[];
}

function parseOptions(argv: string[]): Options {
  const o: Options = { messages: 10_000, sessions: 20, size: 1024, runs: 3, modes: ['new', 'reuse'], only: null, mtas: ['postfix', 'tsubame'], dispatcher: 'tuned', procs: 2, writerThreads: 1, acceptMode: null, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--messages') o.messages = Number(value());
    else if (a === '--sessions') o.sessions = Number(value());
    else if (a === '--size') o.size = Number(value());
    else if (a === '--runs') o.runs = Number(value());
    else if (a === '--modes') o.modes = value().split(',') as Mode[];
    else if (a === '--only') o.only = value() as Mta;
    else if (a === '--mtas') o.mtas = value().split(',') as Mta[];
    else if (a === '--dispatcher') o.dispatcher = value() as Options['dispatcher'];
    else if (a === '--procs') o.procs = Number(value());
    else if (a === '--writer-threads') o.writerThreads = Number(value());
    else if (a === '--accept-mode') o.acceptMode = value() as Options['acceptMode'];
    else if (a === '--json') o.json = true;
    else throw new Error(`unknown option ${a}`);
  }
  if (o.modes.some((m) => m !== 'new' && m !== 'reuse')) throw new Error('--modes takes new and/or reuse');
  if (o.only && o.only !== 'tsubame' && o.only !== 'postfix') throw new Error('--only takes tsubame or postfix');
  if (o.mtas.length === 0 || o.mtas.some((m) => !MTAS.includes(m))) throw new Error(`--mtas takes a list of ${MTAS.join(', ')}`);
  if (o.only) o.mtas = [o.only];
  if (o.dispatcher !== 'tuned' && o.dispatcher !== 'shipped') throw new Error('--dispatcher takes tuned or shipped');
  if (!Number.isInteger(o.procs) || o.procs < 1) throw new Error('--procs takes a whole number of processes, 1 or more');
  if (!Number.isInteger(o.writerThreads) || o.writerThreads < 1) throw new Error('--writer-threads takes a whole number of threads, 1 or more');
  if (o.acceptMode !== null && o.acceptMode !== 'shared' && o.acceptMode !== 'handoff') throw new Error('--accept-mode takes shared or handoff');
  return o;
}

/** A running MTA under test: where it listens, the root of its process tree, how many messages it holds. */
interface Target {
  host: string;
  port: number;
  rootPid(): number;
  queued(): Promise<number>;
  /** Sessions served per SMTP server process (tsubame). */
  spread?(): Promise<number[]>;
  /** Stops it; its directory stays until removeLeftovers(). */
  stop(): Promise<void>;
}

const leftovers: string[] = [];
function removeLeftovers(): void {
  for (const dir of leftovers.splice(0)) discardDir(dir);
}

async function startTsubame(o: Options): Promise<Target> {
  const root = mkdtempSync(join(tmpdir(), 'tsubame-bench-accept-smtp-'));
  leftovers.push(root);
  cpSync(join(repoRoot, 'etc'), join(root, 'etc'), { recursive: true });
  for (const d of ['queue', 'log', 'run']) mkdirSync(join(root, d), { recursive: true });
  const imta = join(root, 'etc', 'imta.cnf');
  writeFileSync(imta, readFileSync(imta, 'utf8').replace(/^(tcp_local\s[^\n]*)$/m, `$1 daemon ${NOWHERE} port 9`));
  // Mode "reuse" keeps 20 sessions for all 10,000 messages: one may carry more than the shipped
  // MAX_MESSAGES_PER_SESSION (1,000), which Postfix's smtpd, the comparison, does not limit.
  appendFileSync(join(root, 'etc', 'option.dat'), '\nMAX_MESSAGES_PER_SESSION=1000000\n');
  const dispatcherCnf = join(root, 'etc', 'dispatcher.cnf');
  const shipped = readFileSync(dispatcherCnf, 'utf8').replace(/^PORT=.*$/m, `PORT=${TSUBAME_PORT}\nINTERFACE_ADDRESS=${TSUBAME_ADDRESS}`);
  const mode = o.acceptMode ? `ACCEPT_MODE=${o.acceptMode.toUpperCase()}\n` : '';
  const tuned = `\n! bench: ${o.procs} server processes, kept for the whole run\nMIN_PROCS=${o.procs}\nMAX_PROCS=${o.procs}\nMIN_CONNS=5\nMAX_CONNS=500\nMAX_LIFE_CONNS=0\nMAX_LIFE_TIME=0\n`;
  writeFileSync(dispatcherCnf, shipped.replace(/^(\[SERVICE=SMTP\]\n(?:.*\n)*?INTERFACE_ADDRESS=.*\n)/m, `$1${o.dispatcher === 'tuned' ? tuned : ''}${mode}`));
  const cli = (cmd: string, args: string[] = []) => execFileP(join(repoRoot, 'bin', cmd), [...args, '--root', root], { timeout: 120_000 });
  await cli('imsimta', ['qm', 'stop', 'tcp_local']);
  await cli('start-msg');
  await waitListening(TSUBAME_ADDRESS, TSUBAME_PORT, 10_000);
  const watcherPid = Number(readFileSync(join(root, 'run', 'watcher.pid'), 'utf8').trim());
  return {
    host: TSUBAME_ADDRESS,
    port: TSUBAME_PORT,
    rootPid: () => watcherPid,
    async queued() {
      const { stdout } = await cli('imsimta', ['qm', 'summarize', '--json']);
      return (JSON.parse(stdout) as { messages: number }).messages;
    },
    async spread() {
      const { stdout } = await cli('imsimta', ['process', '--json']);
      const rows = stdout.trim().split('\n').map((l) => JSON.parse(l) as { role: string; served?: number });
      return rows.filter((r) => r.role === 'smtp_server').map((r) => r.served ?? 0).sort((a, b) => b - a);
    },
    async stop() {
      await cli('stop-msg').catch((err: Error) => console.error(`stop-msg: ${err.message}`));
    },
  };
}

async function startHoldingPostfix(): Promise<Target> {
  const pf: PostfixInstance = await startPostfix(POSTFIX_ADDRESS, POSTFIX_PORT, NOWHERE, 9);
  leftovers.push(pf.dir);
  // The directory is kept until the end (see the top); the port must be free for the next run.
  const stop = async () => {
    await execFileP(join(repoRoot, 'bench', 'postfix', 'instance.sh'), ['stop', pf.dir]);
    await waitRefused(POSTFIX_ADDRESS, POSTFIX_PORT, 20_000);
  };
  try {
    const etc = join(pf.dir, 'etc');
    await execFileP('postconf', ['-c', etc, '-e', 'smtpd_client_restrictions = check_client_access static:HOLD']);
    await execFileP('postfix', ['-c', etc, 'reload']);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    host: POSTFIX_ADDRESS,
    port: POSTFIX_PORT,
    rootPid: pf.masterPid,
    async queued() {
      // Every message is in hold/ (or, if HOLD did not take, in the other queues: counted too, and the warm-up check fails).
      return ['hold', 'incoming', 'active', 'deferred', 'maildrop'].reduce((n, q) => n + countFiles(join(pf.dir, 'queue', q)), 0);
    },
    stop,
  };
}

async function startFloor(o: Options, durability: FloorKind): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), `tsubame-bench-accept-floor-${durability}-`));
  leftovers.push(dir);
  const server = spawn(process.execPath, [join(repoRoot, 'dist', 'bench', 'lib', 'accept-floor-server.js'), FLOOR_ADDRESS, String(FLOOR_PORT), dir, String(o.procs), durability, String(o.writerThreads)], { stdio: 'inherit' });
  await waitListening(FLOOR_ADDRESS, FLOOR_PORT, 10_000);
  return {
    host: FLOOR_ADDRESS,
    port: FLOOR_PORT,
    rootPid: () => server.pid!,
    queued: async () => floorMessages(dir),
    async stop() {
      server.kill('SIGTERM');
      await waitRefused(FLOOR_ADDRESS, FLOOR_PORT, 10_000);
    },
  };
}

function countFiles(dir: string): number {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) n += e.isDirectory() ? countFiles(join(dir, e.name)) : 1;
  return n;
}

function sourceArgs(o: Options, mode: Mode, messages: number, target: Target): string[] {
  const args = ['-s', String(o.sessions), '-m', String(messages), '-l', String(o.size), '-f', 'bench@source.test', '-t', 'user@sink.test'];
  if (mode === 'reuse') args.unshift('-d');
  return [...args, `${target.host}:${target.port}`];
}

async function measure(o: Options, run: number, mode: Mode, mta: Mta): Promise<RunResult> {
  const target =
    mta === 'tsubame' ? await startTsubame(o) : mta === 'postfix' ? await startHoldingPostfix() : await startFloor(o, mta.slice('floor-'.length) as FloorKind);
  try {
    const warm = await runSmtpSource(sourceArgs(o, mode, WARM_UP, target));
    if (warm.code !== 0) throw new Error(`${mta}: warm-up smtp-source failed: ${warm.stderr.trim()}`);
    const afterWarmUp = await target.queued();
    if (afterWarmUp !== WARM_UP) throw new Error(`${mta}: ${afterWarmUp} messages queued after a warm-up of ${WARM_UP}`);
    const load = loadAverage();
    const cpuBefore = treeCpuSeconds(target.rootPid());
    const source = await runSmtpSource(sourceArgs(o, mode, o.messages, target));
    const cpu = treeCpuSeconds(target.rootPid()) - cpuBefore;
    if (source.code !== 0) throw new Error(`${mta}: smtp-source failed: ${source.stderr.trim()}`);
    const queued = (await target.queued()) - WARM_UP;
    if (queued !== o.messages) throw new Error(`${mta}: ${queued} of ${o.messages} messages queued`);
    const spread = await target.spread?.();
    return {
      run,
      mode,
      mta,
      messages: o.messages,
      seconds: Number(source.seconds.toFixed(2)),
      perSecond: Math.round(o.messages / source.seconds),
      cpuMsPerMessage: Number(((cpu * 1000) / o.messages).toFixed(2)),
      loadAverage: load,
      ...(spread ? { spread } : {}),
    };
  } finally {
    await target.stop();
  }
}

const o = parseOptions(process.argv.slice(2));
const mtas: Mta[] = o.mtas;
if (!o.json) {
  console.log(`# accept benchmark ${new Date().toISOString()}`);
  console.log(`# ${await machineDescription()}; load average ${loadAverage()} at start`);
  console.log(`# ${o.messages} messages of ${o.size} bytes, smtp-source -s ${o.sessions}; tsubame dispatcher ${o.dispatcher}, ACCEPT_MODE ${o.acceptMode ?? 'as shipped'}; nothing delivered during the runs`);
}
const results: RunResult[] = [];
process.on('exit', removeLeftovers);
for (let run = 1; run <= o.runs; run++) {
  for (const mode of o.modes) {
    const order = run % 2 === 1 ? mtas : [...mtas].reverse();
    for (const mta of order) {
      const r = await measure(o, run, mode, mta);
      results.push(r);
      if (!o.json) {
        console.log(
          `run ${run} ${mode.padEnd(5)} ${mta.padEnd(17)} ${String(r.perSecond).padStart(6)} msg/s (${r.seconds.toFixed(2)} s)  ${r.cpuMsPerMessage.toFixed(2)} ms CPU/msg  load ${r.loadAverage}${r.spread ? `  sessions per process ${r.spread.join('/')}` : ''}`,
        );
      }
    }
  }
}
if (o.json) console.log(JSON.stringify({ bench: 'accept-smtp', options: o, results }));
else {
  for (const mode of o.modes) {
    const rates = (mta: Mta) => results.filter((r) => r.mode === mode && r.mta === mta).map((r) => r.perSecond);
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
    const cpus = (mta: Mta) => results.filter((r) => r.mode === mode && r.mta === mta).map((r) => r.cpuMsPerMessage);
    const postfix = mtas.includes('postfix') ? median(rates('postfix')) : null;
    for (const mta of mtas) {
      const m = median(rates(mta));
      const ratio = postfix && mta !== 'postfix' ? `, ${(m / postfix).toFixed(2)}× Postfix` : '';
      console.log(`# ${mode}: median ${mta} ${m} msg/s (${median(cpus(mta)).toFixed(2)} ms CPU/msg)${ratio}`);
    }
  }
}
