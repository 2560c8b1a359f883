// Fan-out of a mailing list as a list server sends it (issue 18), through tsubame and Postfix
// alternating on one simulated internet: 10,000 recipients in list order in 1,000 domains whose MX
// records point at 100 hosts (5 primaries dead with a live backup, 5 hosts greeting 2 s late, or
// every live host late with --all-late), handed over in messages of 1,000 recipients on one SMTP
// connection; DNS from dnsmasq (MX answers carry the hosts' A records; TTL 0, dnsmasq's default,
// unless --dns-ttl); the hosts count what arrives.
//
//   node dist/bench/fanout-list.js [--recipients 10000] [--domains 1000] [--hosts 100] [--dead 5]
//       [--late 5] [--late-ms 2000] [--all-late] [--dns-ttl 0] [--per-message 1000] [--runs 1]
//       [--mta tsubame=DIR]… [--mta postfix] [--tcp-local 'keywords'] [--option KEY=VALUE]…
//       [--trace FILE] [--keep] [--settle 3] [--json]
//
// Each --mta is run once per run, in turn (reversed every other run): `tsubame=DIR` is the build
// in DIR (its bin/start-msg and etc/; default this repository), `postfix` is Postfix 3.7 by MX
// (bench/lib/peers.ts startPostfixResolving). tsubame gets its shipped etc/ plus DNS_SERVERS
// (and any --option lines), a dispatcher with two long-lived SMTP server processes, and
// --tcp-local appended to the tcp_local channel's keywords. Each MTA gets --settle seconds after its
// start before the list comes (a running MTA has its processes and delivery threads up; Postfix
// starts its smtp processes on demand either way). Reported per MTA and run: seconds
// from the first byte of the injection until the last recipient arrived, transactions against the
// piggybacking minimum, connections, DNS queries against one per domain plus one per host, CPU,
// and the job controller's peak memory (its process, delivery threads included). --trace writes
// every host's timeline (connections, greetings, transactions) and every message's as JSON; a
// digest of it is printed after each run.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, appendFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { machineDescription, repoRoot, startPostfixResolving, waitListening } from './lib/peers.js';
import { discardDir } from './lib/discard.js';
import { loadAverage, rssBytes, treeCpuSeconds } from './lib/proc-stats.js';
import { LIST_SCENARIO, listLayout, minimumTransactions, startListWorld, type ListLayout, type ListScenario } from './lib/list-world.js';
import { buildTimeline, digest, type Timeline } from './lib/timeline.js';

const execFileP = promisify(execFile);

const DNS_HOST = '127.0.10.53';
const TSUBAME = { host: '127.0.10.4', port: 2528 };
const POSTFIX = { host: '127.0.10.5', port: 2529 };
const MX_PORT = 25;

interface Mta {
  label: string;
  kind: 'tsubame' | 'postfix';
  root: string;
}

