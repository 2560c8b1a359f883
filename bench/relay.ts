// Relay benchmark: smtp-source → MTA → smtp-sink, tsubame against Postfix in the same run.
//
//   node dist/bench/relay.js [--messages N] [--sessions S] [--runs R] [--size BYTES]
//        [--only tsubame|postfix] [--reuse] [--dispatcher tuned|shipped] [--accept-mode shared|handoff]
//        [--drain] [--json]
//
// --drain measures delivery alone: the messages are queued first with delivery held back
// (tsubame: `imsimta qm stop tcp_local`; Postfix: every message put on hold by
// `check_client_access static:HOLD`), then released at once (`qm start`; `postsuper -H ALL`
// and `postqueue -f`),
// and the time until the sink has them all is the drain time. CPU is counted for the drain only.
//
// For each MTA and run it reports the accept rate (messages / smtp-source wall time: every
// message is fsynced before its 250), the end-to-end rate (until the sink has counted them all)
// and the CPU the MTA's whole process tree used per message (user + system from /proc, which
// other load on the machine changes far less than the rates); for tsubame also the job
// controller's share (delivery, after the 250). Without --reuse every message comes on a new
// connection (smtp-source without -d).
//
// Both MTAs get a fresh instance per run and a 200-message warm-up that is not counted; the order
// alternates between runs. Postfix runs with bench/postfix/instance.sh (relayhost = the sink, no
// client limits). tsubame runs the shipped etc/ with tcp_local sent to the sink (`daemon` +
// `port`) and, with `--dispatcher tuned` (default, as bench/accept-smtp.ts), two SMTP server
// processes that never retire (the shipped MAX_LIFE_CONNS=100 starts a new Node process every
// 100 connections, which this load of one connection per message would mostly measure).
// `--accept-mode` sets the service's ACCEPT_MODE (default: the shipped one, SHARED).
import { mkdtempSync, cpSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startSmtpSink, runSmtpSource, startPostfix, waitUntil, repoRoot, machineDescription, waitListening, type Sink } from './lib/peers.js';
import { loadAverage, treeCpuSeconds } from './lib/proc-stats.js';
import { discardDir } from './lib/discard.js';

const execFileP = promisify(execFile);

interface Options {
  messages: number;
  sessions: number;
  runs: number;
  only: string | null;
  reuse: boolean;
  size: number;
  dispatcher: 'tuned' | 'shipped';
  acceptMode: 'shared' | 'handoff' | null;
  drain: boolean;
  json: boolean;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { messages: 5000, sessions: 20, runs: 3, only: null, reuse: false, size: 1024, dispatcher: 'tuned', acceptMode: null, drain: false, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--messages') o.messages = Number(argv[++i]);
    else if (a === '--sessions') o.sessions = Number(argv[++i]);
    else if (a === '--runs') o.runs = Number(argv[++i]);
    else if (a === '--only') o.only = argv[++i] ?? null;
    else if (a === '--size') o.size = Number(argv[++i]);
    else if (a === '--reuse') o.reuse = true;
    else if (a === '--dispatcher') o.dispatcher = argv[++i] as Options['dispatcher'];
    else if (a === '--accept-mode') o.acceptMode = argv[++i] as Options['acceptMode'];
    else if (a === '--json') o.json = true;
    else if (a === '--drain') o.drain = true;
    else throw new Error(`unknown option ${a}`);
  }
  if (o.dispatcher !== 'tuned' && o.dispatcher !== 'shipped') throw new Error('--dispatcher takes tuned or shipped');
  if (o.acceptMode !== null && o.acceptMode !== 'shared' && o.acceptMode !== 'handoff') throw new Error('--accept-mode takes shared or handoff');
  return o;
}

interface RunResult {
  run: number;
  mta: string;
  messages: number;
  acceptPerSec: number;
  endToEndPerSec: number;
  sourceSeconds: number;
  endToEndSeconds: number;
  cpuMsPerMessage: number;
  /** tsubame: the job controller's part of cpuMsPerMessage. */
  deliveryCpuMsPerMessage: number | null;
  loadAverage: string;
}

const SINK_HOST = '127.0.9.2';
const SINK_PORT = 2526;
const POSTFIX_HOST = '127.0.9.1';
const POSTFIX_PORT = 2525;
const TSUBAME_HOST = '127.0.9.3';
const TSUBAME_PORT = 2527;
const WARM_UP = 200;

