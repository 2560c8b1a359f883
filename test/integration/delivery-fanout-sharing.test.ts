// What a channel's fan-out shares between the batches its jobs hand over (issue 18), against the
// simulated internet: two batches for one domain delivered at the same time on one channel ride
// one connection and one MX lookup; SMTP_DNS_REUSE decides how long a destination's MX answer
// serves later batches. The DNS server answers with TTL 0 (as dnsmasq does for its own records),
// so the thread's DNS cache keeps nothing and every MX query the server counts past the first is
// one the fan-out did not share.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSmtpJobWith, type SmtpChannelJob } from '../../src/channels/smtp.js';
import { DnsCache } from '../../src/dns/cache.js';
import { ReachabilityCache } from '../../src/delivery/reachability.js';
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
  spool: Spool;
  /** One channel job (the thread's job for the channel: one fan-out), with option.dat `raw`. */
  job(raw?: Record<string, string>): SmtpChannelJob;
}

/** DNS (TTL 0) on `dnsHost`, the peers, a spool; all stopped after the file's tests. */
async function world(dnsHost: string, records: DnsTable, peers: Array<Omit<PeerOptions, 'port'>>): Promise<World> {
  const dns = await startDnsServer({ host: dnsHost, records, ttl: 0 });
  cleanups.push(() => dns.close());
  const started = await startSmtpPeers(peers);
  cleanups.push(() => Promise.all(started.peers.map((p) => p.close())).then(() => {}));
  const spool = new Spool();
  cleanups.push(() => spool.remove());
  return {
    dns,
    peers: started.peers,
    spool,
    job(raw = {}) {
      const channel = makeChannel({ port: started.port });
      const config = makeConfig(spool.root, {
        dnsServers: [dns.server],
        raw: { SMTP_IDLE_TIMEOUT: '5', SMTP_CONNECT_TIMEOUT: '5', SMTP_GREETING_TIMEOUT: '5', DNS_TIMEOUT: '0.5', DNS_ATTEMPTS: '1', ...raw },
        channels: [channel],
      });
      const job = createSmtpJobWith(spool.context(config, channel), { dnsCache: new DnsCache(), reachability: new ReachabilityCache() });
      cleanups.push(() => job.close());
      return job;
    },
  };
}

test('two batches for one domain delivered at the same time on one channel: one connection carries both, one MX query answers both', async () => {
  const w = await world(
    '127.6.61.53',
    { 'list.test': { mx: [{ exchange: 'mx.isp.test', preference: 10 }] }, 'mx.isp.test': { a: ['127.6.61.1'] } },
    // Greets late: the second batch arrives while the first batch's connection is still being opened.
    [{ host: '127.6.61.1', greetingDelayMs: 800 }],
  );
  const [peer] = w.peers as [SmtpPeer];
  const job = w.job();
  const first = job.deliver([w.spool.message('owner@sim.test', ['a@list.test', 'b@list.test'])]);
  // The connection is opened only once the domain's MX answer is in: the first lookup is over.
  await waitFor(() => peer.connections.length === 1 || null, { timeoutMs: 5000, what: "the first batch's connection" });
  const second = job.deliver([w.spool.message('owner@sim.test', ['c@list.test'])]);
  // The premise: the second batch came while the first was still waiting for its greeting (not an idle connection taken over afterwards).
  assert.equal(peer.connections[0]!.greetedAt, null, 'the second batch was handed over before the first connection was greeted');
  const [o1, o2] = await Promise.all([first, second]);
  assert.deepEqual(resultsByAddress([...o1, ...o2]), { 'a@list.test': 'delivered', 'b@list.test': 'delivered', 'c@list.test': 'delivered' });
  assert.equal(peer.connections.length, 1, 'the second batch rode the first batch\'s connection');
  assert.deepEqual(
    peer.transactions.map((t) => [t.connection, t.to]),
    [
      [1, ['a@list.test', 'b@list.test']],
      [1, ['c@list.test']],
    ],
  );
  assert.equal(w.dns.count('list.test', 'MX'), 1, 'one MX query for both batches (the answer has TTL 0: the fan-out kept it)');
  assert.equal(w.dns.count('mx.isp.test'), 0, 'the MX host address came with the MX answer');
  const stats = job.stats();
  assert.equal(stats.connectionsOpened, 1);
  assert.equal(stats.dnsQueries, 1);
});

