// Delivery status notifications end to end: a 550 from the peer returns an RFC 3464 report to
// the sender's local mailbox (parsed with mailparser), with ENVID/ORCPT/RET honoured; NOTIFY=NEVER
// and the null sender get none; delay warnings at each notices age and the return at the last;
// NOTIFY=SUCCESS for a local delivery; `qm return`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { simpleParser, type ParsedMail } from 'mailparser';
import { startSmtpPeer, type PeerOptions, type SmtpPeer } from '../helpers/sim-internet.js';
import type { MtaInstance } from '../helpers/running-instance.js';
import { LOCAL_HOST, createJcInstance, startMta, mailLog, mailboxFiles, queueFiles, sendMessages, waitFor } from './job-controller-harness.js';

const ADDRESS = '127.0.7.41';
const PEER = '127.0.7.51';
let mta: MtaInstance;
let peer: SmtpPeer;
const peerOpts: PeerOptions & { rcptReplies: NonNullable<PeerOptions['rcptReplies']> } = {
  host: PEER,
  rcptReplies: {
    'nobody@remote.test': { code: 550, message: '5.1.1 <nobody@remote.test>: no such user' },
    'quiet@remote.test': { code: 550, message: '5.1.1 no such user' },
    'void@remote.test': { code: 550, message: '5.1.1 no such user' },
    'slow@remote.test': { code: 451, message: '4.4.1 no answer from the next hop' },
  },
};

before(async () => {
  peer = await startSmtpPeer(peerOpts);
  mta = await createJcInstance({ address: ADDRESS, peer: { host: PEER, port: peer.port }, channelKeywords: 'backoff "PT1S" notices PT3S PT6S', users: ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'] });
  await startMta(mta);
});
after(async () => {
  await mta?.cleanup();
  await peer?.close();
});

async function reports(user: string, count: number): Promise<ParsedMail[]> {
  const files = await waitFor(() => (mailboxFiles(mta, user).length >= count ? mailboxFiles(mta, user) : null), { timeoutMs: 20_000, what: `${count} message(s) in ${user}'s mailbox` });
  const parsed = await Promise.all(files.map((f) => simpleParser(readFileSync(f), { keepDeliveryStatus: true })));
  return parsed.sort((a, b) => (a.date?.getTime() ?? 0) - (b.date?.getTime() ?? 0));
}

function statusFields(mail: ParsedMail): Array<Record<string, string>> {
  const part = mail.attachments.find((a) => a.contentType === 'message/delivery-status');
  assert.ok(part, 'a message/delivery-status part');
  return part.content
    .toString()
    .trim()
    .split(/\r?\n\r?\n/)
    .map((b) => Object.fromEntries(b.split(/\r?\n/).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()])));
}

test('550 from the peer: an RFC 3464 failure report to the sender, with the whole original', async () => {
  await sendMessages(ADDRESS, mta.port, [
    { from: 'alice@localhost', to: ['nobody@remote.test'], subject: 'dsn-fail-1', body: 'the original text', mailParams: 'ENVID=alice+2Dmsg+2D1', rcptParams: { 'nobody@remote.test': 'NOTIFY=FAILURE ORCPT=rfc822;Nobody@Remote.Test' } },
  ]);
  const [dsn] = await reports('alice', 1);
  const raw = readFileSync(mailboxFiles(mta, 'alice')[0]!, 'latin1');
  assert.match(raw, /^Return-Path: <>\r?\n/, 'sent from the null sender');
  const ct = dsn!.headers.get('content-type') as { value: string; params: Record<string, string> };
  assert.equal(ct.value, 'multipart/report');
  assert.equal(ct.params['report-type'], 'delivery-status');
  assert.equal(dsn!.from?.value[0]?.address, `postmaster@${LOCAL_HOST}`);
  assert.match(dsn!.text ?? '', /nobody@remote\.test.*550/);
  const [perMessage, rcpt] = statusFields(dsn!);
  assert.equal(perMessage!['reporting-mta'], `dns; ${LOCAL_HOST}`);
  assert.equal(perMessage!['original-envelope-id'], 'alice-msg-1');
  assert.equal(rcpt!['final-recipient'], 'rfc822; nobody@remote.test');
  assert.equal(rcpt!['original-recipient'], 'rfc822; Nobody@Remote.Test');
  assert.equal(rcpt!['action'], 'failed');
  assert.equal(rcpt!['status'], '5.1.1');
  assert.match(rcpt!['diagnostic-code'] ?? '', /^smtp; 550 5\.1\.1/);
  assert.match(rcpt!['remote-mta'] ?? '', /^dns; 127\.0\.7\.51/);
  const original = dsn!.attachments.find((a) => a.contentType === 'message/rfc822');
  assert.ok(original, 'the original message is returned whole');
  const inner = await simpleParser(original.content);
  assert.equal(inner.subject, 'dsn-fail-1');
  assert.match(inner.text ?? '', /the original text/);
  const r = mailLog(mta).find((x) => x.event === 'R' && x.recipient === 'nobody@remote.test');
  assert.ok(r, 'an R record in mail.log');
  await waitFor(() => queueFiles(mta).length === 0, { what: 'the queue to empty' });
});