interface Target {
  host: string;
  port: number;
  /** Process tree whose CPU is counted. */
  rootPid(): number;
  /** The job controller, when the MTA is tsubame. */
  deliveryPid(): number | null;
  /** --drain: hold delivery back, and let it go. */
  hold(): Promise<void>;
  release(): Promise<void>;
}

async function runPostfix(o: Options, run: number): Promise<RunResult> {
  const sink = await startSmtpSink(SINK_HOST, SINK_PORT);
  const pf = await startPostfix(POSTFIX_HOST, POSTFIX_PORT, SINK_HOST, SINK_PORT);
  try {
    const etc = join(pf.dir, 'etc');
    return await drive('postfix', run, o, sink, {
      host: POSTFIX_HOST,
      port: POSTFIX_PORT,
      rootPid: pf.masterPid,
      deliveryPid: () => null,
      async hold() {
        await execFileP('postconf', ['-c', etc, '-e', 'smtpd_client_restrictions = check_client_access static:HOLD']);
        await execFileP('postfix', ['-c', etc, 'reload']);
        // smtpd processes started before the reload finish with the old setting; idle ones exit at once.
        await new Promise((r) => setTimeout(r, 1500));
      },
      async release() {
        // Released mail goes to the deferred queue; the flush sends it at once.
        await execFileP('postsuper', ['-c', etc, '-H', 'ALL']);
        await execFileP('postqueue', ['-c', etc, '-f']);
      },
    });
  } finally {
    await pf.stop();
    await sink.stop();
  }
}

/** A tsubame instance whose tcp_local channel relays everything to the sink (daemon + port). */
async function runTsubame(o: Options, run: number): Promise<RunResult> {
  const sink = await startSmtpSink(SINK_HOST, SINK_PORT);
  const root = mkdtempSync(join(tmpdir(), 'tsubame-bench-'));
  cpSync(join(repoRoot, 'etc'), join(root, 'etc'), { recursive: true });
  for (const d of ['queue', 'log', 'run']) mkdirSync(join(root, d), { recursive: true });
  const imta = join(root, 'etc', 'imta.cnf');
  writeFileSync(imta, readFileSync(imta, 'utf8').replace(/^(tcp_local\s[^\n]*)$/m, `$1 daemon ${SINK_HOST} port ${SINK_PORT}`));
  const disp = join(root, 'etc', 'dispatcher.cnf');
  const tuned = 'MIN_PROCS=2\nMAX_PROCS=2\nMIN_CONNS=5\nMAX_CONNS=500\nMAX_LIFE_CONNS=0\nMAX_LIFE_TIME=0\n';
  writeFileSync(
    disp,
    readFileSync(disp, 'utf8')
      .replace(/^PORT=.*$/m, `PORT=${TSUBAME_PORT}`)
      .replace(/^(\[SERVICE=SMTP\])$/m, `$1\nINTERFACE_ADDRESS=${TSUBAME_HOST}\n${o.dispatcher === 'tuned' ? tuned : ''}${o.acceptMode ? `ACCEPT_MODE=${o.acceptMode.toUpperCase()}\n` : ''}`),
  );
  const env = { ...process.env, IMTA_ROOT: root };
  const pid = (name: string) => Number(readFileSync(join(root, 'run', `${name}.pid`), 'utf8').trim());
  try {
    await execFileP(join(repoRoot, 'bin', 'start-msg'), [], { env });
    await waitListening(TSUBAME_HOST, TSUBAME_PORT, 10000);
    const imsimta = (args: string[]) => execFileP(join(repoRoot, 'bin', 'imsimta'), args, { env });
    return await drive('tsubame', run, o, sink, {
      host: TSUBAME_HOST,
      port: TSUBAME_PORT,
      rootPid: () => pid('watcher'),
      deliveryPid: () => pid('job_controller'),
      hold: async () => void (await imsimta(['qm', 'stop', 'tcp_local'])),
      release: async () => void (await imsimta(['qm', 'start', 'tcp_local'])),
    });
  } finally {
    await execFileP(join(repoRoot, 'bin', 'stop-msg'), [], { env }).catch((e: Error) => console.error(`stop-msg: ${e.message}`));
    discardDir(root);
    await sink.stop();
  }
}

