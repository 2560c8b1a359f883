// STARTTLS (maytls opportunistic, musttls required with a verified certificate, notls) and LMTP
// per-recipient replies.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSmtpJobWith } from '../../src/channels/smtp.js';
import { DnsCache } from '../../src/dns/cache.js';
import { ReachabilityCache } from '../../src/delivery/reachability.js';
import type { Channel } from '../../src/config/types.js';
import { startDnsServer, startSmtpPeers, type SimDns } from '../helpers/sim-internet.js';
import { makeChannel, makeConfig, resultsByAddress, Spool } from './delivery-fixtures.js';
import { makeTestCa } from '../helpers/test-ca.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

let dns: SimDns;
const spool = new Spool();
cleanups.push(() => spool.remove());

async function setup() {
  if (dns) return;
  dns = await startDnsServer({
    host: '127.0.6.53',
    records: {
      'tls.test': { a: ['127.6.10.1'] },
      'plain.test': { a: ['127.6.10.2'] },
      'plain-backup.test': { mx: [{ exchange: 'plain.test', preference: 10 }, { exchange: 'tls.test', preference: 20 }] },
      'lmtp.test': { a: ['127.6.10.3'] },
    },
  });
  cleanups.push(() => dns.close());
}

function job(channel: Partial<Channel>, port: number, raw: Record<string, string> = {}) {
  const ch = makeChannel({ port, ...channel });
  const config = makeConfig(spool.root, { dnsServers: [dns.server], raw: { SMTP_IDLE_TIMEOUT: '1', SMTP_GREETING_TIMEOUT: '3', ...raw }, channels: [ch] });
  const j = createSmtpJobWith(spool.context(config, ch), { dnsCache: new DnsCache(), reachability: new ReachabilityCache() });
  cleanups.push(() => j.close());
  return j;
}

test('outbound TLS is reported with each outcome (version, cipher, certificate trust) for mail.log', async () => {
  await setup();
  const { port, peers } = await startSmtpPeers([{ host: '127.6.10.1', starttls: true }, { host: '127.6.10.2' }]);
  cleanups.push(() => Promise.all(peers.map((p) => p.close())).then(() => {}));
  const may = job({ tlsClient: 'maytls' }, port);
  const [o] = await may.deliver([spool.message('s@sim.test', ['tls@tls.test', 'clear@plain.test'])]);
  const by = Object.fromEntries(o!.recipients.map((r) => [r.address, r]));
  assert.equal(by['tls@tls.test']!.result, 'delivered');
  // The peer's certificate is self-signed: encrypted, but not verified (Postfix's "Untrusted").
  assert.match(by['tls@tls.test']!.tls ?? '', /^TLSv1\.[23]\/[A-Z0-9_-]+\/Untrusted$/);
  assert.equal(by['clear@plain.test']!.result, 'delivered');
  assert.equal(by['clear@plain.test']!.tls ?? null, null, 'no TLS token for a session in clear');
});

