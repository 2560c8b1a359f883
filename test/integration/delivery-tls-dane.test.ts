// DANE end to end on loopback: unbound validates a zone signed at test start (ldns-signzone) and
// sets the AD bit on its TLSA answers; an unsigned zone's TLSA records come without it (ignored);
// a TLSA record changed after signing is bogus (SERVFAIL: defer). The MX sessions are real
// STARTTLS handshakes of the SMTP client with peers whose certificates no CA in the trust store
// issued: only the TLSA records vouch for them.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { DnsCache } from '../../src/dns/cache.js';
import { DnsClient, parseDnsServers } from '../../src/dns/client.js';
import { createDnsLookup } from '../../src/dns/settings.js';
import { deliverySettings } from '../../src/delivery/settings.js';
import { openSession } from '../../src/delivery/smtp-client.js';
import { targetKey } from '../../src/delivery/mx.js';
import { lookupTlsa } from '../../src/delivery/tls/dane-lookup.js';
import { OutboundTlsPolicy } from '../../src/delivery/tls/policy.js';
import { tlsPolicySettings } from '../../src/delivery/tls/settings.js';
import { startSmtpPeers, type SmtpPeer } from '../helpers/sim-internet.js';
import { makeTestCa, tlsaAssociation, type TestCa } from '../helpers/test-ca.js';
import { startUnbound, type Unbound } from '../helpers/unbound.js';

let ca: TestCa;
let unbound: Unbound;
let smtpPort: number;
let ee: SmtpPeer;
let ta: SmtpPeer;
let plain: SmtpPeer;
const hex = (b: Buffer) => b.toString('hex');

before(async () => {
  // A CA nobody trusts: only DNSSEC vouches for these certificates.
  ca = makeTestCa('DANE-only CA');
  const eeCert = ca.issue(['mx.dane.test']);
  const taCert = ca.issue(['mx-ta.dane.test'], { viaIntermediate: true });
  const unrelated = ca.issue(['unrelated.test']);
  const ee311 = hex(tlsaAssociation(eeCert.cert, 1, 1));
  const other311 = hex(tlsaAssociation(unrelated.cert, 1, 1));
  const peers = await startSmtpPeers([
    { host: '127.17.3.1', tlsCertificate: { key: eeCert.key, cert: eeCert.chain } },
    { host: '127.17.3.2', tlsCertificate: { key: taCert.key, cert: taCert.chain } },
    { host: '127.17.3.4' },
  ]);
  smtpPort = peers.port;
  [ee, ta, plain] = peers.peers as [SmtpPeer, SmtpPeer, SmtpPeer];
  unbound = await startUnbound({
    host: '127.17.3.53',
    zones: [
      {
        name: 'dane.test',
        signed: true,
        records: [
          'mx A 127.17.3.1',
          `_25._tcp.mx TLSA 3 1 1 ${ee311}`,
          'mx-ta A 127.17.3.2',
          `_25._tcp.mx-ta TLSA 2 0 1 ${hex(tlsaAssociation(ca.intermediatePem, 0, 1))}`,
          'mx-bad A 127.17.3.1',
          `_25._tcp.mx-bad TLSA 3 1 1 ${other311}`,
          'mx-bogus A 127.17.3.1',
          `_25._tcp.mx-bogus TLSA 3 0 2 ${hex(tlsaAssociation(eeCert.cert, 0, 2))}`,
          'mx-pkix A 127.17.3.1',
          `_25._tcp.mx-pkix TLSA 1 1 1 ${ee311}`,
          'mx-clear A 127.17.3.4',
          `_25._tcp.mx-clear TLSA 3 1 1 ${ee311}`,
          'mx-none A 127.17.3.1',
        ],
        // The SHA-512 record changed after signing: its signature no longer holds.
        tamper: { find: hex(tlsaAssociation(eeCert.cert, 0, 2)).slice(0, 16), replace: '0000000000000000' },
      },
      { name: 'plain.test', signed: false, records: ['mx A 127.17.3.1', `_25._tcp.mx TLSA 3 1 1 ${other311}`] },
    ],
  });
});