interface Options extends ListScenario {
  perMessage: number;
  runs: number;
  mtas: Mta[];
  tcpLocal: string;
  options: string[];
  trace: string | null;
  /** Keep tsubame's instance directory (its logs) and say where it is. */
  keep: boolean;
  /** Seconds between the MTA's start and the list (a running MTA has its processes and threads up). */
  settle: number;
  json: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { ...LIST_SCENARIO, perMessage: 1000, runs: 1, mtas: [], tcpLocal: '', options: [], trace: null, keep: false, settle: 3, json: false };
  const flags: Record<string, keyof ListScenario> = { '--recipients': 'recipients', '--domains': 'domains', '--hosts': 'hosts', '--dead': 'dead', '--late': 'late', '--late-ms': 'lateMs', '--dns-ttl': 'dnsTtl', '--seed': 'seed' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const key = flags[a];
    if (key) (o as unknown as Record<string, number>)[key] = Number(value());
    else if (a === '--all-late') o.allLate = true;
    else if (a === '--per-message') o.perMessage = Number(value());
    else if (a === '--runs') o.runs = Number(value());
    else if (a === '--tcp-local') o.tcpLocal = value();
    else if (a === '--option') o.options.push(value());
    else if (a === '--trace') o.trace = value();
    else if (a === '--json') o.json = true;
    else if (a === '--keep') o.keep = true;
    else if (a === '--settle') o.settle = Number(value());
    else if (a === '--mta') {
      const v = value();
      if (v === 'postfix') o.mtas.push({ label: 'postfix', kind: 'postfix', root: '' });
      else {
        const m = /^([\w.-]+)(?:=(.+))?$/.exec(v);
        if (!m) throw new Error(`--mta ${v}: postfix or LABEL=DIR`);
        o.mtas.push({ label: m[1]!, kind: 'tsubame', root: resolve(m[2] ?? repoRoot) });
      }
    } else throw new Error(`unknown argument ${a}`);
  }
  if (o.mtas.length === 0) o.mtas.push({ label: 'postfix', kind: 'postfix', root: '' }, { label: 'tsubame', kind: 'tsubame', root: repoRoot });
  for (const m of o.mtas) if (m.kind === 'tsubame' && !existsSync(join(m.root, 'bin', 'start-msg'))) throw new Error(`no tsubame build in ${m.root}`);
  return o;
}

interface Running {
  stop(): Promise<void>;
  /** Process tree to charge CPU to. */
  rootPid(): number;
  /** The job controller's pid (tsubame), for its memory. */
  jobControllerPid(): number | null;
}

async function startTsubame(m: Mta, o: Options): Promise<Running> {
  const root = mkdtempSync(join(tmpdir(), 'tsubame-list-'));
  cpSync(join(m.root, 'etc'), join(root, 'etc'), { recursive: true });
  for (const d of ['queue', 'log', 'run']) mkdirSync(join(root, d), { recursive: true });
  appendFileSync(join(root, 'etc', 'option.dat'), `\nDNS_SERVERS=${DNS_HOST}\n${o.options.join('\n')}\n`);
  const disp = join(root, 'etc', 'dispatcher.cnf');
  const tuned = 'MIN_PROCS=2\nMAX_PROCS=2\nMIN_CONNS=5\nMAX_CONNS=500\nMAX_LIFE_CONNS=0\nMAX_LIFE_TIME=0\n';
  writeFileSync(disp, readFileSync(disp, 'utf8').replace(/^PORT=.*$/m, `PORT=${TSUBAME.port}`).replace(/^(\[SERVICE=SMTP\])$/m, `$1\nINTERFACE_ADDRESS=${TSUBAME.host}\n${tuned}`));
  if (o.tcpLocal) {
    const imta = join(root, 'etc', 'imta.cnf');
    writeFileSync(imta, readFileSync(imta, 'utf8').replace(/^(tcp_local .*)$/m, `$1 ${o.tcpLocal}`));
  }
  const env = { ...process.env, IMTA_ROOT: root };
  await execFileP(join(m.root, 'bin', 'start-msg'), [], { env });
  await waitListening(TSUBAME.host, TSUBAME.port, 15_000);
  const pid = (name: string) => {
    try {
      return Number(readFileSync(join(root, 'run', `${name}.pid`), 'utf8').trim());
    } catch {
      return null;
    }
  };
  return {
    rootPid: () => pid('watcher') ?? 0,
    jobControllerPid: () => pid('job_controller'),
    async stop() {
      await execFileP(join(m.root, 'bin', 'stop-msg'), [], { env }).catch((e: Error) => console.error(`stop-msg: ${e.message}`));
      if (o.keep) console.log(`    (instance kept in ${root})`);
      else discardDir(root);
    },
  };
}

async function startPostfix(): Promise<Running> {
  const postfix = await startPostfixResolving(POSTFIX, DNS_HOST, ['smtpd_recipient_limit = 1000']);
  return { rootPid: () => postfix.masterPid(), jobControllerPid: () => null, stop: () => postfix.stop() };
}

