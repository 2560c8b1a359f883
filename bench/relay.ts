// Relay benchmark: smtp-source → MTA → smtp-sink, tsubame against Postfix in the same run.
//
//   node dist/bench/relay.js [--messages N] [--sessions S] [--runs R] [--only tsubame|postfix] [--reuse]
//
// For each MTA and run it reports the accept rate (messages / smtp-source wall time: every
// message is on disk before its 250) and the end-to-end rate (until the sink has counted them all).
// Without --reuse every message comes on a new connection (smtp-source without -d).
import { mkdtempSync, rmSync, cpSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startSmtpSink, runSmtpSource, startPostfix, postfixDelivered, waitUntil, repoRoot, machineDescription, waitListening } from './lib/peers.js';

const execFileP = promisify(execFile);

interface Options {
  messages: number;
  sessions: number;
  runs: number;
  only: string | null;
  reuse: boolean;
  size: number;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { messages: 5000, sessions: 20, runs: 3, only: null, reuse: false, size: 1024 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--messages') o.messages = Number(argv[++i]);
    else if (a === '--sessions') o.sessions = Number(argv[++i]);
    else if (a === '--runs') o.runs = Number(argv[++i]);
    else if (a === '--only') o.only = argv[++i] ?? null;
    else if (a === '--size') o.size = Number(argv[++i]);
    else if (a === '--reuse') o.reuse = true;
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

interface RunResult {
  mta: string;
  acceptPerSec: number;
  endToEndPerSec: number;
  sourceSeconds: number;
  endToEndSeconds: number;
}

const SINK_HOST = '127.0.9.2';
const SINK_PORT = 2526;

async function runPostfix(o: Options): Promise<RunResult> {
  const sink = await startSmtpSink(SINK_HOST, SINK_PORT);
  const pf = await startPostfix('127.0.9.1', 2525, SINK_HOST, SINK_PORT);
  try {
    return await drive('postfix', o, '127.0.9.1', 2525, () => sink.messages());
  } finally {
    await pf.stop();
    await sink.stop();
    void postfixDelivered;
  }
}

/** A tsubame instance whose tcp_local channel relays everything to the sink (daemon + port). */
async function runTsubame(o: Options): Promise<RunResult> {
  const sink = await startSmtpSink(SINK_HOST, SINK_PORT);
  const root = mkdtempSync(join(tmpdir(), 'tsubame-bench-'));
  cpSync(join(repoRoot, 'etc'), join(root, 'etc'), { recursive: true });
  for (const d of ['queue', 'log', 'run']) mkdirSync(join(root, d), { recursive: true });
  const imta = join(root, 'etc', 'imta.cnf');
  writeFileSync(imta, readFileSync(imta, 'utf8').replace(/^(tcp_local\s[^\n]*)$/m, `$1 daemon ${SINK_HOST} port ${SINK_PORT}`));
  const disp = join(root, 'etc', 'dispatcher.cnf');
  writeFileSync(
    disp,
    readFileSync(disp, 'utf8')
      .replace(/^PORT=.*$/m, 'PORT=2527')
      .replace(/^(\[SERVICE=SMTP\])$/m, '$1\nINTERFACE_ADDRESS=127.0.9.3'),
  );
  const env = { ...process.env, IMTA_ROOT: root };
  try {
    await execFileP(join(repoRoot, 'bin', 'start-msg'), [], { env });
    await waitListening('127.0.9.3', 2527, 10000);
    return await drive('tsubame', o, '127.0.9.3', 2527, () => sink.messages());
  } finally {
    await execFileP(join(repoRoot, 'bin', 'stop-msg'), [], { env }).catch((e) => console.error(`stop-msg: ${e.message}`));
    rmSync(root, { recursive: true, force: true });
    await sink.stop();
  }
}

async function drive(mta: string, o: Options, host: string, port: number, delivered: () => number): Promise<RunResult> {
  const base = delivered();
  const started = process.hrtime.bigint();
  const args = ['-s', String(o.sessions), '-m', String(o.messages), '-l', String(o.size), '-f', 'bench@source.test', '-t', 'user@sink.test'];
  if (o.reuse) args.unshift('-d');
  const source = await runSmtpSource([...args, `${host}:${port}`]);
  if (source.code !== 0) throw new Error(`smtp-source against ${mta} failed: ${source.stderr.trim()}`);
  await waitUntil(() => delivered() - base >= o.messages, 600_000);
  const e2e = Number(process.hrtime.bigint() - started) / 1e9;
  return {
    mta,
    acceptPerSec: o.messages / source.seconds,
    endToEndPerSec: o.messages / e2e,
    sourceSeconds: source.seconds,
    endToEndSeconds: e2e,
  };
}

const o = parseOptions(process.argv.slice(2));
console.log(`# relay benchmark ${new Date().toISOString()}`);
console.log(`# ${await machineDescription()}`);
console.log(`# ${o.messages} messages of ${o.size} bytes, ${o.sessions} sessions, ${o.reuse ? 'connection reuse (-d)' : 'new connection per message'}`);
const results: RunResult[] = [];
for (let run = 1; run <= o.runs; run++) {
  for (const mta of ['postfix', 'tsubame']) {
    if (o.only && o.only !== mta) continue;
    const r = mta === 'postfix' ? await runPostfix(o) : await runTsubame(o);
    results.push(r);
    console.log(
      `run ${run} ${mta.padEnd(8)} accept ${r.acceptPerSec.toFixed(0).padStart(6)} msg/s (${r.sourceSeconds.toFixed(2)} s)  end-to-end ${r.endToEndPerSec.toFixed(0).padStart(6)} msg/s (${r.endToEndSeconds.toFixed(2)} s)`,
    );
  }
}