after(async () => {
  await Promise.all([ee?.close(), ta?.close(), plain?.close(), unbound?.close()]);
  ca?.remove();
});

function policy(raw: Record<string, string> = {}): OutboundTlsPolicy {
  const options = { raw: { DANE: '1', MTA_STS: '0', DNS_TIMEOUT: '3', DNS_ATTEMPTS: '1', ...raw }, dnsServers: [unbound.server] };
  return new OutboundTlsPolicy({ settings: tlsPolicySettings(options, '/nonexistent'), lookup: createDnsLookup(options, new DnsCache()), stateDir: '/nonexistent/tls', localHost: 'tsubame.sim.test' });
}

const settings = deliverySettings({ raw: { SMTP_CONNECT_TIMEOUT: '5', SMTP_GREETING_TIMEOUT: '5', SMTP_COMMAND_TIMEOUT: '5' } });

/** TLSA lookup for the MX host (port 25's records), a real session to its address, the decision, the message when allowed. */
async function deliver(p: OutboundTlsPolicy, mxHost: string, ip: string, rcpt: string) {
  const tlsa = await p.tlsa(mxHost, 25);
  const session = await openSession({ target: { key: targetKey(ip, smtpPort), ip, port: smtpPort, host: mxHost, preference: 0 }, localName: 'tsubame.sim.test', lmtp: false, tls: 'maytls', pipelining: true, settings, trust: p.trust });
  const d = p.decide({ channelTls: 'maytls', domain: rcpt.split('@')[1]!, mxHost, hostLabel: `${mxHost}[${ip}]`, sts: null, tlsa, tls: session.tlsFacts });
  if (d.action === 'deliver') assert.equal((await session.send({ from: 's@sim.test', to: [rcpt], body: Buffer.from('Subject: t\r\n\r\nx\r\n') })).kind, 'sent');
  session.quit();
  return { d, tlsa };
}

test('the DNS client asks with DO and AD and reads the AD bit: set for the signed zone, not for the unsigned one nor without DNSSEC', async () => {
  const client = new DnsClient(parseDnsServers([unbound.server]), { timeoutMs: 3000, attempts: 1 });
  try {
    const signed = await client.query('_25._tcp.mx.dane.test', 'TLSA', { dnssec: true });
    assert.equal(signed.rcode, 'NOERROR');
    assert.equal(signed.authenticated, true);
    assert.ok(signed.answers.some((a) => a.type === 'RRSIG'), 'DO: the signatures come along');
    const asBefore = await client.query('_25._tcp.mx.dane.test', 'TLSA');
    assert.equal(asBefore.authenticated, false, 'a query without dnssec is as before: no AD, no RRSIG');
    assert.ok(!asBefore.answers.some((a) => a.type === 'RRSIG'));
    assert.equal((await client.query('_25._tcp.mx.plain.test', 'TLSA', { dnssec: true })).authenticated, false);
  } finally {
    client.close();
  }
});

test('TLSA lookups: authenticated records, unauthenticated ones ignored, none, and a bogus answer for a signed host', async () => {
  const lookup = createDnsLookup({ raw: { DNS_TIMEOUT: '3', DNS_ATTEMPTS: '1' }, dnsServers: [unbound.server] }, new DnsCache());
  const secure = await lookupTlsa(lookup, 'mx.dane.test', 25);
  assert.equal(secure.state, 'secure');
  assert.deepEqual(secure.state === 'secure' && secure.records.map((r) => [r.usage, r.selector, r.matchingType, r.data.length]), [[3, 1, 1, 32]]);
  const unsigned = await lookupTlsa(lookup, 'mx.plain.test', 25);
  assert.deepEqual(unsigned, { state: 'none', reason: 'the TLSA records of _25._tcp.mx.plain.test are not authenticated (no AD bit)' });
  assert.deepEqual(await lookupTlsa(lookup, 'mx-none.dane.test', 25), { state: 'none', reason: '_25._tcp.mx-none.dane.test has no TLSA records' });
  const bogus = await lookupTlsa(lookup, 'mx-bogus.dane.test', 25);
  assert.equal(bogus.state, 'failed');
  assert.match(bogus.state === 'failed' ? bogus.reason : '', /^TLSA lookup for _25\._tcp\.mx-bogus\.dane\.test failed \(SERVFAIL\) and mx-bogus\.dane\.test is in a DNSSEC-signed zone$/);
});

