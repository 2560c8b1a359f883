// Fan-out benchmark: one list message to thousands of recipients in hundreds of domains that share
// far fewer MX hosts, some dead (refusing or silent, each domain has a backup MX), some slow to
// greet — the SMTPfeed situation. Everything runs on loopback: the simulated DNS server on
// 127.0.6.53 and SMTP peers on 127.6.100.x, driven through the SMTP channel job API.
//
//   node dist/bench/fanout.js [--recipients 5000] [--domains 500] [--hosts 40] [--refusing 3]
//       [--silent 1] [--slow 5] [--slow-ms 300] [--connections 20] [--no-glue] [--dkim] [--verp]
//       [--json]
//
// Reports wall time, transactions, connections and DNS queries next to the piggybacking minimum
// (one MX query per domain with glue; per live host ceil(recipients/100) transactions over one
// connection). --dkim: the queued message carries a DKIM signature (rsa-sha256, 2048 bits) made
// once by src/dkim as at enqueue, its time reported; --verp: the channel has `verp`, so each
// recipient is a transaction of its own with its own envelope sender (the minimum becomes one
// transaction per recipient).
import { createSmtpJobWith } from '../src/channels/smtp.js';
import { DnsCache } from '../src/dns/cache.js';
import { ReachabilityCache } from '../src/delivery/reachability.js';
import { startDnsServer, startSmtpPeers, type DnsTable, type PeerOptions } from '../test/helpers/sim-internet.js';
import { makeChannel, makeConfig, Spool } from '../test/integration/delivery-fixtures.js';
import { DEFAULT_SCENARIO, checkScenario, takeScenarioFlag, type FanoutScenario } from './lib/fanout-scenario.js';
import { generateKeyPairSync } from 'node:crypto';
import { signMessage } from '../src/dkim/index.js';
import type { DkimConfig } from '../src/config/types.js';

interface Options extends FanoutScenario {
  connections: number;
  glue: boolean;
  dkim: boolean;
  verp: boolean;
  json: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { ...DEFAULT_SCENARIO, connections: 20, glue: true, dkim: false, verp: false, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => Number(argv[++i]);
    if (takeScenarioFlag(o, a, () => argv[++i])) continue;
    if (a === '--connections') o.connections = next();
    else if (a === '--no-glue') o.glue = false;
    else if (a === '--dkim') o.dkim = true;
    else if (a === '--verp') o.verp = true;
    else if (a === '--json') o.json = true;
    else throw new Error(`unknown argument ${a}`);
  }
  checkScenario(o);
  return o;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const ip = (h: number) => `127.6.100.${h + 1}`;
  // Hosts 0..refusing-1 refuse, the next `silent` accept and never greet, the next `slow` greet late.
  const kind = (h: number): 'refuse' | 'silent' | 'slow' | 'ok' =>
    h < o.refusing ? 'refuse' : h < o.refusing + o.silent ? 'silent' : h < o.refusing + o.silent + o.slow ? 'slow' : 'ok';
  const records: DnsTable = {};
  for (let h = 0; h < o.hosts; h++) records[`mx${h}.isp.test`] = { a: [ip(h)] };
  // Domain d: primary mx(d % hosts), backup the next live host after it.
  const live = (h: number) => kind(h) === 'ok' || kind(h) === 'slow';
  const backupOf = (h: number) => {
    for (let k = 1; k <= o.hosts; k++) if (live((h + k) % o.hosts)) return (h + k) % o.hosts;
    throw new Error('no live host');
  };
  const finalHost: number[] = [];
  for (let d = 0; d < o.domains; d++) {
    const primary = d % o.hosts;
    const backup = backupOf(primary);
    records[`list${d}.test`] = { mx: [{ exchange: `mx${primary}.isp.test`, preference: 10 }, { exchange: `mx${backup}.isp.test`, preference: 20 }] };
    finalHost[d] = live(primary) ? primary : backup;
  }
  const recipients: string[] = [];
  const perHost = new Map<number, number>();
  for (let i = 0; i < o.recipients; i++) {
    const d = i % o.domains;
    recipients.push(`member${i}@list${d}.test`);
    perHost.set(finalHost[d]!, (perHost.get(finalHost[d]!) ?? 0) + 1);
  }

