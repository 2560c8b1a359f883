// The SMTP channel against the simulated internet: piggybacking, connection reuse, fail-over,
// the reachability cache, DNS failures, per-recipient replies, PIPELINING, sender rewrite,
// master_debug.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { createSmtpJobWith, type SmtpChannelJob } from '../../src/channels/smtp.js';
import { DnsCache } from '../../src/dns/cache.js';
import { ReachabilityCache } from '../../src/delivery/reachability.js';
import type { Channel } from '../../src/config/types.js';
import { startDnsServer, startSmtpPeers, type DnsTable, type SimDns, type SmtpPeer, type PeerOptions } from '../helpers/sim-internet.js';
import { makeChannel, makeConfig, resultsByAddress, Spool } from './delivery-fixtures.js';
import { waitFor } from '../helpers/instance.js';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

interface World {
  dns: SimDns;
  peers: SmtpPeer[];
  port: number;
  spool: Spool;
  job(overrides?: Partial<Channel>, extra?: { raw?: Record<string, string>; reachability?: ReachabilityCache; dnsCache?: DnsCache }): SmtpChannelJob;
}

/** DNS + peers + spool, all stopped after the file's tests. */
async function world(records: DnsTable, peers: Array<Omit<PeerOptions, 'port'>>, dnsOpts: { glue?: boolean } = {}): Promise<World> {
  const dns = await startDnsServer({ host: '127.0.6.53', records, glue: dnsOpts.glue });
  cleanups.push(() => dns.close());
  const started = await startSmtpPeers(peers);
  cleanups.push(() => Promise.all(started.peers.map((p) => p.close())).then(() => {}));
  const spool = new Spool();
  cleanups.push(() => spool.remove());
  return {
    dns,
    peers: started.peers,
    port: started.port,
    spool,
    job(overrides = {}, extra = {}) {
      const channel = makeChannel({ port: started.port, ...overrides });
      const config = makeConfig(spool.root, {
        dnsServers: [dns.server],
        raw: { SMTP_IDLE_TIMEOUT: '2', SMTP_CONNECT_TIMEOUT: '2', SMTP_GREETING_TIMEOUT: '2', DNS_TIMEOUT: '0.3', DNS_ATTEMPTS: '1', ...extra.raw },
        channels: [channel],
      });
      const job = createSmtpJobWith(spool.context(config, channel), {
        dnsCache: extra.dnsCache ?? new DnsCache(),
        reachability: extra.reachability ?? new ReachabilityCache(),
      });
      cleanups.push(() => job.close());
      return job;
    },
  };
}

test('piggybacking: many domains on few MX hosts go in as few transactions as 100 RCPT allow, one connection per host', async () => {
  const hosts = ['127.6.1.1', '127.6.1.2', '127.6.1.3'];
  const records: DnsTable = {};
  hosts.forEach((ip, i) => (records[`mx${i}.isp.test`] = { a: [ip] }));
  const recipients: string[] = [];
  for (let d = 0; d < 30; d++) {
    records[`d${d}.test`] = { mx: [{ exchange: `mx${d % 3}.isp.test`, preference: 10 }] };
    for (let u = 0; u < 12; u++) recipients.push(`u${u}@d${d}.test`);
  }
  const w = await world(records, hosts.map((host) => ({ host })));
  const job = w.job();
  const m1 = w.spool.message('list-owner@sim.test', recipients);
  const m2 = w.spool.message('list-owner@sim.test', recipients.slice(0, 15));
  const outcomes = await job.deliver([m1, m2]);
  const results = Object.values(resultsByAddress(outcomes));
  assert.equal(outcomes[0]!.recipients.length, 360);
  assert.ok(results.every((r) => r === 'delivered'), 'every recipient delivered');
  for (const peer of w.peers) {
    // 120 recipients of m1 per host → 2 transactions; m2's go to one host or another.
    assert.equal(peer.connections.length, 1, `one connection to ${peer.host}`);
    assert.ok(peer.transactions.every((t) => t.to.length <= 100));
  }
  const m1Transactions = w.peers.flatMap((p) => p.transactions).filter((t) => t.messageId === '<msg1@tsubame.sim.test>');
  assert.equal(m1Transactions.length, 6, 'ceil(120/100) transactions per host for 3 hosts');
  assert.equal(m1Transactions.reduce((n, t) => n + t.to.length, 0), 360);
  const m2Transactions = w.peers.flatMap((p) => p.transactions).filter((t) => t.messageId === '<msg2@tsubame.sim.test>');
  assert.equal(m2Transactions.length, 2, 'message 2 (two domains, two hosts) rides the same connections');
  // The body arrives intact, dot-stuffing undone by the peer.
  assert.match(m1Transactions[0]!.data.toString(), /\r\n\.leading dot\r\n/);
  // DNS: one MX query per domain; the MX hosts' addresses came in the additional section.
  assert.equal(w.dns.count(undefined, 'MX'), 30);
  assert.equal(w.dns.count(undefined, 'A'), 0);
  assert.equal(job.stats().dnsQueries, 30);
  const stats = job.stats();
  assert.equal(stats.connectionsOpened, 3);
});