test('DANE-EE and DANE-TA records that match: delivered over certificates no CA vouches for', async () => {
  const p = policy();
  const { d } = await deliver(p, 'mx.dane.test', '127.17.3.1', 'a@dane.test');
  assert.deepEqual([d.action, d.policy], ['deliver', 'dane']);
  assert.match(d.tls ?? '', /^TLSv1\.[23]\/\S+\/Trusted$/, 'Trusted, as Postfix logs DANE with an MX not known to be secure');
  const viaTa = await deliver(p, 'mx-ta.dane.test', '127.17.3.2', 'b@dane.test');
  assert.deepEqual([viaTa.d.action, viaTa.d.policy], ['deliver', 'dane']);
  assert.deepEqual(ee.deliveredRecipients(), ['a@dane.test']);
  assert.deepEqual(ta.deliveredRecipients(), ['b@dane.test']);
});

test('a TLSA record that does not match, a bogus TLSA answer, and a usable record at a host without STARTTLS: deferred, nothing sent', async () => {
  const p = policy();
  const before = ee.transactions.length;
  const bad = await deliver(p, 'mx-bad.dane.test', '127.17.3.1', 'c@dane.test');
  assert.equal(bad.d.action, 'defer');
  assert.match(bad.d.status ?? '', /^451 4\.7\.5 DANE verification of mx-bad\.dane\.test\[127\.17\.3\.1\] failed: no TLSA record matches the certificate chain/);
  const bogus = await deliver(p, 'mx-bogus.dane.test', '127.17.3.1', 'd@dane.test');
  assert.equal(bogus.d.action, 'defer');
  assert.match(bogus.d.status ?? '', /^451 4\.7\.5 TLSA lookup for _25\._tcp\.mx-bogus\.dane\.test failed/);
  assert.equal(ee.transactions.length, before);
  const clear = await deliver(p, 'mx-clear.dane.test', '127.17.3.4', 'e@dane.test');
  assert.equal(clear.d.action, 'defer');
  assert.match(clear.d.status ?? '', /^451 4\.7\.4 TLS is required by the DANE TLSA records of mx-clear\.dane\.test/);
  assert.equal(plain.transactions.length, 0);
});

test('unusable records (PKIX-EE) mean TLS without authentication; records without the AD bit and DANE=0 change nothing', async () => {
  const p = policy();
  const pkix = await deliver(p, 'mx-pkix.dane.test', '127.17.3.1', 'f@dane.test');
  assert.deepEqual([pkix.d.action, pkix.d.policy], ['deliver', 'dane']);
  assert.match(pkix.d.warning ?? '', /all unusable \(1 1 1 /);
  assert.match(pkix.d.tls ?? '', /\/Untrusted$/);
  // plain.test publishes a TLSA record that would not match, but unsigned: opportunistic as before.
  const unsigned = await deliver(p, 'mx.plain.test', '127.17.3.1', 'g@plain.test');
  assert.deepEqual([unsigned.tlsa?.state, unsigned.d.action, unsigned.d.policy], ['none', 'deliver', 'opportunistic']);
  // DANE off: not even looked up; the mismatching record of mx-bad is not consulted.
  const off = await deliver(policy({ DANE: '0' }), 'mx-bad.dane.test', '127.17.3.1', 'h@dane.test');
  assert.deepEqual([off.tlsa, off.d.action], [null, 'deliver']);
  assert.deepEqual(ee.deliveredRecipients().slice(-3), ['f@dane.test', 'g@plain.test', 'h@dane.test']);
});
