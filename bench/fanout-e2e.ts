// Fan-out end to end: one list message to thousands of recipients in hundreds of domains that
// share far fewer MX hosts (some dead, with a backup MX; some slow to greet), injected over SMTP
// in transactions of 1,000 recipients, through tsubame and through Postfix in the same run.
//
//   node dist/bench/fanout-e2e.js [--recipients 5000] [--domains 500] [--hosts 40] [--refusing 3]
//       [--silent 1] [--slow 5] [--slow-ms 300] [--per-transaction 1000] [--runs 1]
//       [--only tsubame|postfix] [--dkim] [--verp] [--json]
//
// --dkim: both MTAs sign the list message for source.test (rsa-sha256, 2048 bits, relaxed/relaxed):
// tsubame with a key made by `imsimta dkim keygen` (its shipped tcp_local has `dkimsign`), once
// at enqueue; Postfix through OpenDKIM (Debian's opendkim) as its smtpd milter, on 127.0.9.7.
// --verp: every member gets its own envelope sender, list-owner+member=domain@source.test:
// tsubame's tcp_local gets the `verp` keyword, Postfix is asked with XVERP on MAIL FROM (with
// smtpd_authorized_verp_clients = 127.0.0.0/8); the minimum becomes one transaction per recipient.
// The report counts the transactions the peers saw signed and with a VERP sender.
//
// The simulated internet (test/helpers/sim-internet.ts): a DNS server on 127.0.9.53 port 53 and
// one SMTP peer per MX host on 127.6.100.N port 25, fresh for every MTA and run. Both MTAs look
// MX records up in that DNS server, deliver on port 25, and give up on a silent host after a 1 s
// greeting timeout (connect timeout 1 s too):
// - tsubame: the shipped etc/ with DNS_SERVERS=127.0.9.53, SMTP_CONNECT_TIMEOUT=1,
//   SMTP_GREETING_TIMEOUT=1, and a tuned dispatcher (two long-lived SMTP server processes).
// - Postfix: bench/postfix/instance.sh, then relayhost emptied, DNS lookups on
//   (smtp_host_lookup=dns), smtp_connect_timeout=1s, smtp_helo_timeout=1s. Postfix's resolver
//   reads /etc/resolv.conf, so its master is started in a private mount namespace
//   (`unshare -m`) where a resolv.conf naming 127.0.9.53 is bind-mounted over /etc/resolv.conf;
//   the rest of the machine keeps its resolver. Postfix has no DNS cache of its own (it expects
//   a local caching resolver), so its query count is what an uncached resolver would see.
//
// Reported per MTA: seconds from the first byte of the injection until the last deliverable
// recipient reached its MX host (every recipient is deliverable: each domain has a live backup),
// transactions and connections the peers saw, connections to the silent host, and DNS queries
// by type, next to the piggybacking minimum (per message and live host, ceil(recipients/100)
// transactions; one MX query per domain, whose answer carries the hosts' addresses).
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { startDnsServer, startSmtpPeer, type DnsTable, type SimDns, type SmtpPeer } from '../test/helpers/sim-internet.js';
import { machineDescription, postfixMasterPid, repoRoot, waitListening, waitRefused } from './lib/peers.js';
import { discardDir } from './lib/discard.js';
import { loadAverage, treeCpuSeconds } from './lib/proc-stats.js';
import { DEFAULT_SCENARIO, checkScenario, takeScenarioFlag, type FanoutScenario } from './lib/fanout-scenario.js';

const execFileP = promisify(execFile);

const DNS_HOST = '127.0.9.53';
const TSUBAME = { host: '127.0.9.4', port: 2528 };
const POSTFIX = { host: '127.0.9.5', port: 2529 };
/** Postfix's relayhost before it is emptied (nothing listens there). */
const NOWHERE = { host: '127.0.9.6', port: 9 };
/** Postfix's DKIM milter (OpenDKIM) with --dkim. */
const MILTER = { host: '127.0.9.7', port: 8891 };
const OWNER = 'list-owner@source.test';
const MX_PORT = 25;