test('fail-over: a dead primary sends its domains to the backup MX, which piggybacks with its own domains', async () => {
  // a.test: mx1 (dead) then mx2; b.test: mx2 primary. Everything should reach mx2 in one transaction.
  const records: DnsTable = {
    'a.test': { mx: [{ exchange: 'mx1.a.test', preference: 10 }, { exchange: 'mx2.b.test', preference: 20 }] },
    'b.test': { mx: [{ exchange: 'mx2.b.test', preference: 10 }] },
    'mx1.a.test': { a: ['127.6.2.1'] },
    'mx2.b.test': { a: ['127.6.2.2'] },
  };
  const w = await world(records, [{ host: '127.6.2.1', mode: 'refuse' }, { host: '127.6.2.2' }]);
  const reachability = new ReachabilityCache();
  const job = w.job({}, { reachability });
  const outcomes = await job.deliver([w.spool.message('owner@sim.test', ['x@a.test', 'y@a.test', 'z@b.test'])]);
  assert.deepEqual(resultsByAddress(outcomes), { 'x@a.test': 'delivered', 'y@a.test': 'delivered', 'z@b.test': 'delivered' });
  const backup = w.peers[1]!;
  assert.equal(backup.connections.length, 1);
  const all = backup.transactions.flatMap((t) => t.to).sort();
  assert.deepEqual(all, ['x@a.test', 'y@a.test', 'z@b.test']);
  assert.equal(backup.transactions.length, 1, 'the failed-over domain was piggybacked onto the backup host\'s own transaction');
  assert.ok(reachability.check(`127.6.2.1:${w.port}`), 'the dead host is in the reachability cache');
  assert.match(outcomes[0]!.recipients[0]!.remoteHost ?? '', /mx2\.b\.test\[127\.6\.2\.2\]/);
});

test('reachability cache: a host that timed out is not tried again by later messages and jobs', async () => {
  const records: DnsTable = {
    'slow.test': { mx: [{ exchange: 'mx1.slow.test', preference: 10 }, { exchange: 'mx2.slow.test', preference: 20 }] },
    'mx1.slow.test': { a: ['127.6.3.1'] },
    'mx2.slow.test': { a: ['127.6.3.2'] },
  };
  const w = await world(records, [{ host: '127.6.3.1', mode: 'blackhole' }, { host: '127.6.3.2' }]);
  const reachability = new ReachabilityCache();
  const dnsCache = new DnsCache();
  const raw = { SMTP_GREETING_TIMEOUT: '0.4' };
  const job1 = w.job({}, { reachability, dnsCache, raw });
  const started = Date.now();
  const o1 = await job1.deliver([w.spool.message('a@sim.test', ['u1@slow.test'])]);
  const firstTook = Date.now() - started;
  assert.equal(o1[0]!.recipients[0]!.result, 'delivered');
  assert.equal(w.peers[0]!.connections.length, 1, 'the silent host was tried once');
  // Later messages, in the same job and in another job sharing the caches, skip it at once.
  const o2 = await job1.deliver([w.spool.message('a@sim.test', ['u2@slow.test'])]);
  const job2 = w.job({}, { reachability, dnsCache, raw });
  const t2 = Date.now();
  const o3 = await job2.deliver([w.spool.message('a@sim.test', ['u3@slow.test'])]);
  assert.equal(o2[0]!.recipients[0]!.result, 'delivered');
  assert.equal(o3[0]!.recipients[0]!.result, 'delivered');
  assert.equal(w.peers[0]!.connections.length, 1, 'no further connection to the silent host');
  assert.ok(firstTook >= 350, 'the first delivery waited for the greeting timeout');
  assert.ok(Date.now() - t2 < 350, 'the second job did not wait for it');
  assert.equal(w.dns.count('slow.test', 'MX'), 1, 'the second job used the shared DNS cache');
  assert.ok(job2.stats().skippedUnreachable >= 1);
});