test('STARTTLS: maytls encrypts when offered and goes plain when not; musttls refuses to send in clear; notls never starts TLS', async () => {
  await setup();
  // musttls verifies the certificate (issue 17): the TLS peer's is for its name, from a test CA in TLS_CA_FILE.
  const ca = makeTestCa();
  cleanups.push(() => ca.remove());
  const caFile = join(spool.root, 'test-ca.pem');
  writeFileSync(caFile, ca.rootPem);
  const issued = ca.issue(['tls.test']);
  const { port, peers } = await startSmtpPeers([{ host: '127.6.10.1', tlsCertificate: { key: issued.key, cert: issued.chain } }, { host: '127.6.10.2' }]);
  cleanups.push(() => Promise.all(peers.map((p) => p.close())).then(() => {}));
  const [tlsPeer, plainPeer] = peers as [(typeof peers)[0], (typeof peers)[0]];

  const may = job({ tlsClient: 'maytls' }, port);
  const o1 = await may.deliver([spool.message('s@sim.test', ['a@tls.test', 'b@plain.test'])]);
  assert.deepEqual(resultsByAddress(o1), { 'a@tls.test': 'delivered', 'b@plain.test': 'delivered' });
  assert.equal(tlsPeer.transactions[0]!.secure, true, 'opportunistic TLS used when offered');
  assert.equal(plainPeer.transactions[0]!.secure, false, 'plain when not offered');

  const must = job({ tlsClient: 'musttls' }, port, { TLS_CA_FILE: caFile });
  const before = plainPeer.rcptCommands.length;
  const o2 = await must.deliver([spool.message('s@sim.test', ['c@plain.test', 'd@tls.test'])]);
  const by = Object.fromEntries(o2[0]!.recipients.map((r) => [r.address, r]));
  assert.equal(by['c@plain.test']!.result, 'deferred');
  assert.match(by['c@plain.test']!.status, /^451 4\.7\.4 TLS is required/);
  assert.equal(plainPeer.rcptCommands.length, before, 'nothing sent to the host without STARTTLS');
  assert.equal(plainPeer.transactions.length, 1);
  assert.equal(by['d@tls.test']!.result, 'delivered');
  assert.equal(tlsPeer.transactions.at(-1)!.secure, true);

  // musttls fails over to an MX that offers TLS.
  const o3 = await must.deliver([spool.message('s@sim.test', ['e@plain-backup.test'])]);
  assert.equal(o3[0]!.recipients[0]!.result, 'delivered');
  assert.match(o3[0]!.recipients[0]!.remoteHost ?? '', /^tls\.test\[127\.6\.10\.1\]/);

  const none = job({ tlsClient: 'notls' }, port);
  await none.deliver([spool.message('s@sim.test', ['f@tls.test'])]);
  assert.equal(tlsPeer.transactions.at(-1)!.secure, false, 'notls: STARTTLS not used');
});

test('LMTP: LHLO and one reply per recipient after DATA', async () => {
  await setup();
  const { port, peers } = await startSmtpPeers([
    {
      host: '127.6.10.3',
      lmtp: true,
      lmtpReplies: { 'full@lmtp.test': { code: 452, message: '4.2.2 mailbox full' }, 'gone@lmtp.test': { code: 550, message: '5.1.1 no such mailbox' } },
      rcptReplies: { 'unknown@lmtp.test': { code: 550, message: '5.1.1 unknown at RCPT' } },
    },
  ]);
  cleanups.push(() => Promise.all(peers.map((p) => p.close())).then(() => {}));
  const lmtp = job({ lmtp: true, smtp: false, name: 'lmtp_store' }, port);
  const [o] = await lmtp.deliver([spool.message('s@sim.test', ['ok@lmtp.test', 'full@lmtp.test', 'gone@lmtp.test', 'unknown@lmtp.test', 'ok2@lmtp.test'])]);
  const by = Object.fromEntries(o!.recipients.map((r) => [r.address, r]));
  assert.equal(by['ok@lmtp.test']!.result, 'delivered');
  assert.equal(by['ok2@lmtp.test']!.result, 'delivered');
  assert.equal(by['full@lmtp.test']!.result, 'deferred');
  assert.match(by['full@lmtp.test']!.status, /^452 4\.2\.2 mailbox full \(in reply to end of DATA\)/);
  assert.equal(by['gone@lmtp.test']!.result, 'failed');
  assert.match(by['gone@lmtp.test']!.status, /^550 5\.1\.1 no such mailbox/);
  assert.equal(by['unknown@lmtp.test']!.result, 'failed');
  assert.match(by['unknown@lmtp.test']!.status, /in reply to RCPT TO/);
  assert.deepEqual(peers[0]!.deliveredRecipients().sort(), ['ok2@lmtp.test', 'ok@lmtp.test']);
});
