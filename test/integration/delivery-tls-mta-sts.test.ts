// MTA-STS end to end on loopback: the `_mta-sts` TXT records and the policy hosts' addresses come
// from dnsmasq, the policies from a local HTTPS server whose certificates a test CA issued (given
// to the fetcher through TLS_CA_FILE's trust store), and the MX sessions are real STARTTLS
// handshakes of the SMTP client with peers holding that CA's certificates. Enforce and testing
// modes, the persisted cache across a restart, refresh when the id changes, fetch failures, and
// the TLS-RPT report of the day.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DnsCache } from '../../src/dns/cache.js';
import { createDnsLookup } from '../../src/dns/settings.js';
import { deliverySettings } from '../../src/delivery/settings.js';
import { openSession } from '../../src/delivery/smtp-client.js';
import { targetKey } from '../../src/delivery/mx.js';
import { OutboundTlsPolicy } from '../../src/delivery/tls/policy.js';
import { tlsPolicySettings } from '../../src/delivery/tls/settings.js';
import type { TlsRptReport } from '../../src/delivery/tls/tlsrpt.js';
import { startDnsmasq, type Dnsmasq } from '../helpers/dnsmasq.js';
import { startDnsServer, startSmtpPeers, type SmtpPeer } from '../helpers/sim-internet.js';
import { makeTestCa, type TestCa } from '../helpers/test-ca.js';
import { startMtaStsServer, type MtaStsServer } from '../helpers/mta-sts-server.js';

const POLICY_IP = '127.17.2.80';
let ca: TestCa;
let dir: string;
let dns: Dnsmasq;
let sts: MtaStsServer;
let httpsPort: number;
let requests: string[] = [];
let smtpPort: number;
let good: SmtpPeer;
let wrongName: SmtpPeer;
let policies: Record<string, string> = {
  'mta-sts.enforce.test': 'version: STSv1\r\nmode: enforce\r\nmx: mx.enforce.test\r\nmx: *.enforce.test\r\nmax_age: 604800\r\n',
  'mta-sts.testing.test': 'version: STSv1\nmode: testing\nmx: *.testing.test\nmax_age: 86400\n',
  'mta-sts.badcert.test': 'version: STSv1\nmode: enforce\nmx: mx.badcert.test\nmax_age: 86400\n',
  'mta-sts.invalid.test': 'version: STSv1\nmode: enforce\nmax_age: 86400\n',
  'mta-sts.change.test': 'version: STSv1\nmode: testing\nmx: mx1.change.test\nmax_age: 86400\n',
};
let clock = Date.parse('2026-12-07T12:00:00Z');

before(async () => {
  ca = makeTestCa();
  dir = mkdtempSync(join(tmpdir(), 'tsubame-mta-sts-'));
  writeFileSync(join(dir, 'ca.pem'), ca.rootPem);
  sts = await startMtaStsServer({
    host: POLICY_IP,
    ca,
    policies,
    names: ['mta-sts.redirect.test', 'mta-sts.html.test'],
    // mta-sts.badcert.test gets a certificate for another name.
    strangers: ['mta-sts.badcert.test'],
    respond: (host, url, res) => {
      if (url !== '/.well-known/mta-sts.txt') return false;
      if (host === 'mta-sts.redirect.test') res.writeHead(301, { location: 'https://mta-sts.enforce.test/.well-known/mta-sts.txt' }).end();
      else if (host === 'mta-sts.html.test') res.writeHead(200, { 'content-type': 'text/html' }).end('<html>version: STSv1</html>');
      else return false;
      return true;
    },
  });
  httpsPort = sts.port;
  requests = sts.requests;
  policies = sts.policies;
  const txt = (domain: string, id: string) => `txt-record=_mta-sts.${domain},"v=STSv1; id=${id};"`;
  dns = await startDnsmasq({
    host: '127.17.2.53',
    lines: [
      'local=/test/',
      ...['enforce', 'testing', 'badcert', 'redirect', 'html', 'invalid'].flatMap((d) => [txt(`${d}.test`, `${d}1`), `host-record=mta-sts.${d}.test,${POLICY_IP}`]),
    ],
  });
  const peers = await startSmtpPeers([
    { host: '127.17.2.1', tlsCertificate: (({ key, chain }) => ({ key, cert: chain }))(ca.issue(['mx.enforce.test', 'mx.testing.test'])) },
    { host: '127.17.2.2', tlsCertificate: (({ key, chain }) => ({ key, cert: chain }))(ca.issue(['other.name.test'])) },
  ]);
  smtpPort = peers.port;
  [good, wrongName] = peers.peers as [SmtpPeer, SmtpPeer];
});

after(async () => {
  await Promise.all([good?.close(), wrongName?.close(), dns?.close(), sts?.close()]);
  ca?.remove();
  rmSync(dir, { recursive: true, force: true });
});