interface Options extends FanoutScenario {
  perTransaction: number;
  runs: number;
  only: 'tsubame' | 'postfix' | null;
  dkim: boolean;
  verp: boolean;
  json: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { ...DEFAULT_SCENARIO, perTransaction: 1000, runs: 1, only: null, dkim: false, verp: false, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => Number(argv[++i]);
    if (takeScenarioFlag(o, a, () => argv[++i])) continue;
    if (a === '--per-transaction') o.perTransaction = next();
    else if (a === '--runs') o.runs = next();
    else if (a === '--only') o.only = argv[++i] as Options['only'];
    else if (a === '--dkim') o.dkim = true;
    else if (a === '--verp') o.verp = true;
    else if (a === '--json') o.json = true;
    else throw new Error(`unknown argument ${a}`);
  }
  checkScenario(o);
  return o;
}

type HostKind = 'refuse' | 'silent' | 'slow' | 'ok';

/** The simulated internet's layout: domains, their MX hosts, and where each recipient ends up. */
interface Layout {
  records: DnsTable;
  kinds: HostKind[];
  recipients: string[];
  /** Per injected message, recipients per final host. */
  perMessageHost: Array<Map<number, number>>;
}

function layout(o: Options): Layout {
  const kinds: HostKind[] = [];
  for (let h = 0; h < o.hosts; h++) kinds.push(h < o.refusing ? 'refuse' : h < o.refusing + o.silent ? 'silent' : h < o.refusing + o.silent + o.slow ? 'slow' : 'ok');
  const live = (h: number) => kinds[h] === 'ok' || kinds[h] === 'slow';
  const records: DnsTable = {};
  for (let h = 0; h < o.hosts; h++) records[`mx${h}.isp.test`] = { a: [hostIp(h)] };
  const finalHost: number[] = [];
  for (let d = 0; d < o.domains; d++) {
    const primary = d % o.hosts;
    let backup = -1;
    for (let k = 1; k <= o.hosts && backup < 0; k++) if (live((primary + k) % o.hosts)) backup = (primary + k) % o.hosts;
    records[`list${d}.test`] = { mx: [{ exchange: `mx${primary}.isp.test`, preference: 10 }, { exchange: `mx${backup}.isp.test`, preference: 20 }] };
    finalHost[d] = live(primary) ? primary : backup;
  }
  const recipients: string[] = [];
  const perMessageHost: Array<Map<number, number>> = [];
  for (let i = 0; i < o.recipients; i++) {
    const d = i % o.domains;
    recipients.push(`member${i}@list${d}.test`);
    const m = Math.floor(i / o.perTransaction);
    perMessageHost[m] ??= new Map();
    perMessageHost[m].set(finalHost[d]!, (perMessageHost[m].get(finalHost[d]!) ?? 0) + 1);
  }
  return { records, kinds, recipients, perMessageHost };
}

const hostIp = (h: number) => `127.6.100.${h + 1}`;

interface World {
  dns: SimDns;
  peers: SmtpPeer[];
  close(): Promise<void>;
}

async function startWorld(o: Options, l: Layout): Promise<World> {
  const dns = await startDnsServer({ host: DNS_HOST, port: 53, records: l.records, glue: true });
  const peers: SmtpPeer[] = [];
  try {
    for (let h = 0; h < o.hosts; h++) {
      const k = l.kinds[h]!;
      peers.push(await startSmtpPeer({ host: hostIp(h), port: MX_PORT, mode: k === 'refuse' ? 'refuse' : k === 'silent' ? 'blackhole' : 'normal', greetingDelayMs: k === 'slow' ? o.slowMs : 0 }));
    }
  } catch (err) {
    await Promise.all(peers.map((p) => p.close()));
    await dns.close();
    throw err;
  }
  return {
    dns,
    peers,
    async close() {
      await Promise.all(peers.map((p) => p.close()));
      await dns.close();
    },
  };
}

