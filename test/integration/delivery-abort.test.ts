// A batch that runs out of time (the job's MAX_LIFE_AGE) stops by itself: the engine closes the
// connections it holds, reports what it did not finish as deferred with the reason, and keeps
// what it had already delivered.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSmtpJobWith } from '../../src/channels/smtp.js';
import { DnsCache } from '../../src/dns/cache.js';
import { ReachabilityCache } from '../../src/delivery/reachability.js';
import { startDnsServer, startSmtpPeer } from '../helpers/sim-internet.js';
import { makeChannel, makeConfig, Spool } from './delivery-fixtures.js';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('aborted while a host never greets and another answers: the answered one is delivered, the rest deferred with the reason', async () => {
  const good = await startSmtpPeer({ host: '127.6.90.1' });
  cleanups.push(() => good.close());
  const silent = await startSmtpPeer({ host: '127.6.90.2', port: good.port, mode: 'blackhole' });
  cleanups.push(() => silent.close());
  const dns = await startDnsServer({
    host: '127.6.90.53',
    records: {
      'fast.test': { mx: [{ exchange: 'mx.fast.test', preference: 10 }] },
      'mx.fast.test': { a: ['127.6.90.1'] },
      'hung.test': { mx: [{ exchange: 'mx.hung.test', preference: 10 }] },
      'mx.hung.test': { a: ['127.6.90.2'] },
    },
  });
  cleanups.push(() => dns.close());
  const spool = new Spool();
  cleanups.push(() => spool.remove());
  const channel = makeChannel({ port: good.port });
  // The greeting timeout is far away: only the abort can end the batch in time.
  const config = makeConfig(spool.root, { dnsServers: [dns.server], raw: { SMTP_GREETING_TIMEOUT: '60' }, channels: [channel] });
  const reachability = new ReachabilityCache();
  const job = createSmtpJobWith(spool.context(config, channel), { dnsCache: new DnsCache(), reachability });
  cleanups.push(() => job.close());
  const item = spool.message('sender@sim.test', ['a@fast.test', 'b@hung.test']);

  const abort = new AbortController();
  setTimeout(() => abort.abort(new Error('the job did not finish within 1 s and was ended')), 600);
  const started = Date.now();
  const [outcome] = await job.deliver([item], { signal: abort.signal });
  const took = Date.now() - started;

  assert.ok(took < 3000, `the batch ended ${took} ms after it started`);
  const byAddress = Object.fromEntries(outcome!.recipients.map((r) => [r.address, r]));
  assert.equal(byAddress['a@fast.test']!.result, 'delivered');
  assert.equal(byAddress['b@hung.test']!.result, 'deferred');
  assert.match(byAddress['b@hung.test']!.status, /^451 4\.3\.0 the job did not finish within 1 s/);
  assert.deepEqual(good.deliveredRecipients(), ['a@fast.test']);
  assert.equal(reachability.check('127.6.90.2:' + good.port), null, 'a host cut off by the abort is not marked down');
  assert.equal(silent.connections.length, 1, 'the silent host got its connection, which the abort closed');
});

test('a signal already aborted: nothing is sent, everything deferred', async () => {
  const peer = await startSmtpPeer({ host: '127.6.90.3' });
  cleanups.push(() => peer.close());
  const spool = new Spool();
  cleanups.push(() => spool.remove());
  const channel = makeChannel({ port: peer.port, daemon: ['127.6.90.3'] });
  const job = createSmtpJobWith(spool.context(makeConfig(spool.root, { channels: [channel] }), channel), { dnsCache: new DnsCache(), reachability: new ReachabilityCache() });
  cleanups.push(() => job.close());
  const abort = new AbortController();
  abort.abort(new Error('stopping'));
  const [outcome] = await job.deliver([spool.message('sender@sim.test', ['x@anywhere.test'])], { signal: abort.signal });
  assert.equal(outcome!.recipients[0]!.result, 'deferred');
  assert.match(outcome!.recipients[0]!.status, /stopping/);
  assert.equal(peer.transactions.length, 0);
});