function policyFor(server: string, raw: Record<string, string> = {}, stateDir = join(dir, 'tls')): OutboundTlsPolicy {
  const options = { raw: { TLS_CA_FILE: join(dir, 'ca.pem'), DNS_TIMEOUT: '2', DNS_ATTEMPTS: '1', DNS_MAX_TTL: '0', MTA_STS_TIMEOUT: '5', ...raw }, dnsServers: [server] };
  return new OutboundTlsPolicy({ settings: tlsPolicySettings(options, dir), lookup: createDnsLookup(options, new DnsCache()), stateDir, localHost: 'tsubame.sim.test', stsPort: httpsPort, now: () => clock });
}

const settings = deliverySettings({ raw: { SMTP_CONNECT_TIMEOUT: '5', SMTP_GREETING_TIMEOUT: '5', SMTP_COMMAND_TIMEOUT: '5' } });

/** Opens a session to the peer as MX host `mxHost` of `domain`, decides, sends when allowed. */
async function deliver(p: OutboundTlsPolicy, domain: string, ip: string, mxHost: string, rcpt: string) {
  const { policy } = await p.stsPolicy(domain);
  const session = await openSession({ target: { key: targetKey(ip, smtpPort), ip, port: smtpPort, host: mxHost, preference: 0 }, localName: 'tsubame.sim.test', lmtp: false, tls: 'maytls', pipelining: true, settings, trust: p.trust });
  const d = p.decide({ channelTls: 'maytls', domain, mxHost, hostLabel: `${mxHost}[${ip}]`, sts: policy?.policy ?? null, tlsa: null, tls: session.tlsFacts }, ip);
  if (d.action === 'deliver') assert.equal((await session.send({ from: 's@sim.test', to: [rcpt], body: Buffer.from('Subject: t\r\n\r\nx\r\n') })).kind, 'sent');
  session.quit();
  return d;
}

test('enforce: the policy is fetched once over verified HTTPS; a verified MX host gets the mail, one with a certificate for another name does not', async () => {
  const p = policyFor(dns.server, { TLSRPT: '1' });
  const first = await p.stsPolicy('enforce.test');
  assert.equal(first.problem, null);
  assert.deepEqual([first.policy?.policy.mode, first.policy?.id, first.policy?.policy.mx], ['enforce', 'enforce1', ['mx.enforce.test', '*.enforce.test']]);
  assert.deepEqual(requests.filter((r) => r.startsWith('mta-sts.enforce.test')), ['mta-sts.enforce.test/.well-known/mta-sts.txt']);

  const ok = await deliver(p, 'enforce.test', '127.17.2.1', 'mx.enforce.test', 'a@enforce.test');
  assert.deepEqual([ok.action, ok.policy], ['deliver', 'mta-sts']);
  assert.match(ok.tls ?? '', /^TLSv1\.[23]\/\S+\/Verified$/);
  assert.deepEqual(good.deliveredRecipients(), ['a@enforce.test']);

  const bad = await deliver(p, 'enforce.test', '127.17.2.2', 'mx2.enforce.test', 'b@enforce.test');
  assert.equal(bad.action, 'defer');
  assert.equal(bad.status, '451 4.7.5 MTA-STS policy of enforce.test (enforce): the certificate of mx2.enforce.test is not for that name: not delivering to mx2.enforce.test[127.17.2.2]');
  assert.equal(wrongName.transactions.length, 0, 'nothing sent to the host with the wrong certificate');
  assert.equal(requests.filter((r) => r.startsWith('mta-sts.enforce.test')).length, 1, 'later lookups use the cache');

  // An MX host the policy does not list is not tried at all.
  const filtered = p.filterMx('enforce.test', first.policy!.policy, [{ name: 'mx.elsewhere.test' }, { name: 'mx9.enforce.test' }]);
  assert.deepEqual(filtered, { hosts: [{ name: 'mx9.enforce.test' }], refused: null });
  const none = p.filterMx('enforce.test', first.policy!.policy, [{ name: 'mx.elsewhere.test' }]);
  assert.equal(none.refused, '451 4.7.5 MTA-STS policy of enforce.test (enforce): no MX host (mx.elsewhere.test) matches mx.enforce.test, *.enforce.test');

  // TLS-RPT: the day's counts become a report once the day is over.
  const day = new Date(clock).toISOString().slice(0, 10);
  clock += 86400_000;
  await p.close();
  const report = JSON.parse(readFileSync(join(dir, 'tls', 'tlsrpt', day, 'enforce.test.json'), 'utf8')) as TlsRptReport;
  assert.equal(report['date-range']['start-datetime'], `${day}T00:00:00Z`);
  assert.equal(report['organization-name'], 'tsubame.sim.test');
  assert.equal(report.policies.length, 1);
  const [pol] = report.policies;
  assert.deepEqual(pol!.policy['policy-type'], 'sts');
  assert.deepEqual(pol!.policy['mx-host'], ['mx.enforce.test', '*.enforce.test']);
  assert.deepEqual(pol!.summary, { 'total-successful-session-count': 1, 'total-failure-session-count': 2 });
  const details = pol!['failure-details']!.map((f) => [f['result-type'], f['receiving-mx-hostname'], f['failed-session-count']]);
  assert.deepEqual(details.sort(), [['certificate-host-mismatch', 'mx2.enforce.test', 1], ['validation-failure', 'mx.elsewhere.test', 1]]);
});

