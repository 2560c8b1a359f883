// Farm relay benchmark: smtp-source → HAProxy (send-proxy-v2) → 1, 2 or 3 tsubame nodes sharing
// their shaping through Redis → smtp-sink, and the PROXY protocol's cost per connection.
//
//   node dist/bench/farm-relay.js [--messages N] [--sessions S] [--nodes 1,2,3] [--runs R]
//        [--size BYTES] [--reuse] [--json]
//
// Every node is a fresh instance of the shipped etc/ (tcp_local sent to the sink, two SMTP server
// processes that never retire, as bench/relay.ts's tuned dispatcher) on its own 127.0.9.x
// address, with a PROXY_PROTOCOL service and FARM_REDIS_URL; all nodes run on this machine and
// share its cores, so more nodes show the farm's overhead, not its scaling. For each layout it
// reports the accept rate (smtp-source's wall time: every 250 is fsynced), the end-to-end rate
// (until the sink has them all) and CPU per message of the nodes' process trees, HAProxy and
// Redis. The PROXY cost: one node behind HAProxy with the header (send-proxy-v2 to a
// PROXY_PROTOCOL service) against the same without it (a plain service), with a new connection
// per message (without --reuse), so that the difference per message is the cost per connection.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { machineDescription, repoRoot, runSmtpSource, startSmtpSink, waitListening, waitUntil, type Sink } from './lib/peers.js';
import { loadAverage, treeCpuSeconds } from './lib/proc-stats.js';
import { discardDir } from './lib/discard.js';
import { startHaproxy } from '../test/helpers/haproxy.js';
import { startRedis, type TestRedis } from '../test/helpers/redis.js';

const execFileP = promisify(execFile);

interface Options {
  messages: number;
  sessions: number;
  nodes: number[];
  runs: number;
  size: number;
  reuse: boolean;
  json: boolean;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { messages: 3000, sessions: 20, nodes: [1, 2, 3], runs: 1, size: 1024, reuse: false, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--messages') o.messages = Number(argv[++i]);
    else if (a === '--sessions') o.sessions = Number(argv[++i]);
    else if (a === '--nodes') o.nodes = (argv[++i] ?? '').split(',').map(Number);
    else if (a === '--runs') o.runs = Number(argv[++i]);
    else if (a === '--size') o.size = Number(argv[++i]);
    else if (a === '--reuse') o.reuse = true;
    else if (a === '--json') o.json = true;
    else throw new Error(`unknown option ${a}`);
  }
  if (o.nodes.some((n) => !(n >= 1 && n <= 3))) throw new Error('--nodes takes 1, 2 or 3 (comma list)');
  return o;
}

const SINK = { host: '127.0.9.2', port: 2526 };
const LB = { host: '127.0.9.20', port: 2530 };
const REDIS_HOST = '127.0.9.21';
const NODE_HOST = (i: number) => `127.0.9.${10 + i}`;
const NODE_PORT = 2540;
const WARM_UP = 200;

interface Layout {
  name: string;
  nodes: number;
  /** Whether the balancer sends the PROXY header (and the nodes' service requires it). */
  proxy: boolean;
}

interface Result {
  run: number;
  layout: string;
  messages: number;
  acceptPerSec: number;
  endToEndPerSec: number;
  cpuMsPerMessage: number;
  balancerCpuMsPerMessage: number;
  loadAverage: string;
}

interface Node {
  root: string;
  env: NodeJS.ProcessEnv;
  watcherPid(): number;
}

async function startNode(i: number, layout: Layout, redis: TestRedis): Promise<Node> {
  const root = mkdtempSync(join(tmpdir(), 'tsubame-farm-bench-'));
  cpSync(join(repoRoot, 'etc'), join(root, 'etc'), { recursive: true });
  for (const d of ['queue', 'log', 'run']) mkdirSync(join(root, d), { recursive: true });
  const imta = join(root, 'etc', 'imta.cnf');
  writeFileSync(imta, readFileSync(imta, 'utf8').replace(/^(tcp_local\s[^\n]*)$/m, `$1 daemon ${SINK.host} port ${SINK.port}`));
  const disp = join(root, 'etc', 'dispatcher.cnf');
  const service = [`INTERFACE_ADDRESS=${NODE_HOST(i)}`, 'MIN_PROCS=2', 'MAX_PROCS=2', 'MIN_CONNS=5', 'MAX_CONNS=500', 'MAX_LIFE_CONNS=0', 'MAX_LIFE_TIME=0', ...(layout.proxy ? ['PROXY_PROTOCOL=1', 'PROXY_TRUSTED=127.0.0.1'] : [])].join('\n');
  writeFileSync(disp, readFileSync(disp, 'utf8').replace(/^PORT=.*$/m, `PORT=${NODE_PORT}`).replace(/^(\[SERVICE=SMTP\])$/m, `$1\n${service}`));
  const opt = join(root, 'etc', 'option.dat');
  writeFileSync(opt, `${readFileSync(opt, 'utf8')}\nLOCAL_HOST=node${i}.bench.test\nFARM_REDIS_URL=${redis.url}\nFARM_NODE_NAME=node${i}\nFARM_NODE_COUNT=${layout.nodes}\n`);
  const env = { ...process.env, IMTA_ROOT: root };
  await execFileP(join(repoRoot, 'bin', 'start-msg'), [], { env });
  await waitListening(NODE_HOST(i), NODE_PORT, 10_000);
  return { root, env, watcherPid: () => Number(readFileSync(join(root, 'run', 'watcher.pid'), 'utf8').trim()) };
}