/** The list in messages of `perMessage` recipients over one connection; each message's 250 time. */
async function inject(target: { host: string; port: number }, recipients: string[], perMessage: number): Promise<number[]> {
  const conn = new SMTPConnection({ host: target.host, port: target.port, name: 'lists.source.test', ignoreTLS: true, socketTimeout: 300_000 });
  await new Promise<void>((resolve, reject) => {
    conn.once('error', reject);
    conn.connect(() => resolve());
  });
  const accepted: number[] = [];
  try {
    for (let i = 0, n = 0; i < recipients.length; i += perMessage, n++) {
      const body = Buffer.from(
        `From: list-owner@lists.source.test\r\nTo: members@lists.source.test\r\nSubject: the monthly list message, part ${n}\r\nMessage-ID: <list-${n}@lists.source.test>\r\n\r\n` +
          'A list message of about two kilobytes.\r\n'.repeat(50),
      );
      const to = recipients.slice(i, i + perMessage);
      await new Promise<void>((resolve, reject) =>
        conn.send({ from: 'list-owner@lists.source.test', to }, body, (err, info) => {
          if (err) return reject(err);
          if (info.rejected.length) return reject(new Error(`${info.rejected.length} recipients refused`));
          resolve();
        }),
      );
      accepted.push(Date.now());
    }
  } finally {
    conn.quit();
  }
  return accepted;
}

interface RunReport {
  run: number;
  mta: string;
  seconds: number;
  injectSeconds: number;
  delivered: number;
  expected: number;
  transactions: { made: number; minimum: number };
  connections: { toLiveHosts: number; liveHostsUsed: number; toDeadHosts: number; mostToOneHost: number };
  dns: { total: number; byType: Record<string, number>; goal: number };
  cpuSeconds: number;
  jobControllerPeakRssMiB: number | null;
  loadAverage: string;
}