test('a host marked down by one job releases the other jobs still waiting on it: one timeout, not one per job', async () => {
  const records: DnsTable = {
    'quiet.test': { mx: [{ exchange: 'mx1.quiet.test', preference: 10 }, { exchange: 'mx2.quiet.test', preference: 20 }] },
    'mx1.quiet.test': { a: ['127.6.3.11'] },
    'mx2.quiet.test': { a: ['127.6.3.12'] },
  };
  const w = await world(records, [{ host: '127.6.3.11', mode: 'blackhole' }, { host: '127.6.3.12' }]);
  const [silent, backup] = w.peers as [SmtpPeer, SmtpPeer];
  const reachability = new ReachabilityCache();
  // The first job gives up on the silent host after 0.5 s; the second alone would wait 10 s.
  const quick = w.job({}, { reachability, raw: { SMTP_GREETING_TIMEOUT: '0.5' } });
  const patient = w.job({}, { reachability, raw: { SMTP_GREETING_TIMEOUT: '10' } });
  const first = quick.deliver([w.spool.message('a@sim.test', ['u1@quiet.test'])]);
  await waitFor(() => silent.connections.length === 1 || null, { timeoutMs: 5000, what: "the first job's connection" });
  const startedSecond = Date.now();
  const second = patient.deliver([w.spool.message('a@sim.test', ['u2@quiet.test'])]);
  await waitFor(() => silent.connections.length === 2 || null, { timeoutMs: 5000, what: "the second job's connection" });
  const [o1, o2] = await Promise.all([first, second]);
  const secondTook = Date.now() - startedSecond;
  assert.equal(o1[0]!.recipients[0]!.result, 'delivered');
  assert.equal(o2[0]!.recipients[0]!.result, 'delivered');
  assert.deepEqual(backup.transactions.flatMap((t) => t.to).sort(), ['u1@quiet.test', 'u2@quiet.test']);
  assert.ok(secondTook < 3000, `the second job went to the backup when the first marked the host down (${secondTook} ms, its own timeout is 10 s)`);
  assert.ok(reachability.check(`127.6.3.11:${w.port}`), 'the silent host is marked down');
});

test('all MX hosts unreachable → deferred with the connection error; a later job does not retry them', async () => {
  const records: DnsTable = {
    'down.test': { mx: [{ exchange: 'mx.down.test', preference: 10 }] },
    'mx.down.test': { a: ['127.6.4.1'] },
  };
  const w = await world(records, [{ host: '127.6.4.1', mode: 'refuse' }]);
  const reachability = new ReachabilityCache();
  const job = w.job({}, { reachability });
  const [o] = await job.deliver([w.spool.message('a@sim.test', ['u@down.test'])]);
  assert.equal(o!.recipients[0]!.result, 'deferred');
  assert.match(o!.recipients[0]!.status, /^451 4\.4\.1 connect to mx\.down\.test\[127\.6\.4\.1\]:\d+: Connection refused/);
  const job2 = w.job({}, { reachability });
  const [o2] = await job2.deliver([w.spool.message('a@sim.test', ['v@down.test'])]);
  assert.equal(o2!.recipients[0]!.result, 'deferred');
  assert.match(o2!.recipients[0]!.status, /not tried again until/);
  assert.equal(job2.stats().connectFailures, 0, 'no new connection attempt');
});