test('testing: the same failure is delivered and reported, not deferred', async () => {
  const p = policyFor(dns.server);
  const d = await deliver(p, 'testing.test', '127.17.2.2', 'mx2.testing.test', 'c@testing.test');
  assert.deepEqual([d.action, d.status], ['deliver', null]);
  assert.match(d.warning ?? '', /^MTA-STS policy of testing\.test \(testing\): the certificate of mx2\.testing\.test is not for that name$/);
  assert.match(d.tls ?? '', /\/Trusted$/);
  assert.deepEqual(d.reports.map((r) => r.result), ['certificate-host-mismatch']);
  assert.deepEqual(wrongName.deliveredRecipients(), ['c@testing.test']);
  await p.close();
});

test('the cache outlives a restart: with DNS saying nothing, the stored policy still applies until max_age runs out', async () => {
  const file = join(dir, 'tls', 'mta-sts', 'enforce.test.json');
  assert.ok(existsSync(file), 'the policy is stored in the instance');
  const silent = await startDnsServer({ host: '127.17.2.54', records: {} });
  try {
    const before = requests.length;
    const p = policyFor(silent.server);
    const r = await p.stsPolicy('enforce.test');
    assert.equal(r.policy?.policy.mode, 'enforce', 'a stripped TXT record does not remove the policy (RFC 8461 §5.1)');
    assert.equal(requests.length, before, 'no fetch');
    assert.ok(silent.count('_mta-sts.enforce.test', 'TXT') >= 1);
    clock += 8 * 86400_000; // past max_age (a week)
    assert.equal((await policyFor(silent.server).stsPolicy('enforce.test')).policy, null, 'an expired policy with no record is no policy');
  } finally {
    await silent.close();
  }
});

test('fetch failures: a certificate for another name, a redirect, a wrong media type, a bad policy, an unknown CA: no policy, and the reason', async () => {
  const p = policyFor(dns.server);
  const cases: Array<[string, string, RegExp]> = [
    ['badcert.test', 'sts-webpki-invalid', /mta-sts\.badcert\.test.*(altnames|ERR_TLS_CERT_ALTNAME_INVALID)/i],
    ['redirect.test', 'sts-policy-fetch-error', /HTTP 301 \(redirect to https:\/\/mta-sts\.enforce\.test\/\.well-known\/mta-sts\.txt, not followed\)/],
    ['html.test', 'sts-policy-fetch-error', /media type "text\/html", not text\/plain/],
    ['invalid.test', 'sts-policy-invalid', /mode enforce without an mx line/],
  ];
  for (const [domain, kind, reason] of cases) {
    const r = await p.stsPolicy(domain);
    assert.equal(r.policy, null, domain);
    assert.equal(r.problem?.kind, kind, domain);
    assert.match(r.problem?.reason ?? '', reason);
  }
  // A failed fetch is not tried again at once (a dead policy host would cost a timeout per batch).
  const redirects = () => requests.filter((r) => r.startsWith('mta-sts.redirect.test')).length;
  assert.equal(redirects(), 1);
  assert.equal((await p.stsPolicy('redirect.test')).problem?.kind, 'sts-policy-fetch-error', 'the same reason, from memory');
  assert.equal(redirects(), 1);
  clock += 301_000;
  await p.stsPolicy('redirect.test');
  assert.equal(redirects(), 2, 'tried again after 5 minutes');
  // Without TLS_CA_FILE the test CA is unknown: the enforce policy cannot be fetched (a fresh cache).
  const noCa = policyFor(dns.server, { TLS_CA_FILE: '' }, join(dir, 'tls-no-ca'));
  const r = await noCa.stsPolicy('testing.test');
  assert.equal(r.problem?.kind, 'sts-webpki-invalid');
  assert.equal(r.policy, null);
});

test('a new id in the TXT record fetches the policy again; the same id does not', async () => {
  const sim = await startDnsServer({ host: '127.17.2.55', records: { '_mta-sts.change.test': { txt: ['v=STSv1; id=v1'] }, 'mta-sts.change.test': { a: [POLICY_IP] } } });
  try {
    const p = policyFor(sim.server);
    const fetches = () => requests.filter((r) => r.startsWith('mta-sts.change.test')).length;
    assert.deepEqual((await p.stsPolicy('change.test')).policy?.policy.mx, ['mx1.change.test']);
    await p.stsPolicy('change.test');
    assert.equal(fetches(), 1, 'same id: cached');
    policies['mta-sts.change.test'] = 'version: STSv1\nmode: enforce\nmx: mx2.change.test\nmax_age: 3600\n';
    sim.records['_mta-sts.change.test'] = { txt: ['v=STSv1; id=v2'] };
    const r = await p.stsPolicy('change.test');
    assert.equal(fetches(), 2);
    assert.deepEqual([r.policy?.id, r.policy?.policy.mode, r.policy?.policy.mx, r.policy?.expiresAt], ['v2', 'enforce', ['mx2.change.test'], clock + 3600_000]);
  } finally {
    await sim.close();
  }
});