async function runLayout(o: Options, layout: Layout, run: number): Promise<Result> {
  const sink: Sink = await startSmtpSink(SINK.host, SINK.port);
  const redis = await startRedis({ host: REDIS_HOST });
  const nodes: Node[] = [];
  try {
    for (let i = 1; i <= layout.nodes; i++) nodes.push(await startNode(i, layout, redis));
    const lb = await startHaproxy({
      timeoutMs: 60_000,
      sections: [
        'frontend smtp_in',
        `  bind ${LB.host}:${LB.port}`,
        '  maxconn 400',
        '  default_backend farm',
        'backend farm',
        '  balance roundrobin',
        ...nodes.map((_, i) => `  server node${i + 1} ${NODE_HOST(i + 1)}:${NODE_PORT}${layout.proxy ? ' send-proxy-v2 source 127.0.0.1' : ' source 127.0.0.1'}`),
      ],
    });
    try {
      const send = async (messages: number) => {
        const args = ['-s', String(o.sessions), '-m', String(messages), '-l', String(o.size), '-f', 'bench@source.test', '-t', 'user@sink.test'];
        if (o.reuse) args.unshift('-d');
        const r = await runSmtpSource([...args, `${LB.host}:${LB.port}`]);
        if (r.code !== 0) throw new Error(`smtp-source failed: ${r.stderr.trim()}`);
        return r;
      };
      await send(WARM_UP);
      await waitUntil(() => sink.messages() >= WARM_UP, 120_000);
      const base = sink.messages();
      const cpu = () => nodes.reduce((sum, n) => sum + treeCpuSeconds(n.watcherPid()), 0) + treeCpuSeconds(redis.pid() ?? 0);
      const cpu0 = cpu();
      const lb0 = treeCpuSeconds(lb.pid);
      const started = process.hrtime.bigint();
      const source = await send(o.messages);
      await waitUntil(() => sink.messages() - base >= o.messages, 600_000, 5);
      const e2e = Number(process.hrtime.bigint() - started) / 1e9;
      return {
        run,
        layout: layout.name,
        messages: o.messages,
        acceptPerSec: Math.round(o.messages / source.seconds),
        endToEndPerSec: Math.round(o.messages / e2e),
        cpuMsPerMessage: Number((((cpu() - cpu0) * 1000) / o.messages).toFixed(3)),
        balancerCpuMsPerMessage: Number((((treeCpuSeconds(lb.pid) - lb0) * 1000) / o.messages).toFixed(3)),
        loadAverage: loadAverage(),
      };
    } finally {
      await lb.close();
    }
  } finally {
    for (const n of nodes) {
      await execFileP(join(repoRoot, 'bin', 'stop-msg'), [], { env: n.env }).catch((e: Error) => console.error(`stop-msg: ${e.message}`));
      discardDir(n.root);
    }
    await redis.close();
    await sink.stop();
  }
}

const o = parseOptions(process.argv.slice(2));
const layouts: Layout[] = [{ name: '1 node, no PROXY', nodes: 1, proxy: false }, ...o.nodes.map((n) => ({ name: `${n} node${n > 1 ? 's' : ''}, PROXY v2`, nodes: n, proxy: true }))];
console.log(`# farm relay benchmark ${new Date().toISOString()}`);
console.log(`# ${await machineDescription()}`);
console.log(`# ${o.messages} messages of ${o.size} bytes, ${o.sessions} sessions through HAProxy, ${o.reuse ? 'connection reuse (-d)' : 'new connection per message'}, Redis shared shaping, load before ${loadAverage()}`);
const results: Result[] = [];
for (let run = 1; run <= o.runs; run++) {
  for (const layout of run % 2 === 1 ? layouts : [...layouts].reverse()) {
    const r = await runLayout(o, layout, run);
    results.push(r);
    console.log(
      `run ${run} ${r.layout.padEnd(18)} accept ${String(r.acceptPerSec).padStart(6)} msg/s  end-to-end ${String(r.endToEndPerSec).padStart(6)} msg/s  ${r.cpuMsPerMessage.toFixed(2)} ms CPU/msg (nodes + Redis), HAProxy ${r.balancerCpuMsPerMessage.toFixed(3)} ms/msg  load ${r.loadAverage}`,
    );
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const byLayout = (name: string) => results.filter((r) => r.layout === name);
for (const l of layouts) {
  const rs = byLayout(l.name);
  console.log(`median ${l.name.padEnd(18)} accept ${String(median(rs.map((r) => r.acceptPerSec))).padStart(6)} msg/s  end-to-end ${String(median(rs.map((r) => r.endToEndPerSec))).padStart(6)} msg/s  ${median(rs.map((r) => r.cpuMsPerMessage)).toFixed(2)} ms CPU/msg`);
}
const plain = byLayout('1 node, no PROXY');
const proxied = byLayout('1 node, PROXY v2');
if (plain.length && proxied.length && !o.reuse) {
  const cpuCost = median(proxied.map((r) => r.cpuMsPerMessage)) - median(plain.map((r) => r.cpuMsPerMessage));
  const wallCost = 1000 / median(proxied.map((r) => r.acceptPerSec)) - 1000 / median(plain.map((r) => r.acceptPerSec));
  console.log(`PROXY v2 per connection (1 node, with the header minus without): ${cpuCost.toFixed(3)} ms CPU, ${(wallCost * o.sessions).toFixed(3)} ms of a session's time`);
}
if (o.json) console.log(JSON.stringify(results));