/** The list message, sent in transactions of `perTransaction` recipients over one connection; `xverp`: MAIL FROM with XVERP (Postfix). */
async function inject(target: { host: string; port: number }, recipients: string[], perTransaction: number, xverp = false): Promise<void> {
  const conn = new SMTPConnection({ host: target.host, port: target.port, name: 'lists.source.test', ignoreTLS: true, socketTimeout: 120_000 });
  if (xverp) {
    // nodemailer has no MAIL parameter of that name: add it to the command line it writes.
    const c = conn as unknown as { _sendCommand(command: string, ...rest: unknown[]): unknown };
    const original = c._sendCommand.bind(conn);
    c._sendCommand = (command: string, ...rest: unknown[]) => original(/^MAIL FROM:/i.test(command) ? `${command} XVERP` : command, ...rest);
  }
  await new Promise<void>((resolve, reject) => {
    conn.once('error', reject);
    conn.connect(() => resolve());
  });
  const body = Buffer.from(
    'From: list-owner@source.test\r\nTo: members@source.test\r\nSubject: the monthly list message\r\nMessage-ID: <fanout-e2e@source.test>\r\n\r\n' +
      'A list message of about two kilobytes.\r\n'.repeat(50),
  );
  try {
    for (let i = 0; i < recipients.length; i += perTransaction) {
      const to = recipients.slice(i, i + perTransaction);
      await new Promise<void>((resolve, reject) =>
        conn.send({ from: OWNER, to }, body, (err, info) => {
          if (err) return reject(err);
          if (info.rejected.length) return reject(new Error(`${info.rejected.length} recipients refused`));
          resolve();
        }),
      );
    }
  } finally {
    conn.quit();
  }
}

interface MtaHandle {
  stop(): Promise<void>;
  /** Process tree to charge CPU to. */
  rootPid(): number;
}

async function startTsubame(o: Options): Promise<MtaHandle> {
  const root = mkdtempSync(join(tmpdir(), 'tsubame-fanout-'));
  cpSync(join(repoRoot, 'etc'), join(root, 'etc'), { recursive: true });
  for (const d of ['queue', 'log', 'run']) mkdirSync(join(root, d), { recursive: true });
  appendFileSync(join(root, 'etc', 'option.dat'), `\nDNS_SERVERS=${DNS_HOST}\nSMTP_CONNECT_TIMEOUT=1\nSMTP_GREETING_TIMEOUT=1\n`);
  const disp = join(root, 'etc', 'dispatcher.cnf');
  const tuned = 'MIN_PROCS=2\nMAX_PROCS=2\nMIN_CONNS=5\nMAX_CONNS=500\nMAX_LIFE_CONNS=0\nMAX_LIFE_TIME=0\n';
  writeFileSync(disp, readFileSync(disp, 'utf8').replace(/^PORT=.*$/m, `PORT=${TSUBAME.port}`).replace(/^(\[SERVICE=SMTP\])$/m, `$1\nINTERFACE_ADDRESS=${TSUBAME.host}\n${tuned}`));
  const env = { ...process.env, IMTA_ROOT: root };
  if (o.verp) {
    const imta = join(root, 'etc', 'imta.cnf');
    const text = readFileSync(imta, 'utf8');
    if (!/^tcp_local .*$/m.test(text)) throw new Error('the shipped imta.cnf has no tcp_local channel line');
    writeFileSync(imta, text.replace(/^(tcp_local .*)$/m, '$1 verp'));
  }
  // The shipped tcp_local signs (dkimsign) as soon as the sender's domain has a key.
  if (o.dkim) await execFileP(join(repoRoot, 'bin', 'imsimta'), ['dkim', 'keygen', 'source.test', 'bench'], { env });
  await execFileP(join(repoRoot, 'bin', 'start-msg'), [], { env });
  await waitListening(TSUBAME.host, TSUBAME.port, 10_000);
  return {
    rootPid: () => Number(readFileSync(join(root, 'run', 'watcher.pid'), 'utf8').trim()),
    async stop() {
      await execFileP(join(repoRoot, 'bin', 'stop-msg'), [], { env }).catch((e: Error) => console.error(`stop-msg: ${e.message}`));
      discardDir(root);
    },
  };
}