test('DNS: null MX and NXDOMAIN fail permanently, a timeout defers (and is remembered), implicit MX and no glue work', async () => {
  const records: DnsTable = {
    'nullmx.test': { mx: 'null' },
    'timeout.test': { behaviour: 'timeout' },
    'servfail.test': { behaviour: 'servfail' },
    'implicit.test': { a: ['127.6.5.1'] },
    'noglue.test': { mx: [{ exchange: 'mx.noglue.test', preference: 5 }] },
    'mx.noglue.test': { a: ['127.6.5.1'] },
    'cname.test': { cname: 'implicit.test' },
  };
  const w = await world(records, [{ host: '127.6.5.1' }], { glue: false });
  const dnsCache = new DnsCache();
  const job = w.job({}, { dnsCache });
  const rcpts = ['a@nullmx.test', 'b@nxdomain.test', 'c@timeout.test', 'd@servfail.test', 'e@implicit.test', 'f@noglue.test', 'g@cname.test'];
  const [o] = await job.deliver([w.spool.message('s@sim.test', rcpts)]);
  const by = Object.fromEntries(o!.recipients.map((r) => [r.address, r]));
  assert.equal(by['a@nullmx.test']!.result, 'failed');
  assert.match(by['a@nullmx.test']!.status, /^556 5\.1\.10 /);
  assert.equal(by['b@nxdomain.test']!.result, 'failed');
  assert.match(by['b@nxdomain.test']!.status, /^550 5\.1\.2 /);
  assert.equal(by['c@timeout.test']!.result, 'deferred');
  assert.match(by['c@timeout.test']!.status, /^451 4\.4\.3 .*timeout/);
  assert.equal(by['d@servfail.test']!.result, 'deferred');
  assert.match(by['d@servfail.test']!.status, /^451 4\.4\.3 .*SERVFAIL/);
  for (const a of ['e@implicit.test', 'f@noglue.test', 'g@cname.test']) assert.equal(by[a]!.result, 'delivered', a);
  // e@implicit.test and f@noglue.test and g@cname.test share the host: one transaction.
  assert.equal(w.peers[0]!.transactions.length, 1);
  assert.equal(w.dns.count('mx.noglue.test', 'A'), 1, 'no glue: the MX host address was looked up');
  // A second job in the same thread does not wait for the timeout again.
  const job2 = w.job({}, { dnsCache });
  const before = w.dns.count('timeout.test');
  const t = Date.now();
  const [o2] = await job2.deliver([w.spool.message('s@sim.test', ['c2@timeout.test'])]);
  assert.equal(o2!.recipients[0]!.result, 'deferred');
  assert.ok(Date.now() - t < 250, 'negative cache answered at once');
  assert.equal(w.dns.count('timeout.test'), before);
});

test('per-recipient replies: 4xx defers and 5xx fails only those recipients; DATA refusal applies to the rest', async () => {
  const records: DnsTable = { 'r.test': { a: ['127.6.6.1'] }, 'q.test': { a: ['127.6.6.2'] } };
  const w = await world(records, [
    { host: '127.6.6.1', rcptReplies: { 'busy@r.test': { code: 452, message: '4.2.2 mailbox full' }, 'gone@r.test': { code: 550, message: '5.1.1 no such user' } } },
    { host: '127.6.6.2', dataReply: { code: 554, message: '5.6.0 content rejected' } },
  ]);
  const job = w.job();
  const [o] = await job.deliver([w.spool.message('s@sim.test', ['ok@r.test', 'busy@r.test', 'gone@r.test', 'x@q.test'])]);
  const by = Object.fromEntries(o!.recipients.map((r) => [r.address, r]));
  assert.equal(by['ok@r.test']!.result, 'delivered');
  assert.equal(by['busy@r.test']!.result, 'deferred');
  assert.match(by['busy@r.test']!.status, /^452 4\.2\.2 mailbox full \(in reply to RCPT TO\)/);
  assert.equal(by['gone@r.test']!.result, 'failed');
  assert.match(by['gone@r.test']!.status, /^550 5\.1\.1 no such user/);
  assert.match(by['gone@r.test']!.remoteHost ?? '', /^r\.test\[127\.6\.6\.1\]/);
  assert.equal(by['x@q.test']!.result, 'failed');
  assert.match(by['x@q.test']!.status, /^554 5\.6\.0 content rejected \(in reply to end of DATA\)/);
  assert.deepEqual(w.peers[0]!.deliveredRecipients(), ['ok@r.test']);
});

