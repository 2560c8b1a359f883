// DKIM end to end on a started instance (start-msg): keys made with `imsimta dkim keygen`, the
// outbound channel with `dkimsign`, the public keys served by dnsmasq. A message submitted
// locally, one relayed over SMTP and a delivery status notification made by the job controller
// all reach a simulated peer signed, and the bytes the peer received verify with dkimverify and opendkim-testmsg.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSmtpPeer, type SmtpPeer } from '../helpers/sim-internet.js';
import { runCli, waitFor } from '../helpers/instance.js';
import type { MtaInstance } from '../helpers/running-instance.js';
import { dkimpyVerify, opendkimVerify, startKeyDns, type KeyDns } from '../helpers/dkim-verifiers.js';
import { LOCAL_HOST, createJcInstance, sendMessages, startMta } from './job-controller-harness.js';
import { runTool } from './smtp-harness.js';

const ADDRESS = '127.0.18.1';
const PEER = '127.0.18.11';
let mta: MtaInstance;
let peer: SmtpPeer;
let dns: KeyDns;

before(async () => {
  peer = await startSmtpPeer({ host: PEER, rcptReplies: { 'nobody@remote.test': { code: 550, message: '5.1.1 <nobody@remote.test>: no such user' } } });
  mta = await createJcInstance({ address: ADDRESS, peer: { host: PEER, port: peer.port }, channelKeywords: 'dkimsign', users: ['alice'] });
  const records: Record<string, string[]> = {};
  for (const [domain, selector, algorithm] of [['sign.example', 's1', 'ed25519'], [LOCAL_HOST, 'mta', 'rsa']]) {
    const r = await mta.imsimta(['dkim', 'keygen', domain!, selector!, '--algorithm', algorithm!]);
    assert.equal(r.code, 0, r.stderr);
    const m = /^(\S+)\. IN TXT (.*)$/.exec(r.stdout.trim())!;
    records[m[1]!] = [...m[2]!.matchAll(/"([^"]*)"/g)].map((s) => s[1]!);
  }
  dns = await startKeyDns(records);
  await startMta(mta);
});
after(async () => {
  await mta?.cleanup();
  await peer?.close();
  await dns?.stop();
});

test('a locally submitted message leaves signed (ed25519-sha256) and verifies where it arrives', async () => {
  const r = await runCli('imsimta', ['submit', '-f', 'alice@sign.example', 'bob@remote.test', '--root', mta.root], { input: 'From: Alice <alice@sign.example>\nTo: bob@remote.test\nSubject: signed on its way out\n\nhello  there\n' });
  assert.equal(r.code, 0, r.stderr);
  const t = await waitFor(() => peer.transactions.find((x) => x.to.includes('bob@remote.test')), { timeoutMs: 20_000, what: 'the message at the peer' });
  assert.match(t.data.toString('latin1'), /^DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed\/relaxed; d=sign\.example;/);
  const py = dkimpyVerify(dns, t.data);
  assert.ok(py.ok, py.output);
  const od = opendkimVerify(dns, t.data);
  assert.ok(od.ok, od.output);
});

test('a message relayed over SMTP is signed by the SMTP server while it is queued, once, and verifies where it arrives', async () => {
  const r = await runTool('/usr/bin/swaks', ['--server', `${ADDRESS}:${mta.port}`, '--timeout', '10', '--hide-all', '--from', 'alice@sign.example', '--to', 'carol@remote.test', '--header', 'Subject: relayed and signed', '--body', 'relayed  body\n']);
  assert.equal(r.code, 0, r.stderr);
  const t = await waitFor(() => peer.transactions.find((x) => x.to.includes('carol@remote.test')), { timeoutMs: 20_000, what: 'the relayed message at the peer' });
  const text = t.data.toString('latin1');
  assert.match(text, /^DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed\/relaxed; d=sign\.example;/);
  assert.equal(text.match(/^DKIM-Signature:/gm)?.length, 1);
  const py = dkimpyVerify(dns, t.data);
  assert.ok(py.ok, py.output);
  const od = opendkimVerify(dns, t.data);
  assert.ok(od.ok, od.output);
});

test('a failure notice made by the job controller leaves signed for LOCAL_HOST and verifies', async () => {
  await sendMessages(ADDRESS, mta.port, [{ from: 'sender@remote.test', to: ['nobody@remote.test'], subject: 'will bounce', body: 'text' }]);
  const dsn = await waitFor(() => peer.transactions.find((x) => x.from === '' && x.to.includes('sender@remote.test')), { timeoutMs: 30_000, what: 'the notice at the peer' });
  const text = dsn.data.toString('latin1');
  assert.match(text, new RegExp(`^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=${LOCAL_HOST.replace(/\./g, '\\.')};`));
  assert.match(text, /\r\nContent-Type: multipart\/report; report-type=delivery-status;/);
  const py = dkimpyVerify(dns, dsn.data);
  assert.ok(py.ok, py.output);
  const od = opendkimVerify(dns, dsn.data);
  assert.ok(od.ok, od.output);
});