test('SMTP_DNS_REUSE: on (the default, or a few seconds) a later batch is sent by the MX answer already in hand until the time is up; 0 asks the DNS again for every batch', async () => {
  // list.test moves from mx1 to mx2 between batches: where the second batch goes shows which answer it used.
  const w = await world(
    '127.6.62.53',
    { 'list.test': { mx: [{ exchange: 'mx1.isp.test', preference: 10 }] }, 'mx1.isp.test': { a: ['127.6.62.1'] }, 'mx2.isp.test': { a: ['127.6.62.2'] } },
    [{ host: '127.6.62.1' }, { host: '127.6.62.2' }],
  );
  const [mx1, mx2] = w.peers as [SmtpPeer, SmtpPeer];
  const moveTo = (exchange: string) => (w.dns.records['list.test'] = { mx: [{ exchange, preference: 10 }] });
  const deliverOne = async (job: SmtpChannelJob, rcpt: string) => {
    const [o] = await job.deliver([w.spool.message('owner@sim.test', [rcpt])]);
    assert.equal(o!.recipients[0]!.result, 'delivered', `${rcpt}: ${o!.recipients[0]!.status}`);
  };
  const queries = () => w.dns.count('list.test', 'MX');

  // Default (60 s): the second batch, after the first is done, is sent by the first batch's answer.
  const byDefault = w.job();
  await deliverOne(byDefault, 'd1@list.test');
  moveTo('mx2.isp.test');
  await deliverOne(byDefault, 'd2@list.test');
  assert.equal(queries(), 1, 'default: one MX query for both batches');
  assert.deepEqual(mx1.deliveredRecipients(), ['d1@list.test', 'd2@list.test'], 'default: the second batch went where the kept answer said');

  // 0: every batch asks again, and follows the new answer at once.
  moveTo('mx1.isp.test');
  const off = w.job({ SMTP_DNS_REUSE: '0' });
  await deliverOne(off, 'z1@list.test');
  moveTo('mx2.isp.test');
  await deliverOne(off, 'z2@list.test');
  assert.equal(queries(), 3, 'SMTP_DNS_REUSE=0: one MX query per batch');
  assert.deepEqual(mx2.deliveredRecipients(), ['z2@list.test'], 'SMTP_DNS_REUSE=0: the second batch followed the new answer');

  // 2 s: reused within them, asked again after them.
  moveTo('mx1.isp.test');
  const short = w.job({ SMTP_DNS_REUSE: '2' });
  const started = Date.now();
  await deliverOne(short, 's1@list.test');
  // The answer came before the first batch was done: it is past its time 2 s after that.
  const firstDone = Date.now();
  moveTo('mx2.isp.test');
  await deliverOne(short, 's2@list.test');
  assert.ok(Date.now() - started < 2000, 'the second batch came within the reuse time (the test premise)');
  assert.equal(queries(), 4, 'SMTP_DNS_REUSE=2: the second batch within 2 s used the answer in hand');
  assert.ok(mx1.deliveredRecipients().includes('s2@list.test'));
  await waitFor(() => Date.now() - firstDone > 2000 || null, { timeoutMs: 5000, what: 'the reuse time to pass' });
  await deliverOne(short, 's3@list.test');
  assert.equal(queries(), 5, 'SMTP_DNS_REUSE=2: a batch after 2 s asks again');
  assert.deepEqual(mx2.deliveredRecipients(), ['z2@list.test', 's3@list.test']);
});