test('PIPELINING used when offered, lock-step with nopipelining or when not offered; sender rewrite; RSET after refusal', async () => {
  const records: DnsTable = { 'p.test': { a: ['127.6.7.1'] }, 'np.test': { a: ['127.6.7.2'] } };
  const w = await world(records, [{ host: '127.6.7.1', rcptReplies: { 'no@p.test': { code: 550, message: '5.1.1 unknown' } } }, { host: '127.6.7.2', pipelining: false }]);
  const job = w.job({ senderRewrite: 'bounces@lists.sim.test' });
  // The first message is refused entirely (its only recipient is unknown): the next needs RSET on the same connection.
  await job.deliver([w.spool.message('s@sim.test', ['no@p.test']), w.spool.message('s@sim.test', ['a@p.test', 'b@p.test', 'c@np.test'])]);
  const pipelined = w.peers[0]!;
  assert.equal(pipelined.connections.length, 1);
  assert.ok(pipelined.connections[0]!.pipelinedBatches >= 1, 'MAIL, RCPTs and DATA went in one batch');
  assert.equal(pipelined.transactions.length, 1);
  assert.deepEqual(pipelined.transactions[0]!.to, ['a@p.test', 'b@p.test']);
  assert.equal(pipelined.transactions[0]!.from, 'bounces@lists.sim.test');
  assert.equal(w.peers[1]!.connections[0]!.pipelinedBatches, 0, 'no pipelining when not offered');
  const job2 = w.job({ pipelining: false });
  await job2.deliver([w.spool.message('s@sim.test', ['d@p.test', 'e@p.test'])]);
  assert.equal(pipelined.connections.length, 2);
  assert.equal(pipelined.connections[1]!.pipelinedBatches, 0, 'nopipelining: lock-step');
  assert.equal(pipelined.transactions[1]!.from, 's@sim.test');
});

test('connection limit: no more than maxClientConnections at once; daemon smart hosts; master_debug transcript', async () => {
  const records: DnsTable = { 'smart.sim.test': { a: ['127.6.8.1'] } };
  for (let i = 0; i < 6; i++) records[`h${i}.test`] = { a: [`127.6.8.${10 + i}`] };
  const w = await world(records, [{ host: '127.6.8.1' }, ...Array.from({ length: 6 }, (_, i) => ({ host: `127.6.8.${10 + i}`, greetingDelayMs: 100 }))]);
  const job = w.job({ maxClientConnections: 2, masterDebug: true });
  const rcpts = Array.from({ length: 6 }, (_, i) => `u@h${i}.test`);
  const t0 = Date.now();
  const [o] = await job.deliver([w.spool.message('s@sim.test', rcpts)]);
  const took = Date.now() - t0;
  assert.ok(o!.recipients.every((r) => r.result === 'delivered'));
  const perPeer = w.peers.slice(1).map((p) => p.connections.length);
  assert.deepEqual(perPeer, [1, 1, 1, 1, 1, 1]);
  // Each session needs ≥ 200 ms before its greeting; 6 hosts, 2 at a time → at least 3 rounds.
  assert.ok(took >= 550, `two connections at a time (took ${took} ms)`);
  assert.ok(job.transcriptPath && existsSync(job.transcriptPath));
  await job.close();
  const transcript = readFileSync(job.transcriptPath, 'utf8');
  assert.match(transcript, /MAIL FROM:<s@sim\.test>/);
  assert.match(transcript, /RCPT TO:<u@h0\.test>/);
  assert.match(job.transcriptPath, /tcp_local_master\.log-/);
  // Smart host: every recipient, whatever its domain, goes to the daemon host in one transaction.
  const smart = w.job({ daemon: ['smart.sim.test'] });
  const [o2] = await smart.deliver([w.spool.message('s@sim.test', ['a@nowhere.test', 'b@elsewhere.test'])]);
  assert.ok(o2!.recipients.every((r) => r.result === 'delivered'));
  assert.equal(w.peers[0]!.transactions.length, 1);
  assert.deepEqual(w.peers[0]!.transactions[0]!.to, ['a@nowhere.test', 'b@elsewhere.test']);
  assert.equal(w.dns.count('nowhere.test'), 0, 'no MX lookups with a smart host');
});

test('a server that takes fewer RCPTs per transaction (452 too many recipients) gets the rest in further transactions', async () => {
  const w = await world({ 'small.test': { a: ['127.6.9.1'] } }, [{ host: '127.6.9.1', maxRecipients: 10 }]);
  const job = w.job();
  const rcpts = Array.from({ length: 25 }, (_, i) => `u${i}@small.test`);
  const [o] = await job.deliver([w.spool.message('s@sim.test', rcpts)]);
  assert.ok(o!.recipients.every((r) => r.result === 'delivered'), JSON.stringify(o!.recipients.find((r) => r.result !== 'delivered')));
  assert.deepEqual(w.peers[0]!.transactions.map((t) => t.to.length), [10, 10, 5]);
  assert.equal(w.peers[0]!.connections.length, 1);
});
