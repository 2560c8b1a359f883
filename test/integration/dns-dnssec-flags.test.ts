// The DNS client's DNSSEC question (for TLSA): the EDNS0 DO bit and the AD bit are set only when
// asked for, over UDP and over TCP after a truncated answer; other questions go out as before.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { DnsClient, parseDnsServers } from '../../src/dns/client.js';
import { startDnsServer } from '../helpers/sim-internet.js';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('DO and AD only on DNSSEC questions, over UDP and TCP; the answer says whether it was authenticated', async () => {
  const dns = await startDnsServer({ host: '127.17.4.53', records: { 'a.test': { a: ['192.0.2.1'] }, 'big.test': { a: ['192.0.2.2'], behaviour: 'truncate' } } });
  cleanups.push(() => dns.close());
  const client = new DnsClient(parseDnsServers([dns.server]), { timeoutMs: 2000, attempts: 1 });
  cleanups.push(() => client.close());

  const plain = await client.query('a.test', 'A');
  assert.equal(plain.authenticated, false);
  assert.deepEqual(dns.queries.map((q) => [q.transport, q.dnssecOk, q.adBit]), [['udp', false, false]]);

  await client.query('a.test', 'A', { dnssec: true });
  assert.deepEqual(dns.queries.at(-1), { name: 'a.test', type: 'A', transport: 'udp', dnssecOk: true, adBit: true });

  await client.query('big.test', 'A', { dnssec: true });
  assert.deepEqual(dns.queries.slice(-2).map((q) => [q.transport, q.dnssecOk, q.adBit]), [['udp', true, true], ['tcp', true, true]], 'the TCP retry asks the same');
  await client.query('big.test', 'A');
  assert.deepEqual(dns.queries.slice(-2).map((q) => [q.transport, q.dnssecOk, q.adBit]), [['udp', false, false], ['tcp', false, false]]);
});
