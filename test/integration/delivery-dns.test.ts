// The delivery resolver on the simulated DNS server: glue from the additional section, cache and
// coalescing, truncation → TCP, server fail-over; nomx and source routes through the channel.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { DnsClient } from '../../src/dns/client.js';
import { DnsCache } from '../../src/dns/cache.js';
import { DeliveryResolver } from '../../src/delivery/resolver.js';
import { ReachabilityCache } from '../../src/delivery/reachability.js';
import { createSmtpJobWith } from '../../src/channels/smtp.js';
import { startDnsServer, startSmtpPeers, type DnsTable } from '../helpers/sim-internet.js';
import { makeChannel, makeConfig, Spool } from './delivery-fixtures.js';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const records: DnsTable = {
  'one.test': { mx: [{ exchange: 'mx.shared.test', preference: 10 }, { exchange: 'mx2.shared.test', preference: 20 }] },
  'two.test': { mx: [{ exchange: 'mx.shared.test', preference: 10 }] },
  'mx.shared.test': { a: ['127.6.20.1'], aaaa: ['::1'] },
  'mx2.shared.test': { a: ['127.6.20.2'] },
  'big.test': { mx: [{ exchange: 'mx.shared.test', preference: 10 }], behaviour: 'truncate' },
  'plain.test': { a: ['127.6.20.3'], mx: [{ exchange: 'elsewhere.test', preference: 10 }] },
};

async function resolverFor(servers: string[], glue = true) {
  const dns = await startDnsServer({ host: '127.0.6.53', records, glue });
  cleanups.push(() => dns.close());
  const client = new DnsClient(
    servers.map((s) => (s === 'SIM' ? { host: dns.host, port: dns.port } : { host: s.split(':')[0]!, port: Number(s.split(':')[1]) })),
    { timeoutMs: 300, attempts: 1 },
  );
  cleanups.push(() => client.close());
  const cache = new DnsCache();
  return { dns, client, cache, resolver: new DeliveryResolver(client, cache, { negativeTtlMs: 60_000, maxTtlMs: 86_400_000, localNames: ['tsubame.sim.test'] }) };
}

test('glue: one query per domain with additional-section addresses, three without; the cache serves the rest', async () => {
  const withGlue = await resolverFor(['SIM']);
  const r1 = await withGlue.resolver.resolveMx('one.test');
  assert.ok(r1.ok);
  assert.deepEqual(r1.ok && r1.hosts.map((h) => [h.name, h.addresses]), [
    ['mx.shared.test', ['127.6.20.1', '::1']],
    ['mx2.shared.test', ['127.6.20.2']],
  ]);
  assert.equal(withGlue.client.stats.queries, 1, 'MX answer with glue: one query');
  await withGlue.resolver.resolveMx('two.test');
  assert.equal(withGlue.client.stats.queries, 2);
  await withGlue.resolver.resolveMx('one.test');
  assert.equal(withGlue.client.stats.queries, 2, 'cached');

  const noGlue = await resolverFor(['SIM'], false);
  await noGlue.resolver.resolveMx('one.test');
  assert.equal(noGlue.client.stats.queries, 5, 'MX + A/AAAA for each of two hosts');
  await noGlue.resolver.resolveMx('two.test');
  assert.equal(noGlue.client.stats.queries, 6, 'the shared MX host address is reused (SMTPfeed §3.7)');
});

test('concurrent identical lookups coalesce into one query', async () => {
  const { resolver, client, cache } = await resolverFor(['SIM']);
  const results = await Promise.all(Array.from({ length: 20 }, () => resolver.resolveMx('one.test')));
  assert.ok(results.every((r) => r.ok));
  assert.equal(client.stats.queries, 1);
  assert.equal(cache.stats.coalesced, 19);
});

test('a truncated UDP answer is asked again over TCP', async () => {
  const { resolver, client, dns } = await resolverFor(['SIM']);
  const r = await resolver.resolveMx('big.test');
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(client.stats.tcpQueries, 1);
  assert.deepEqual(dns.queries.filter((q) => q.name === 'big.test').map((q) => q.transport), ['udp', 'tcp']);
});

test('a server that does not answer is skipped for the next one', async () => {
  // 127.0.6.54:9 has nothing listening: the UDP query goes unanswered (or is refused) and times out.
  const { resolver, client } = await resolverFor(['127.0.6.54:9', 'SIM']);
  const r = await resolver.resolveMx('two.test');
  assert.ok(r.ok);
  assert.equal(client.stats.queries, 2);
});

test('nomx uses the domain address; a source route goes via its relay', async () => {
  const dns = await startDnsServer({ host: '127.0.6.53', records });
  cleanups.push(() => dns.close());
  const { port, peers } = await startSmtpPeers([{ host: '127.6.20.3' }, { host: '127.6.20.1' }]);
  cleanups.push(() => Promise.all(peers.map((p) => p.close())).then(() => {}));
  const spool = new Spool();
  cleanups.push(() => spool.remove());
  const make = (mx: 'nomx' | 'mx') => {
    const ch = makeChannel({ port, mx });
    const j = createSmtpJobWith(spool.context(makeConfig(spool.root, { dnsServers: [dns.server], raw: { SMTP_IDLE_TIMEOUT: '1' }, channels: [ch] }), ch), {
      dnsCache: new DnsCache(),
      reachability: new ReachabilityCache(),
    });
    cleanups.push(() => j.close());
    return j;
  };
  const [o1] = await make('nomx').deliver([spool.message('s@sim.test', ['u@plain.test'])]);
  assert.equal(o1!.recipients[0]!.result, 'delivered');
  assert.equal(peers[0]!.transactions.length, 1, 'the A record, not the MX, was used');
  assert.equal(dns.count('plain.test', 'MX'), 0);
  const [o2] = await make('mx').deliver([spool.message('s@sim.test', ['@two.test:user@final.test'])]);
  assert.equal(o2!.recipients[0]!.result, 'delivered');
  // The relay (two.test's MX) got it; smtp-server strips the route itself (RFC 5321 §C allows that).
  assert.deepEqual(peers[1]!.rcptCommands, ['user@final.test']);
  assert.equal(dns.count('final.test'), 0, 'the final domain is the relay\'s business');
});