async function send(o: Options, target: Target, messages: number) {
  const args = ['-s', String(o.sessions), '-m', String(messages), '-l', String(o.size), '-f', 'bench@source.test', '-t', 'user@sink.test'];
  if (o.reuse) args.unshift('-d');
  const source = await runSmtpSource([...args, `${target.host}:${target.port}`]);
  if (source.code !== 0) throw new Error(`smtp-source failed: ${source.stderr.trim()}`);
  return source;
}

async function drive(mta: string, run: number, o: Options, sink: Sink, target: Target): Promise<RunResult> {
  await send(o, target, WARM_UP);
  await waitUntil(() => sink.messages() >= WARM_UP, 120_000);
  const base = sink.messages();
  let source: Awaited<ReturnType<typeof send>> | null = null;
  if (o.drain) {
    await target.hold();
    source = await send(o, target, o.messages);
  }
  const cpu0 = treeCpuSeconds(target.rootPid());
  const deliveryPid = target.deliveryPid();
  const dcpu0 = deliveryPid ? treeCpuSeconds(deliveryPid) : 0;
  const started = process.hrtime.bigint();
  if (o.drain) await target.release();
  else source = await send(o, target, o.messages);
  await waitUntil(() => sink.messages() - base >= o.messages, 600_000, 5);
  const e2e = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = treeCpuSeconds(target.rootPid()) - cpu0;
  const dcpu = deliveryPid ? treeCpuSeconds(deliveryPid) - dcpu0 : null;
  return {
    run,
    mta,
    messages: o.messages,
    acceptPerSec: Math.round(o.messages / source!.seconds),
    endToEndPerSec: Math.round(o.messages / e2e),
    sourceSeconds: Number(source!.seconds.toFixed(3)),
    endToEndSeconds: Number(e2e.toFixed(3)),
    cpuMsPerMessage: Number(((cpu * 1000) / o.messages).toFixed(3)),
    deliveryCpuMsPerMessage: dcpu === null ? null : Number(((dcpu * 1000) / o.messages).toFixed(3)),
    loadAverage: loadAverage(),
  };
}

const o = parseOptions(process.argv.slice(2));
console.log(`# relay benchmark ${new Date().toISOString()}`);
console.log(`# ${await machineDescription()}`);
console.log(`# ${o.messages} messages of ${o.size} bytes, ${o.sessions} sessions, ${o.reuse ? 'connection reuse (-d)' : 'new connection per message'}, tsubame dispatcher ${o.dispatcher}, ACCEPT_MODE ${o.acceptMode ?? 'as shipped'}${o.drain ? ', drain (queued first, then released; "end-to-end" is the drain)' : ''}, load before ${loadAverage()}`);
const results: RunResult[] = [];
for (let run = 1; run <= o.runs; run++) {
  const order = run % 2 === 1 ? ['postfix', 'tsubame'] : ['tsubame', 'postfix'];
  for (const mta of order) {
    if (o.only && o.only !== mta) continue;
    const r = mta === 'postfix' ? await runPostfix(o, run) : await runTsubame(o, run);
    results.push(r);
    console.log(
      `run ${run} ${mta.padEnd(8)} accept ${String(r.acceptPerSec).padStart(6)} msg/s (${r.sourceSeconds.toFixed(2)} s)  end-to-end ${String(r.endToEndPerSec).padStart(6)} msg/s (${r.endToEndSeconds.toFixed(2)} s)  ${r.cpuMsPerMessage.toFixed(2)} ms CPU/msg${r.deliveryCpuMsPerMessage === null ? '' : ` (delivery ${r.deliveryCpuMsPerMessage.toFixed(2)})`}  load ${r.loadAverage}`,
    );
  }
}
for (const mta of ['postfix', 'tsubame']) {
  const rs = results.filter((r) => r.mta === mta);
  if (rs.length === 0) continue;
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(
    `median ${mta.padEnd(8)} accept ${String(median(rs.map((r) => r.acceptPerSec))).padStart(6)} msg/s  end-to-end ${String(median(rs.map((r) => r.endToEndPerSec))).padStart(6)} msg/s  ${median(rs.map((r) => r.cpuMsPerMessage)).toFixed(2)} ms CPU/msg`,
  );
}
if (o.json) console.log(JSON.stringify(results));
