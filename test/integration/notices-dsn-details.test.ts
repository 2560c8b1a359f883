// The fields of delivery status notifications from a running instance, read back with a real
// parser (mailparser): ENVID and ORCPT decoded once, a UTF-8 recipient typed utf-8 in a
// message/global-delivery-status, Remote-MTA naming the MX host, the expiry text of a notices
// period under a day; and the TLS of outbound sessions in mail.log's D, Q and R records.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { simpleParser, type ParsedMail } from 'mailparser';
import { startDnsServer, startSmtpPeer, type SimDns, type SmtpPeer } from '../helpers/sim-internet.js';
import type { MtaInstance } from '../helpers/running-instance.js';
import { LOCAL_HOST, createJcInstance, startMta, mailLog, mailboxFiles, sendMessages, waitFor } from './job-controller-harness.js';

const ADDRESS = '127.0.7.81';
const PEER = '127.0.7.91';
const MX = 'mx.remote.test';
let mta: MtaInstance;
let peer: SmtpPeer;
let dns: SimDns;

before(async () => {
  dns = await startDnsServer({ host: '127.0.7.53', records: { [MX]: { a: [PEER] } } });
  peer = await startSmtpPeer({
    host: PEER,
    starttls: true,
    rcptReplies: {
      'nobody@remote.test': { code: 550, message: '5.1.1 no such user' },
      '用户@remote.test': { code: 550, message: '5.1.1 no such user' },
      'slow@remote.test': { code: 451, message: '4.2.0 mailbox busy, retry' },
    },
  });
  mta = await createJcInstance({ address: ADDRESS, peer: { host: MX, port: peer.port }, channelKeywords: 'maytlsclient backoff "PT1S" notices PT2S PT4S', users: ['alice', 'bob', 'carol'] });
  mta.inst.write('etc/option.dat', `INTERNAL_IP=127.0.0.0/8\nLOCAL_HOST=${LOCAL_HOST}\nDNS_SERVERS=${dns.server}\n`);
  await startMta(mta);
});
after(async () => {
  await mta?.cleanup();
  await peer?.close();
  await dns?.close();
});

async function notices(user: string, count: number): Promise<ParsedMail[]> {
  const files = await waitFor(() => (mailboxFiles(mta, user).length >= count ? mailboxFiles(mta, user) : null), { timeoutMs: 20_000, what: `${count} message(s) in ${user}'s mailbox` });
  const parsed = await Promise.all(files.map((f) => simpleParser(readFileSync(f), { keepDeliveryStatus: true })));
  return parsed.sort((a, b) => (a.date?.getTime() ?? 0) - (b.date?.getTime() ?? 0));
}

function statusBlocks(mail: ParsedMail, type = 'message/delivery-status'): Array<Record<string, string>> {
  const part = mail.attachments.find((a) => a.contentType === type);
  assert.ok(part, `a ${type} part in ${mail.attachments.map((a) => a.contentType).join(', ')}`);
  return part.content
    .toString('utf8')
    .trim()
    .split(/\r?\n\r?\n/)
    .map((b) => Object.fromEntries(b.split(/\r?\n/).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()])));
}

test('DSN: ENVID and ORCPT decoded once (ENVID=id+2B41 showed as idA), Remote-MTA names the MX host (it showed address and port)', async () => {
  await sendMessages(ADDRESS, mta.port, [
    { from: 'alice@localhost', to: ['nobody@remote.test'], subject: 'dsn-xtext', mailParams: 'ENVID=id+2B41', rcptParams: { 'nobody@remote.test': 'NOTIFY=FAILURE ORCPT=rfc822;no+2B2Bbody@remote.test' } },
  ]);
  const [dsn] = await notices('alice', 1);
  const [perMessage, rcpt] = statusBlocks(dsn!);
  assert.equal(perMessage!['original-envelope-id'], 'id+41');
  assert.equal(rcpt!['original-recipient'], 'rfc822; no+2Bbody@remote.test');
  assert.equal(rcpt!['final-recipient'], 'rfc822; nobody@remote.test');
  assert.equal(rcpt!['remote-mta'], `dns; ${MX}`);
  assert.equal(rcpt!['status'], '5.1.1');
});