  const dns = await startDnsServer({ host: '127.0.6.53', records, glue: o.glue });
  const peerOptions: Array<Omit<PeerOptions, 'port'>> = [];
  for (let h = 0; h < o.hosts; h++) {
    const k = kind(h);
    peerOptions.push({ host: ip(h), mode: k === 'refuse' ? 'refuse' : k === 'silent' ? 'blackhole' : 'normal', greetingDelayMs: k === 'slow' ? o.slowMs : 0 });
  }
  const { port, peers } = await startSmtpPeers(peerOptions);
  const spool = new Spool();
  const channel = makeChannel({ port, maxClientConnections: o.connections, mx: 'nonrandommx', verp: o.verp });
  const config = makeConfig(spool.root, {
    dnsServers: [dns.server],
    raw: { SMTP_GREETING_TIMEOUT: '1', SMTP_CONNECT_TIMEOUT: '1', SMTP_IDLE_TIMEOUT: '2' },
    channels: [channel],
  });
  const job = createSmtpJobWith(spool.context(config, channel), { dnsCache: new DnsCache(), reachability: new ReachabilityCache() });
  const OWNER = 'list-owner@sim.test';
  let body = `From: <${OWNER}>\r\nTo: list@sim.test\r\nSubject: the monthly list message\r\nMessage-ID: <fanout@sim.test>\r\n\r\n${'A list message of about two kilobytes.\r\n'.repeat(50)}`;
  let dkimSignMs: number | null = null;
  if (o.dkim) {
    const dkim = benchDkimConfig();
    const t0 = process.hrtime.bigint();
    body = signMessage(Buffer.from(body, 'latin1'), dkim) + body;
    dkimSignMs = Number(process.hrtime.bigint() - t0) / 1e6;
  }
  const item = spool.message(OWNER, recipients, { body });
  const started = process.hrtime.bigint();
  let outcomes;
  try {
    outcomes = await job.deliver([item]);
  } finally {
    await job.close();
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const results = { delivered: 0, deferred: 0, failed: 0 };
  for (const r of outcomes[0]!.recipients) results[r.result]++;
  const stats = job.stats();
  const peerTransactions = peers.reduce((n, p) => n + p.transactions.length, 0);
  const peerConnections = peers.reduce((n, p) => n + p.connections.length, 0);
  const liveConnections = peers.filter((_, h) => live(h)).reduce((n, p) => n + p.connections.length, 0);
  const perTransaction = o.verp ? 1 : channel.rcptPerTransaction;
  const minTransactions = [...perHost.values()].reduce((n, c) => n + Math.ceil(c / perTransaction), 0);
  const transactions = peers.flatMap((p) => p.transactions);
  const verpSenders = transactions.filter((t) => t.from !== OWNER).length;
  const signed = transactions.filter((t) => /^DKIM-Signature:/im.test(t.data.subarray(0, 4096).toString('latin1'))).length;
  const report = {
    benchmark: 'fanout',
    recipients: o.recipients,
    domains: o.domains,
    hosts: o.hosts,
    dead: { refusing: o.refusing, silent: o.silent },
    slow: { hosts: o.slow, ms: o.slowMs },
    maxConnections: o.connections,
    glue: o.glue,
    dkim: { on: o.dkim, signMs: dkimSignMs === null ? null : Number(dkimSignMs.toFixed(2)), signedTransactions: signed },
    verp: { on: o.verp, transactionsWithVerpSender: verpSenders },
    seconds: Number(seconds.toFixed(3)),
    recipientsPerSecond: Math.round(o.recipients / seconds),
    results,
    transactions: { made: peerTransactions, minimum: minTransactions },
    connections: { toLiveHosts: liveConnections, liveHostsUsed: perHost.size, attemptsToDeadHosts: peerConnections - liveConnections + stats.connectFailures - o.silent * 0, connectFailures: stats.connectFailures },
    dnsQueries: { made: stats.dnsQueries, minimum: o.domains, withoutGlue: o.domains + 2 * o.hosts },
  };
  if (o.json) console.log(JSON.stringify(report));
  else {
    console.log(`fan-out: ${o.recipients} recipients, ${o.domains} domains, ${o.hosts} MX hosts (${o.refusing} refusing, ${o.silent} silent, ${o.slow} greeting after ${o.slowMs} ms), ≤${o.connections} connections`);
    console.log(`  time            ${report.seconds} s (${report.recipientsPerSecond} recipients/s)`);
    console.log(`  results         ${results.delivered} delivered, ${results.deferred} deferred, ${results.failed} failed`);
    console.log(`  transactions    ${peerTransactions} (piggybacking minimum ${minTransactions}${o.verp ? ', one per recipient with VERP' : ''})`);
    if (o.dkim) console.log(`  DKIM            signed once in ${report.dkim.signMs} ms; ${signed} transactions carried the signature`);
    if (o.verp) console.log(`  VERP            ${verpSenders} transactions with the member's own envelope sender`);
    console.log(`  connections     ${liveConnections} to ${perHost.size} live hosts; ${stats.connectFailures} failed attempts to dead hosts`);
    console.log(`  DNS queries     ${stats.dnsQueries} (minimum ${o.domains}; MX + A + AAAA per host without glue would add ${2 * o.hosts})`);
  }
  await Promise.all(peers.map((p) => p.close()));
  await dns.close();
  spool.remove();
  if (results.delivered !== o.recipients) process.exitCode = 1;
  if ((o.dkim && signed !== peerTransactions) || (o.verp && verpSenders !== peerTransactions)) process.exitCode = 1;
}

/** A fresh 2048-bit RSA key for sim.test (selector bench), as etc/dkim/keys would give it. */
function benchDkimConfig(): DkimConfig {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { file: null, keys: [{ domain: 'sim.test', subdomains: false, selector: 'bench', algorithm: 'rsa-sha256', keyFile: '/dev/null', privateKey, signatureBytes: 256, file: 'bench', line: 1 }] };
}

main().catch((err) => {
  console.error(`fanout: ${(err as Error).message}`);
  process.exit(1);
});