async function startPostfixWithDns(o: Options): Promise<MtaHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'tsubame-postfix-fanout-'));
  const milter = o.dkim ? await startOpenDkim(dir) : null;
  const script = join(repoRoot, 'bench', 'postfix', 'instance.sh');
  await execFileP(script, ['start', dir, POSTFIX.host, String(POSTFIX.port), NOWHERE.host, String(NOWHERE.port)]);
  await execFileP('postfix', ['-c', join(dir, 'etc'), 'stop']).catch(() => {});
  await waitRefused(POSTFIX.host, POSTFIX.port, 20_000);
  const settings = ['relayhost =', 'disable_dns_lookups = no', 'smtp_host_lookup = dns', 'smtp_connect_timeout = 1s', 'smtp_helo_timeout = 1s', 'smtpd_recipient_limit = 1000'];
  // Mail the milter cannot sign is not accepted unsigned (tempfail): the comparison stays fair.
  if (milter) settings.push(`smtpd_milters = inet:${MILTER.host}:${MILTER.port}`, 'milter_default_action = tempfail');
  // XVERP is taken only from these clients (empty by default in current Postfix).
  if (o.verp) settings.push('smtpd_authorized_verp_clients = 127.0.0.0/8');
  await execFileP('postconf', ['-c', join(dir, 'etc'), '-e', ...settings]);
  writeFileSync(join(dir, 'resolv.conf'), `nameserver ${DNS_HOST}\noptions attempts:2 timeout:2\n`);
  // Only Postfix's processes (the master and its children) see this resolv.conf.
  await execFileP('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `mount --bind ${join(dir, 'resolv.conf')} /etc/resolv.conf && postfix -c ${join(dir, 'etc')} start`]);
  await waitListening(POSTFIX.host, POSTFIX.port, 10_000);
  return {
    rootPid: () => postfixMasterPid(dir),
    async stop() {
      await execFileP(script, ['stop', dir]).catch(() => {});
      await waitRefused(POSTFIX.host, POSTFIX.port, 20_000);
      await milter?.stop();
      discardDir(dir);
    },
  };
}