test('DSN: a UTF-8 recipient is utf-8 typed in a message/global-delivery-status (it showed as ???@…)', async () => {
  await sendMessages(ADDRESS, mta.port, [{ from: 'bob@localhost', to: ['用户@remote.test'], subject: 'dsn-utf8', mailParams: 'SMTPUTF8' }]);
  const [dsn] = await notices('bob', 1);
  assert.deepEqual(dsn!.attachments.map((a) => a.contentType), ['message/global-delivery-status', 'message/global']);
  const [, rcpt] = statusBlocks(dsn!, 'message/global-delivery-status');
  assert.equal(rcpt!['final-recipient'], 'utf-8; 用户@remote.test');
  assert.equal(rcpt!['action'], 'failed');
  assert.match(dsn!.text ?? '', /<用户@remote\.test>: 550 5\.1\.1/);
  assert.equal(peer.transactions.length, 0, 'refused at RCPT');
  assert.ok(peer.rcptCommands.includes('用户@remote.test'), 'the UTF-8 address reached the peer, which offers SMTPUTF8');
});

test('DSN: the expiry text of a notices period under a day says seconds (it said "after 0 days")', { timeout: 40_000 }, async () => {
  await sendMessages(ADDRESS, mta.port, [{ from: 'carol@localhost', to: ['slow@remote.test'], subject: 'dsn-expiry' }]);
  const all = await notices('carol', 2);
  const returned = all.find((m) => /Undelivered/.test(m.subject ?? ''));
  assert.ok(returned, `a return among ${all.map((m) => m.subject).join(', ')}`);
  const [, rcpt] = statusBlocks(returned);
  assert.equal(rcpt!['status'], '4.4.7');
  assert.match(rcpt!['diagnostic-code'] ?? '', /message expired after \d+ seconds in the queue; last error: 451 4\.2\.0 mailbox busy, retry/);
  assert.doesNotMatch(rcpt!['diagnostic-code'] ?? '', /days/);
});

test('mail.log: D, Q and R records of TLS sessions carry the protocol, cipher and certificate trust (tls=…)', async () => {
  await sendMessages(ADDRESS, mta.port, [{ from: 'alice@localhost', to: ['someone@remote.test'], subject: 'tls-log' }]);
  const d = await waitFor(() => mailLog(mta).find((r) => r.event === 'D' && r.recipient === 'someone@remote.test'), { what: 'the D record' });
  assert.match(d.tls ?? '', /^TLSv1\.[23]\/[A-Z0-9_-]+\/Untrusted$/, 'the self-signed certificate of the peer is not verified');
  assert.match(d.status, new RegExp(`^250 .*\\(${MX.replace(/\./g, '\\.')}\\[${PEER.replace(/\./g, '\\.')}\\]:\\d+\\)$`), 'the status itself is unchanged');
  const line = readFileSync(`${mta.root}/log/mail.log`, 'utf8').split('\n').find((l) => / D \S+ .* someone@remote\.test /.test(l));
  assert.match(line ?? '', / tls=TLSv1\.[23]\/\S+\/Untrusted$/, 'one token at the end of the line');
  const q = mailLog(mta).find((r) => r.event === 'Q' && r.recipient === 'slow@remote.test');
  assert.match(q?.tls ?? '', /^TLSv1\.[23]\//, 'a deferral too');
  const r = mailLog(mta).find((x) => x.event === 'R' && x.recipient === 'nobody@remote.test');
  assert.match(r?.tls ?? '', /^TLSv1\.[23]\//, 'a return too');
  const local = mailLog(mta).find((x) => x.event === 'D' && x.destination === 'l');
  assert.ok(local, 'a local delivery');
  assert.equal(local.tls, undefined, 'no TLS token where there was no TLS');
});