async function runOne(m: Mta, run: number, o: Options, l: ListLayout): Promise<{ report: RunReport; timeline: Timeline }> {
  const world = await startListWorld(o, l, DNS_HOST, MX_PORT);
  let mta: Running | null = null;
  let sampler: NodeJS.Timeout | null = null;
  try {
    mta = m.kind === 'tsubame' ? await startTsubame(m, o) : await startPostfix();
    await new Promise((r) => setTimeout(r, o.settle * 1000));
    const target = m.kind === 'tsubame' ? TSUBAME : POSTFIX;
    const live = world.peers.filter((_, h) => l.kinds[h] !== 'dead');
    const expected = new Set(l.recipients);
    let peakRss = 0;
    const jc = mta.jobControllerPid();
    if (jc) sampler = setInterval(() => (peakRss = Math.max(peakRss, rssBytes(jc) ?? 0)), 100);
    const cpu0 = treeCpuSeconds(mta.rootPid());
    const dnsBefore = world.dnsQueries(); // dnsmasq's readiness probe
    const started = Date.now();
    const accepted = await inject(target, l.recipients, o.perMessage);
    const injectSeconds = (Date.now() - started) / 1000;
    const deadline = started + 1_800_000;
    // Count arrivals incrementally (transactions seen so far per peer).
    const seen = new Set<string>();
    const read = new Array<number>(live.length).fill(0);
    for (;;) {
      live.forEach((p, i) => {
        for (; read[i]! < p.transactions.length; read[i]!++) for (const r of p.transactions[read[i]!]!.to) if (expected.has(r)) seen.add(r);
      });
      if (seen.size >= expected.size || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const last = Math.max(...live.flatMap((p) => p.transactions.map((t) => t.receivedAt)));
    const cpuSeconds = treeCpuSeconds(mta.rootPid()) - cpu0;
    if (jc) peakRss = Math.max(peakRss, rssBytes(jc) ?? 0);
    const byType = world.dnsQueries();
    for (const [type, n] of Object.entries(dnsBefore)) if ((byType[type] = (byType[type] ?? 0) - n) === 0) delete byType[type];
    const dnsTotal = Object.values(byType).reduce((a, b) => a + b, 0);
    const timeline = buildTimeline(
      started,
      world.peers.map((p, h) => ({ kind: l.kinds[h]!, connections: p.connections, transactions: p.transactions })),
      accepted,
      (id) => Number(/list-(\d+)@/.exec(id ?? '')?.[1] ?? -1),
    );
    const report: RunReport = {
      run,
      mta: m.label,
      seconds: Number(((last - started) / 1000).toFixed(3)),
      injectSeconds: Number(injectSeconds.toFixed(3)),
      delivered: seen.size,
      expected: expected.size,
      transactions: { made: live.reduce((n, p) => n + p.transactions.length, 0), minimum: minimumTransactions(l, o.perMessage) },
      connections: {
        toLiveHosts: live.reduce((n, p) => n + p.connections.length, 0),
        liveHostsUsed: live.filter((p) => p.transactions.length > 0).length,
        toDeadHosts: 0, // refused: nothing listens to count them
        mostToOneHost: Math.max(...live.map((p) => p.connections.length)),
      },
      dns: { total: dnsTotal, byType, goal: o.domains + o.hosts },
      cpuSeconds: Number(cpuSeconds.toFixed(2)),
      jobControllerPeakRssMiB: jc ? Math.round(peakRss / 2 ** 20) : null,
      loadAverage: loadAverage(),
    };
    return { report, timeline };
  } finally {
    if (sampler) clearInterval(sampler);
    await mta?.stop();
    await world.close();
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const l = listLayout(o);
  console.log(`# fan-out of a list ${new Date().toISOString()}`);
  console.log(`# ${await machineDescription()}`);
  console.log(
    `# ${o.recipients} recipients in list order, ${o.domains} domains, ${o.hosts} MX hosts (${o.dead} dead primaries, ${o.allLate ? 'every live host' : o.late} greeting ${o.lateMs} ms late), ` +
      `messages of ${o.perMessage}; DNS TTL ${o.dnsTtl}; minimum transactions ${minimumTransactions(l, o.perMessage)}; load before ${loadAverage()}`,
  );
  const reports: RunReport[] = [];
  const traces: Array<{ run: number; mta: string; timeline: Timeline }> = [];
  for (let run = 1; run <= o.runs; run++) {
    const order = run % 2 === 1 ? o.mtas : [...o.mtas].reverse();
    for (const m of order) {
      const { report: r, timeline } = await runOne(m, run, o, l);
      reports.push(r);
      traces.push({ run, mta: m.label, timeline });
      if (!o.json) {
        console.log(
          `run ${run} ${m.label.padEnd(10)} ${r.seconds.toFixed(2).padStart(7)} s (injected in ${r.injectSeconds.toFixed(2)} s)  delivered ${r.delivered}/${r.expected}  ` +
            `transactions ${r.transactions.made} (min ${r.transactions.minimum})  connections ${r.connections.toLiveHosts} to ${r.connections.liveHostsUsed} hosts (most ${r.connections.mostToOneHost} to one)  ` +
            `DNS ${r.dns.total} (${Object.entries(r.dns.byType).map(([k, v]) => `${k} ${v}`).join(', ')}; goal ≤ ${r.dns.goal})  CPU ${r.cpuSeconds} s` +
            (r.jobControllerPeakRssMiB !== null ? `  job controller ≤ ${r.jobControllerPeakRssMiB} MiB` : '') +
            `  load ${r.loadAverage}`,
        );
        for (const line of digest(timeline)) console.log(`    ${line}`);
      }
    }
  }
  if (o.trace) writeFileSync(o.trace, JSON.stringify(traces));
  if (o.json) console.log(JSON.stringify(reports));
  if (reports.some((r) => r.delivered !== r.expected)) process.exitCode = 1;
}

main().catch((err) => {
  console.error(`fanout-list: ${(err as Error).stack ?? (err as Error).message}`);
  process.exit(1);
});
