// musttls with certificate verification, through the SMTP client's real STARTTLS handshake with
// peers on loopback: one with a certificate from a test CA for the MX host name, one for another
// name, one self-signed, one expired, one without STARTTLS. The CA is trusted through TLS_CA_FILE
// (loadTrustStore), or through the system's CA bundle (an administrator's update-ca-certificates);
// the decision (decideTls) delivers over the session or defers with the reason.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deliverySettings } from '../../src/delivery/settings.js';
import { openSession, type SmtpSession } from '../../src/delivery/smtp-client.js';
import { targetKey, type Target } from '../../src/delivery/mx.js';
import { decideTls } from '../../src/delivery/tls/decision.js';
import { loadTrustStore, type TrustStore } from '../../src/delivery/tls/trust.js';
import { startSmtpPeers, type SmtpPeer } from '../helpers/sim-internet.js';
import { makeTestCa, type TestCa } from '../helpers/test-ca.js';

let ca: TestCa;
let dir: string;
let trust: TrustStore;
let port: number;
let peers: Record<'good' | 'wrongName' | 'selfSigned' | 'expired' | 'plain', SmtpPeer>;
const settings = deliverySettings({ raw: { SMTP_CONNECT_TIMEOUT: '5', SMTP_GREETING_TIMEOUT: '5', SMTP_COMMAND_TIMEOUT: '5' } });

before(async () => {
  ca = makeTestCa();
  dir = mkdtempSync(join(tmpdir(), 'tsubame-musttls-'));
  writeFileSync(join(dir, 'ca.pem'), ca.rootPem);
  trust = loadTrustStore(join(dir, 'ca.pem'));
  const issued = (names: string[], opts = {}) => {
    const c = ca.issue(names, opts);
    return { key: c.key, cert: c.chain };
  };
  const started = await startSmtpPeers([
    { host: '127.17.1.1', tlsCertificate: issued(['mx.good.test']) },
    { host: '127.17.1.2', tlsCertificate: issued(['somewhere.else.test']) },
    { host: '127.17.1.3', starttls: true },
    { host: '127.17.1.4', tlsCertificate: issued(['mx.expired.test'], { expired: true }) },
    { host: '127.17.1.5' },
  ]);
  port = started.port;
  const [good, wrongName, selfSigned, expired, plain] = started.peers as [SmtpPeer, SmtpPeer, SmtpPeer, SmtpPeer, SmtpPeer];
  peers = { good, wrongName, selfSigned, expired, plain };
});

after(async () => {
  await Promise.all(Object.values(peers ?? {}).map((p) => p.close()));
  ca?.remove();
  rmSync(dir, { recursive: true, force: true });
});

const target = (ip: string, host: string): Target => ({ key: targetKey(ip, port), ip, port, host, preference: 0 });

async function open(ip: string, host: string, opts: { trust?: TrustStore; tls?: 'maytls' | 'musttls' } = {}): Promise<SmtpSession> {
  return openSession({ target: target(ip, host), localName: 'tsubame.sim.test', lmtp: false, tls: opts.tls ?? 'musttls', pipelining: true, settings, trust: opts.trust ?? trust });
}

/** What the engine does with a session: decide, then send or not. */
async function deliverOver(session: SmtpSession, mxHost: string, rcpt: string) {
  const d = decideTls({ channelTls: 'musttls', domain: rcpt.split('@')[1]!, mxHost, hostLabel: `${mxHost}[${session.target.ip}]`, sts: null, tlsa: null, tls: session.tlsFacts });
  if (d.action === 'deliver') {
    const sent = await session.send({ from: 's@sim.test', to: [rcpt], body: Buffer.from('Subject: t\r\n\r\nbody\r\n') });
    assert.equal(sent.kind, 'sent');
  }
  session.quit();
  return d;
}

test('a certificate from the CA in TLS_CA_FILE for the MX host name: verified, delivered, logged as Verified', async () => {
  const session = await open('127.17.1.1', 'mx.good.test');
  assert.equal(session.tlsFacts?.chainTrusted, true);
  assert.match(session.tls ?? '', /^TLSv1\.[23]\/\S+\/Verified$/, 'tlsSummary uses the same trust store');
  const d = await deliverOver(session, 'mx.good.test', 'a@good.test');
  assert.deepEqual([d.action, d.policy], ['deliver', 'musttls']);
  assert.match(d.tls ?? '', /^TLSv1\.[23]\/[A-Z0-9_]+\/Verified$/);
  assert.deepEqual(peers.good.deliveredRecipients(), ['a@good.test']);
  assert.equal(peers.good.transactions[0]!.secure, true);
});