/** OpenDKIM in the foreground as a signing milter for source.test (a fresh 2048-bit RSA key), stopped by its pid. */
async function startOpenDkim(dir: string): Promise<{ stop(): Promise<void> }> {
  const key = join(dir, 'dkim.key');
  await execFileP('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', key]);
  chmodSync(key, 0o600);
  const conf = join(dir, 'opendkim.conf');
  writeFileSync(
    conf,
    [
      'Mode s',
      'Domain source.test',
      'Selector bench',
      `KeyFile ${key}`,
      'Canonicalization relaxed/relaxed',
      'SignatureAlgorithm rsa-sha256',
      'InternalHosts 127.0.0.0/8',
      `Socket inet:${MILTER.port}@${MILTER.host}`,
      'Syslog no',
      'RequireSafeKeys no',
      '',
    ].join('\n'),
  );
  const child = spawn('/usr/sbin/opendkim', ['-f', '-x', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await waitListening(MILTER.host, MILTER.port, 10_000);
  } catch (err) {
    child.kill('SIGTERM');
    throw new Error(`opendkim did not start: ${(err as Error).message} ${stderr.trim()}`, { cause: err });
  }
  return {
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

interface RunReport {
  run: number;
  mta: string;
  seconds: number;
  /** How long the injection took (the MTA's 250s for all transactions and QUIT). */
  injectSeconds: number;
  delivered: number;
  expected: number;
  transactions: { made: number; minimum: number };
  /** Transactions whose message carried a DKIM-Signature field. */
  dkimSigned: number;
  /** Transactions whose envelope sender was not the list owner's own (a VERP sender). */
  verpSenders: number;
  connections: { toLiveHosts: number; liveHostsUsed: number; toSilentHosts: number };
  dnsQueries: { total: number; mx: number; a: number; aaaa: number; other: number; distinctDomains: number; mxHosts: number };
  cpuSeconds: number;
  loadAverage: string;
}

async function runOne(mta: 'tsubame' | 'postfix', run: number, o: Options, l: Layout): Promise<RunReport> {
  const world = await startWorld(o, l);
  let handle: MtaHandle | null = null;
  try {
    handle = mta === 'tsubame' ? await startTsubame(o) : await startPostfixWithDns(o);
    const target = mta === 'tsubame' ? TSUBAME : POSTFIX;
    const live = world.peers.filter((_, h) => l.kinds[h] === 'ok' || l.kinds[h] === 'slow');
    const expected = new Set(l.recipients);
    const cpu0 = treeCpuSeconds(handle.rootPid());
    const started = Date.now();
    await inject(target, l.recipients, o.perTransaction, o.verp && mta === 'postfix');
    const injectSeconds = (Date.now() - started) / 1000;
    const deadline = started + 600_000;
    let delivered = 0;
    for (;;) {
      const seen = new Set<string>();
      for (const p of live) for (const r of p.deliveredRecipients()) if (expected.has(r)) seen.add(r);
      delivered = seen.size;
      if (delivered >= expected.size || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    // The moment the last one arrived, from the peers' own clocks.
    const last = Math.max(...live.flatMap((p) => p.transactions.map((t) => t.receivedAt)));
    const seconds = (last - started) / 1000;
    const cpuSeconds = treeCpuSeconds(handle.rootPid()) - cpu0;
    const q = world.dns.queries;
    const perTransaction = o.verp ? 1 : 100;
    const minimum = l.perMessageHost.reduce((n, hosts) => n + [...hosts.values()].reduce((m, c) => m + Math.ceil(c / perTransaction), 0), 0);
    const transactions = live.flatMap((p) => p.transactions);
    return {
      run,
      mta,
      seconds: Number(seconds.toFixed(3)),
      injectSeconds: Number(injectSeconds.toFixed(3)),
      delivered,
      expected: expected.size,
      transactions: { made: transactions.length, minimum },
      dkimSigned: transactions.filter((t) => /^DKIM-Signature:/im.test(t.data.subarray(0, 8192).toString('latin1'))).length,
      verpSenders: transactions.filter((t) => t.from.toLowerCase() !== OWNER).length,
      connections: {
        toLiveHosts: live.reduce((n, p) => n + p.connections.length, 0),
        liveHostsUsed: live.filter((p) => p.transactions.length > 0).length,
        toSilentHosts: world.peers.filter((_, h) => l.kinds[h] === 'silent').reduce((n, p) => n + p.connections.length, 0),
      },
      dnsQueries: {
        total: q.length,
        mx: q.filter((x) => x.type === 'MX').length,
        a: q.filter((x) => x.type === 'A').length,
        aaaa: q.filter((x) => x.type === 'AAAA').length,
        other: q.filter((x) => !['MX', 'A', 'AAAA'].includes(x.type)).length,
        distinctDomains: o.domains,
        mxHosts: o.hosts,
      },
      cpuSeconds: Number(cpuSeconds.toFixed(2)),
      loadAverage: loadAverage(),
    };
  } finally {
    await handle?.stop();
    await world.close();
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const l = layout(o);
  const dead = `${o.refusing} refusing, ${o.silent} silent`;
  console.log(`# fan-out end to end ${new Date().toISOString()}`);
  console.log(`# ${await machineDescription()}`);
  console.log(`# ${o.recipients} recipients, ${o.domains} domains, ${o.hosts} MX hosts (${dead}, ${o.slow} greeting after ${o.slowMs} ms), injected in transactions of ${o.perTransaction}; DKIM ${o.dkim ? 'on' : 'off'}, VERP ${o.verp ? 'on' : 'off'}; load before ${loadAverage()}`);
  const reports: RunReport[] = [];
  for (let run = 1; run <= o.runs; run++) {
    const order: Array<'tsubame' | 'postfix'> = run % 2 === 1 ? ['postfix', 'tsubame'] : ['tsubame', 'postfix'];
    for (const mta of order) {
      if (o.only && o.only !== mta) continue;
      const r = await runOne(mta, run, o, l);
      reports.push(r);
      if (!o.json) {
        console.log(
          `run ${run} ${mta.padEnd(8)} ${r.seconds.toFixed(2).padStart(7)} s (injected in ${r.injectSeconds.toFixed(2)} s)  delivered ${r.delivered}/${r.expected}  transactions ${r.transactions.made} (min ${r.transactions.minimum}; ${r.dkimSigned} signed, ${r.verpSenders} VERP)  ` +
            `connections ${r.connections.toLiveHosts} to ${r.connections.liveHostsUsed} live hosts, ${r.connections.toSilentHosts} to silent  ` +
            `DNS ${r.dnsQueries.total} (MX ${r.dnsQueries.mx}, A ${r.dnsQueries.a}, AAAA ${r.dnsQueries.aaaa}; ${o.domains} domains, ${o.hosts} hosts)  CPU ${r.cpuSeconds} s  load ${r.loadAverage}`,
        );
      }
    }
  }
  if (o.json) console.log(JSON.stringify(reports));
  if (reports.some((r) => r.delivered !== r.expected)) process.exitCode = 1;
  // What was asked for must have happened, for every transaction of both MTAs.
  if (reports.some((r) => (o.dkim && r.dkimSigned !== r.transactions.made) || (o.verp && r.verpSenders !== r.transactions.made))) {
    console.error('fanout-e2e: not every transaction was signed (--dkim) or had a VERP sender (--verp)');
    process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error(`fanout-e2e: ${(err as Error).message}`);
  process.exit(1);
});