test('RET=HDRS returns the headers only', async () => {
  await sendMessages(ADDRESS, mta.port, [{ from: 'bob@localhost', to: ['nobody@remote.test'], subject: 'dsn-hdrs', body: 'secret body', mailParams: 'RET=HDRS' }]);
  const [dsn] = await reports('bob', 1);
  assert.deepEqual(dsn!.attachments.map((a) => a.contentType), ['message/delivery-status', 'text/rfc822-headers']);
  const headers = dsn!.attachments[1]!.content.toString();
  assert.match(headers, /Subject: dsn-hdrs/);
  assert.doesNotMatch(headers, /secret body/);
});

test('NOTIFY=NEVER and the null sender get no notice; the failure is still logged', async () => {
  await sendMessages(ADDRESS, mta.port, [
    { from: 'carol@localhost', to: ['quiet@remote.test'], subject: 'dsn-never', rcptParams: { 'quiet@remote.test': 'NOTIFY=NEVER' } },
    { from: '', to: ['void@remote.test'], subject: 'dsn-null' },
  ]);
  await waitFor(() => ['quiet@remote.test', 'void@remote.test'].every((a) => mailLog(mta).some((r) => r.event === 'R' && r.recipient === a)), { what: 'both failures logged' });
  await waitFor(() => queueFiles(mta).length === 0, { what: 'the queue to empty' });
  assert.equal(mailboxFiles(mta, 'carol').length, 0);
  // Notices are queued from <> with this status in mail.log: only the two of the tests before exist.
  assert.equal(mailLog(mta).filter((r) => r.event === 'E' && r.from === '' && r.status.startsWith('delivery status notification')).length, 2);
});

test('delay warning at the first notices age, return at the last', { timeout: 40_000 }, async () => {
  await sendMessages(ADDRESS, mta.port, [{ from: 'dave@localhost', to: ['slow@remote.test'], subject: 'dsn-slow' }]);
  const [warning, returned] = await reports('dave', 2);
  const w = statusFields(warning!)[1]!;
  assert.equal(w['action'], 'delayed');
  assert.equal(w['status'], '4.4.1');
  assert.ok(w['will-retry-until'], 'Will-Retry-Until on a warning');
  assert.match(warning!.subject ?? '', /Delayed/);
  assert.deepEqual(warning!.attachments.map((a) => a.contentType), ['message/delivery-status', 'text/rfc822-headers']);
  const f = statusFields(returned!)[1]!;
  assert.equal(f['action'], 'failed');
  assert.equal(f['status'], '4.4.7');
  assert.match(f['diagnostic-code'] ?? '', /expired.*451 4\.4\.1/);
  await waitFor(() => queueFiles(mta).length === 0, { what: 'the returned message to leave the queue' });
  assert.equal(mailboxFiles(mta, 'dave').length, 2, 'one warning, one return');
});

test('NOTIFY=SUCCESS on a local delivery gives a delivered report', async () => {
  await sendMessages(ADDRESS, mta.port, [{ from: 'erin@localhost', to: ['alice@localhost'], subject: 'dsn-success', rcptParams: { 'alice@localhost': 'NOTIFY=SUCCESS' } }]);
  const [dsn] = await reports('erin', 1);
  const r = statusFields(dsn!)[1]!;
  assert.equal(r['action'], 'delivered');
  assert.equal(r['status'], '2.0.0');
  assert.match(dsn!.subject ?? '', /Successful/);
});

test('qm return: the postmaster bounces a deferred message now', async () => {
  await sendMessages(ADDRESS, mta.port, [{ from: 'frank@localhost', to: ['slow@remote.test'], subject: 'dsn-qm-return' }]);
  const file = await waitFor(() => queueFiles(mta, 'tcp_remote').find((p) => basename(p).startsWith('ZY')), { timeoutMs: 10_000, what: 'the first deferral' });
  const id = basename(file).slice(2).replace(/\.00$/, '');
  const r = await mta.imsimta(['qm', 'return', id]);
  assert.equal(r.code, 0, r.stderr);
  const all = await reports('frank', 1);
  const failed = all.map(statusFields).find((f) => f[1]!['action'] === 'failed');
  assert.ok(failed, 'a failure report');
  assert.match(failed[1]!['diagnostic-code'] ?? '', /returned by the postmaster/);
  await waitFor(() => queueFiles(mta, 'tcp_remote').length === 0, { what: 'the returned message to leave the queue' });
});
