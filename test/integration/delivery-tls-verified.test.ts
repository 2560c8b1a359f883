// Verified outbound TLS through the SMTP channel job (issue 17, item 4): the engine resolves the
// recipients' domains on the simulated internet, opens real STARTTLS sessions to peers holding
// certificates of a test CA, and applies the TLS policy before each transaction.
//   musttls: a certificate for the MX name from the CA in TLS_CA_FILE is delivered; one for
//     another name is deferred with the reason and the session's trust word, and a domain with
//     such a host first is delivered at its next MX; without TLS_CA_FILE the CA is not trusted.
//   MTA-STS: policies served by a local HTTPS server (the test CA) in enforce and testing modes.
//   DANE: unbound validates a zone signed at test start (TLSA records with the AD bit), an
//     unsigned zone's records come without it and are ignored.
// And on a started instance: the deferral's reason in the queue's last error and mail.log.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSmtpJobWith, type SmtpChannelJob } from '../../src/channels/smtp.js';
import { DnsCache } from '../../src/dns/cache.js';
import { ReachabilityCache } from '../../src/delivery/reachability.js';
import type { Channel } from '../../src/config/types.js';
import type { RecipientOutcome } from '../../src/delivery/types.js';
import { startDnsServer, startSmtpPeers, type DnsTable, type SimDns, type SmtpPeer } from '../helpers/sim-internet.js';
import { makeTestCa, tlsaAssociation, type TestCa } from '../helpers/test-ca.js';
import { startMtaStsServer, type MtaStsServer } from '../helpers/mta-sts-server.js';
import { startUnbound, type Unbound } from '../helpers/unbound.js';
import { MtaInstance } from '../helpers/running-instance.js';
import { waitFor } from '../helpers/instance.js';
import { mailLog, sendMessages, startMta } from './job-controller-harness.js';
import { makeChannel, makeConfig, Spool } from './delivery-fixtures.js';

const GOOD = '127.17.5.1';
const WRONG = '127.17.5.2';
const POLICY_IP = '127.17.5.80';

const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

let ca: TestCa;
let caFile: string;
let dns: SimDns;
let sts: MtaStsServer;
let port: number;
let good: SmtpPeer;
let wrong: SmtpPeer;
const spool = new Spool();
cleanups.push(() => spool.remove());

const policy = (mode: string, mx: string[]) => `version: STSv1\nmode: ${mode}\n${mx.map((m) => `mx: ${m}\n`).join('')}max_age: 86400\n`;

before(async () => {
  ca = makeTestCa();
  cleanups.push(() => ca.remove());
  caFile = join(spool.root, 'test-ca.pem');
  writeFileSync(caFile, ca.rootPem);
  const cert = (names: string[]) => {
    const c = ca.issue(names);
    return { key: c.key, cert: c.chain };
  };
  const peers = await startSmtpPeers([
    { host: GOOD, tlsCertificate: cert(['mx.good.test', 'mx.enforce.test', 'mx.enforce-mx.test']) },
    { host: WRONG, tlsCertificate: cert(['other.name.test']) },
  ]);
  port = peers.port;
  [good, wrong] = peers.peers as [SmtpPeer, SmtpPeer];
  cleanups.push(() => Promise.all(peers.peers.map((p) => p.close())));

  sts = await startMtaStsServer({
    host: POLICY_IP,
    ca,
    policies: {
      'mta-sts.enforce.test': policy('enforce', ['mx.enforce.test']),
      'mta-sts.enforce-bad.test': policy('enforce', ['*.enforce-bad.test']),
      'mta-sts.enforce-mx.test': policy('enforce', ['mx.elsewhere.test']),
      'mta-sts.testing.test': policy('testing', ['*.testing.test']),
    },
  });
  cleanups.push(() => sts.close());

  const mx = (...hosts: string[]) => ({ mx: hosts.map((exchange, i) => ({ exchange, preference: 10 * (i + 1) })) });
  const records: DnsTable = {
    'mx.good.test': { a: [GOOD] },
    'mx.wrong.test': { a: [WRONG] },
    'good.test': mx('mx.good.test'),
    'wrong.test': mx('mx.wrong.test'),
    'failover.test': mx('mx.wrong.test', 'mx.good.test'),
    'mx.enforce.test': { a: [GOOD] },
    'mx.enforce-bad.test': { a: [WRONG] },
    'mx.enforce-mx.test': { a: [GOOD] },
    'mx.testing.test': { a: [WRONG] },
    'enforce.test': mx('mx.enforce.test'),
    'enforce-bad.test': mx('mx.enforce-bad.test'),
    'enforce-mx.test': mx('mx.enforce-mx.test'),
    'testing.test': mx('mx.testing.test'),
  };
  for (const d of ['enforce', 'enforce-bad', 'enforce-mx', 'testing']) {
    records[`_mta-sts.${d}.test`] = { txt: [`v=STSv1; id=${d.replace('-', '')}1;`] };
    records[`mta-sts.${d}.test`] = { a: [POLICY_IP] };
  }
  dns = await startDnsServer({ host: '127.17.5.53', records });
  cleanups.push(() => dns.close());
});