test('the same peer without TLS_CA_FILE: Node\'s CAs do not know the test CA, so musttls defers', async () => {
  const before = peers.good.transactions.length;
  const session = await open('127.17.1.1', 'mx.good.test', { trust: loadTrustStore(null) });
  assert.equal(session.tlsFacts?.chainTrusted, false);
  assert.match(session.tlsFacts?.chainError ?? '', /UNABLE_TO_GET_ISSUER_CERT_LOCALLY|UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN/);
  const d = await deliverOver(session, 'mx.good.test', 'b@good.test');
  assert.equal(d.action, 'defer');
  assert.match(d.status ?? '', /^451 4\.7\.5 TLS is required with a verified certificate \(musttls\), but at mx\.good\.test\[127\.17\.1\.1\] the certificate is not trusted/);
  assert.equal(peers.good.transactions.length, before, 'nothing sent');
});

test('the test CA in the system\'s CA bundle (SSL_CERT_FILE, or update-ca-certificates) and no TLS_CA_FILE: verified, delivered', async () => {
  writeFileSync(join(dir, 'system-bundle.pem'), ca.rootPem);
  const before = peers.good.transactions.length;
  const session = await open('127.17.1.1', 'mx.good.test', { trust: loadTrustStore(null, join(dir, 'system-bundle.pem')) });
  assert.equal(session.tlsFacts?.chainTrusted, true);
  const d = await deliverOver(session, 'mx.good.test', 'c@good.test');
  assert.equal(d.action, 'deliver');
  assert.equal(peers.good.transactions.length, before + 1);
});

test('a trusted certificate for another name: Trusted, deferred "not for" the MX host', async () => {
  const session = await open('127.17.1.2', 'mx.wrong.test');
  assert.equal(session.tlsFacts?.chainTrusted, true);
  assert.match(session.tls ?? '', /\/Trusted$/);
  const d = await deliverOver(session, 'mx.wrong.test', 'c@wrong.test');
  assert.equal(d.action, 'defer');
  assert.match(d.status ?? '', /the certificate is not for mx\.wrong\.test$/);
  assert.match(d.tls ?? '', /\/Trusted$/);
  assert.equal(peers.wrongName.transactions.length, 0);
});

test('self-signed and expired certificates are Untrusted under musttls; maytls still delivers (opportunistic, as before)', async () => {
  const self = await open('127.17.1.3', 'mx.self.test');
  const d1 = await deliverOver(self, 'mx.self.test', 'd@self.test');
  assert.equal(d1.action, 'defer');
  assert.match(d1.tls ?? '', /\/Untrusted$/);
  const expired = await open('127.17.1.4', 'mx.expired.test');
  assert.equal(expired.tlsFacts?.chainError, 'CERT_HAS_EXPIRED');
  const d2 = await deliverOver(expired, 'mx.expired.test', 'e@expired.test');
  assert.match(d2.status ?? '', /the certificate is not trusted \(CERT_HAS_EXPIRED\)/);
  assert.equal(peers.selfSigned.transactions.length + peers.expired.transactions.length, 0);

  const may = await open('127.17.1.3', 'mx.self.test', { tls: 'maytls' });
  const d3 = decideTls({ channelTls: 'maytls', domain: 'self.test', mxHost: 'mx.self.test', sts: null, tlsa: null, tls: may.tlsFacts });
  assert.deepEqual([d3.action, d3.trust], ['deliver', 'Untrusted']);
  may.quit();
});

test('musttls to a host without STARTTLS: the client refuses at connect (4.7.4), as before', async () => {
  await assert.rejects(open('127.17.1.5', 'mx.plain.test'), (err: Error & { status?: string }) => /^451 4\.7\.4 TLS is required, but mx\.plain\.test/.test(err.status ?? ''));
  assert.equal(peers.plain.transactions.length, 0);
});