function job(channel: Partial<Channel>, raw: Record<string, string>, opts: { dnsServer?: string; port?: number } = {}): SmtpChannelJob {
  const ch = makeChannel({ port: opts.port ?? port, mx: 'nonrandommx', ...channel });
  const config = makeConfig(spool.root, { dnsServers: [opts.dnsServer ?? dns.server], raw: { SMTP_IDLE_TIMEOUT: '1', SMTP_GREETING_TIMEOUT: '5', DNS_TIMEOUT: '3', ...raw }, channels: [ch] });
  const j = createSmtpJobWith(spool.context(config, ch), { dnsCache: new DnsCache(), reachability: new ReachabilityCache(), stsPort: sts.port });
  cleanups.push(() => j.close());
  return j;
}

async function deliver(j: SmtpChannelJob, to: string[]): Promise<Record<string, RecipientOutcome>> {
  const [o] = await j.deliver([spool.message('list@sim.test', to)]);
  return Object.fromEntries(o!.recipients.map((r) => [r.address, r]));
}

test('musttls: a certificate for the MX name from the CA in TLS_CA_FILE is delivered (Verified); one for another name is deferred with the reason and its trust word; a domain with such a host first is delivered at its next MX', async () => {
  const must = job({ tlsClient: 'musttls' }, { TLS_CA_FILE: caFile });
  const by = await deliver(must, ['a@good.test', 'b@wrong.test', 'c@failover.test']);

  assert.equal(by['a@good.test']!.result, 'delivered');
  assert.match(by['a@good.test']!.tls ?? '', /^TLSv1\.[23]\/[A-Z0-9_]+\/Verified$/);

  assert.equal(by['b@wrong.test']!.result, 'deferred');
  assert.match(by['b@wrong.test']!.status, /^451 4\.7\.5 TLS is required with a verified certificate \(musttls\), but at mx\.wrong\.test\[127\.17\.5\.2\]:\d+ the certificate is not for mx\.wrong\.test$/);
  assert.match(by['b@wrong.test']!.remoteHost ?? '', /^mx\.wrong\.test\[127\.17\.5\.2\]/);
  assert.match(by['b@wrong.test']!.tls ?? '', /\/Trusted$/, "the session's trust word goes with the deferral");

  assert.equal(by['c@failover.test']!.result, 'delivered', by['c@failover.test']!.status);
  assert.match(by['c@failover.test']!.remoteHost ?? '', /^mx\.good\.test\[127\.17\.5\.1\]/);
  assert.deepEqual(good.deliveredRecipients().sort(), ['a@good.test', 'c@failover.test']);
  assert.equal(wrong.rcptCommands.length, 0, 'nothing was sent to the host with the wrong name');
  assert.ok(wrong.connections.length >= 1, 'its session was opened (and its certificate seen)');

  // Without TLS_CA_FILE the test CA is unknown: the same good host is not trusted.
  const noCa = job({ tlsClient: 'musttls' }, {});
  const by2 = await deliver(noCa, ['d@good.test']);
  assert.equal(by2['d@good.test']!.result, 'deferred');
  assert.match(by2['d@good.test']!.status, /^451 4\.7\.5 TLS is required with a verified certificate \(musttls\), but at mx\.good\.test\[127\.17\.5\.1\]:\d+ the certificate is not trusted \(/);
  assert.ok(!good.rcptCommands.includes('d@good.test'));

  // maytls is opportunistic as before: the host with the wrong name gets the mail.
  const may = job({ tlsClient: 'maytls' }, { TLS_CA_FILE: caFile, MTA_STS: '0' });
  const by3 = await deliver(may, ['e@wrong.test']);
  assert.equal(by3['e@wrong.test']!.result, 'delivered');
  assert.match(by3['e@wrong.test']!.tls ?? '', /\/Trusted$/);
});

test('MTA-STS: enforce delivers to a verified policy MX, defers a wrong certificate and an MX the policy does not name (never connected); testing delivers and reports; policies cached in tls/mta-sts/, TLS-RPT counted', async () => {
  const may = job({ tlsClient: 'maytls' }, { TLS_CA_FILE: caFile, TLSRPT: '1', MTA_STS_TIMEOUT: '5' });
  const goodBefore = good.rcptCommands.length;
  const by = await deliver(may, ['a@enforce.test', 'b@enforce-bad.test', 'c@enforce-mx.test', 'd@testing.test']);

  assert.equal(by['a@enforce.test']!.result, 'delivered', by['a@enforce.test']!.status);
  assert.match(by['a@enforce.test']!.tls ?? '', /\/Verified$/);

  assert.equal(by['b@enforce-bad.test']!.result, 'deferred');
  assert.match(by['b@enforce-bad.test']!.status, /^451 4\.7\.5 MTA-STS policy of enforce-bad\.test \(enforce\): the certificate of mx\.enforce-bad\.test is not for that name: not delivering to mx\.enforce-bad\.test\[127\.17\.5\.2\]/);

  assert.equal(by['c@enforce-mx.test']!.result, 'deferred');
  assert.match(by['c@enforce-mx.test']!.status, /^451 4\.7\.5 MTA-STS policy of enforce-mx\.test \(enforce\): no MX host \(mx\.enforce-mx\.test\) matches mx\.elsewhere\.test/);
  assert.equal(by['c@enforce-mx.test']!.remoteHost, null, 'no host was tried');

  assert.equal(by['d@testing.test']!.result, 'delivered', 'testing: delivered in spite of the wrong name');
  assert.match(by['d@testing.test']!.tls ?? '', /\/Trusted$/);

  assert.deepEqual(good.rcptCommands.slice(goodBefore), ['a@enforce.test']);
  assert.ok(!wrong.rcptCommands.includes('b@enforce-bad.test'));
  assert.ok(wrong.rcptCommands.includes('d@testing.test'));
  assert.deepEqual(sts.requests.filter((r) => r.endsWith('/.well-known/mta-sts.txt')).sort(), ['enforce', 'enforce-bad', 'enforce-mx', 'testing'].map((d) => `mta-sts.${d}.test/.well-known/mta-sts.txt`).sort());
  const cached = JSON.parse(readFileSync(join(spool.root, 'tls', 'mta-sts', 'enforce.test.json'), 'utf8')) as { id: string };
  assert.equal(cached.id, 'enforce1');

  // A second batch uses the cached policies: no new fetch.
  const fetched = sts.requests.length;
  const again = await deliver(may, ['e@enforce.test', 'f@enforce-bad.test']);
  assert.deepEqual([again['e@enforce.test']!.result, again['f@enforce-bad.test']!.result], ['delivered', 'deferred']);
  assert.equal(sts.requests.length, fetched);

  // TLS-RPT: the job's counts are written at its close.
  await may.close();
  const dir = join(spool.root, 'tls', 'tlsrpt');
  assert.ok(existsSync(dir), 'tls/tlsrpt/ written');
  const counted = readdirSync(dir).map((f) => readFileSync(join(dir, f), 'utf8')).join('');
  assert.match(counted, /enforce-bad\.test/);
  assert.match(counted, /certificate-host-mismatch/);
});

test('DANE: TLSA records the validating resolver authenticates decide (a match delivers without any CA, a mismatch defers); an unsigned zone\'s records have no AD bit and are ignored', async () => {
  const daneCa = makeTestCa('DANE-only CA');
  cleanups.push(() => daneCa.remove());
  const cert = daneCa.issue(['mx.dane.test', 'mx.dane-bad.test', 'mx.unsigned.test']);
  const other = daneCa.issue(['unrelated.test']);
  const peers = await startSmtpPeers([{ host: '127.17.5.3', tlsCertificate: { key: cert.key, cert: cert.chain } }]);
  cleanups.push(() => Promise.all(peers.peers.map((p) => p.close())));
  const peer = peers.peers[0]!;
  const tlsa = (pem: string | Buffer) => tlsaAssociation(pem, 1, 1).toString('hex');
  const zone = (name: string, signed: boolean, association: string) => ({
    name,
    signed,
    records: ['@ MX 10 mx', 'mx A 127.17.5.3', `_${peers.port}._tcp.mx TLSA 3 1 1 ${association}`],
  });
  const unbound: Unbound = await startUnbound({
    host: '127.17.5.54',
    zones: [zone('dane.test', true, tlsa(cert.cert)), zone('dane-bad.test', true, tlsa(other.cert)), zone('unsigned.test', false, tlsa(other.cert))],
  });
  cleanups.push(() => unbound.close());

  const dane = job({ tlsClient: 'maytls' }, { DANE: '1', MTA_STS: '0' }, { dnsServer: unbound.server, port: peers.port });
  const by = await deliver(dane, ['a@dane.test', 'b@dane-bad.test', 'c@unsigned.test']);
  assert.equal(by['a@dane.test']!.result, 'delivered', by['a@dane.test']!.status);
  assert.match(by['a@dane.test']!.tls ?? '', /\/Verified$/, 'a DANE match with a signed MX record');
  assert.equal(by['b@dane-bad.test']!.result, 'deferred');
  assert.match(by['b@dane-bad.test']!.status, /^451 4\.7\.5 DANE verification of mx\.dane-bad\.test\[127\.17\.5\.3\]:\d+ failed: /);
  assert.match(by['b@dane-bad.test']!.remoteHost ?? '', /^mx\.dane-bad\.test\[/, 'its own MX name, though the session is shared by address');
  assert.equal(by['c@unsigned.test']!.result, 'delivered', 'no AD bit: the records are ignored');
  assert.match(by['c@unsigned.test']!.tls ?? '', /\/Untrusted$/);
  assert.deepEqual(peer.deliveredRecipients().sort(), ['a@dane.test', 'c@unsigned.test']);

  // DANE=0: the same bad records are not looked up, delivery is opportunistic.
  const off = job({ tlsClient: 'maytls' }, { DANE: '0', MTA_STS: '0' }, { dnsServer: unbound.server, port: peers.port });
  assert.equal((await deliver(off, ['d@dane-bad.test']))['d@dane-bad.test']!.result, 'delivered');
});

test('a started instance with musttls: the good host gets its message (D, tls=…/Verified), the wrong name is deferred with the reason in the queue\'s last error and on its Q line', async () => {
  const mta = await MtaInstance.create({ address: '127.17.5.20', service: 'MIN_PROCS=1\nMAX_PROCS=2' });
  cleanups.push(() => mta.cleanup());
  mta.inst.write(
    'etc/imta.cnf',
    `! outbound mail only over verified TLS
.                    $U%$H@tcp-daemon

tcp_local smtp mx musttlsclient port ${port}
tcp-daemon
`,
  );
  writeFileSync(join(mta.root, 'etc', 'test-ca.pem'), ca.rootPem);
  mta.inst.write('etc/option.dat', `INTERNAL_IP=127.0.0.0/8\nLOCAL_HOST=mta.sim.test\nDNS_SERVERS=${dns.server}\nTLS_CA_FILE=etc/test-ca.pem\nMTA_STS=0\n`);
  await startMta(mta);
  await sendMessages('127.17.5.20', mta.port, [
    { from: 'me@sim.test', to: ['joe@good.test'], subject: 'verified' },
    { from: 'me@sim.test', to: ['ann@wrong.test'], subject: 'wrong name' },
  ]);
  await waitFor(() => mailLog(mta).filter((r) => r.event === 'D' || r.event === 'Q').length >= 2, { timeoutMs: 30_000, what: 'a D and a Q line' });
  const log = mailLog(mta);
  const delivered = log.find((r) => r.event === 'D' && r.recipient === 'joe@good.test');
  assert.match(delivered?.tls ?? '', /^TLSv1\.[23]\/[A-Z0-9_]+\/Verified$/);
  const deferred = log.find((r) => r.event === 'Q' && r.recipient === 'ann@wrong.test');
  const reason = /^451 4\.7\.5 TLS is required with a verified certificate \(musttls\), but at mx\.wrong\.test\[127\.17\.5\.2\]:\d+ the certificate is not for mx\.wrong\.test/;
  assert.match(deferred?.status ?? '', reason);
  assert.match(deferred?.tls ?? '', /\/Trusted$/);
  assert.ok(good.deliveredRecipients().includes('joe@good.test'));
  assert.ok(!wrong.rcptCommands.includes('ann@wrong.test'));

  const qm = await mta.imsimta(['qm', 'directory', '--json']);
  assert.equal(qm.code, 0, qm.stderr);
  const rows = qm.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { last_error: string | null; recipient_status: Array<{ address: string }> });
  assert.equal(rows.length, 1);
  assert.match(rows[0]!.last_error ?? '', reason);
  assert.equal(rows[0]!.recipient_status[0]!.address, 'ann@wrong.test');
});
