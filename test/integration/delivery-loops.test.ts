// Mail loops caught at delivery, through a running instance: a queued message with more Received:
// lines than MAX_RECEIVED_LINES is returned with 5.4.6 by the local and the SMTP channels (queued by
// `imsimta submit`, which does not count hops), and a message that comes back to a local
// recipient it was delivered to (a Delivered-To: line) is returned, not delivered again; also
// Maildir files are written with LF line ends.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { simpleParser, type ParsedMail } from 'mailparser';
import { startSmtpPeer, type SmtpPeer } from '../helpers/sim-internet.js';
import type { MtaInstance } from '../helpers/running-instance.js';
import { runCli } from '../helpers/instance.js';
import { LOCAL_HOST, createJcInstance, startMta, mailLog, mailboxFiles, queueFiles, sendMessages, waitFor } from './job-controller-harness.js';

const ADDRESS = '127.0.7.61';
const PEER = '127.0.7.71';
const HOPS = 5;
let mta: MtaInstance;
let peer: SmtpPeer;

before(async () => {
  peer = await startSmtpPeer({ host: PEER });
  mta = await createJcInstance({ address: ADDRESS, peer: { host: PEER, port: peer.port }, users: ['alice', 'bob', 'carol', 'dave', 'erin'] });
  mta.inst.write('etc/option.dat', `INTERNAL_IP=127.0.0.0/8\nLOCAL_HOST=${LOCAL_HOST}\nMAX_RECEIVED_LINES=${HOPS}\n`);
  mta.inst.write('etc/aliases', 'team: bob, carol\nbobby: bob\n');
  await startMta(mta);
});
after(async () => {
  await mta?.cleanup();
  await peer?.close();
});

async function notices(user: string, count: number): Promise<ParsedMail[]> {
  const files = await waitFor(() => (mailboxFiles(mta, user).length >= count ? mailboxFiles(mta, user) : null), { timeoutMs: 20_000, what: `${count} message(s) in ${user}'s mailbox` });
  return Promise.all(files.map((f) => simpleParser(readFileSync(f), { keepDeliveryStatus: true })));
}

function statusOf(mail: ParsedMail): Array<Record<string, string>> {
  const part = mail.attachments.find((a) => a.contentType === 'message/delivery-status');
  assert.ok(part, 'a message/delivery-status part');
  return part.content
    .toString()
    .trim()
    .split(/\r?\n\r?\n/)
    .slice(1)
    .map((b) => Object.fromEntries(b.split(/\r?\n/).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()])));
}

const received = (n: number) => Array.from({ length: n }, (_, i) => `Received: from hop${i}.example by hop${i + 1}.example; Mon, 7 Dec 2026 10:00:0${i % 10} +0000\n`).join('');

test('mail loops: a queued message with more Received: lines than MAX_RECEIVED_LINES is returned (5.4.6), not delivered again', async () => {
  // submit adds its own Received: line: HOPS - 1 given is at the limit, HOPS given is one over.
  const atLimit = await runSubmit(HOPS - 1, 'hops-at-limit');
  assert.equal(atLimit, 0);
  await waitFor(() => mailboxFiles(mta, 'dave').length === 1 && peer.transactions.length === 1, { timeoutMs: 20_000, what: 'the message at the limit delivered both ways' });

  const over = await runSubmit(HOPS, 'hops-over');
  assert.equal(over, 0);
  const dsns = await notices('alice', 2);
  const rows = dsns.flatMap(statusOf);
  assert.deepEqual(rows.map((r) => r['final-recipient']).sort(), ['rfc822; dave@localhost', 'rfc822; far@remote.test']);
  for (const r of rows) {
    assert.equal(r['status'], '5.4.6');
    assert.match(r['diagnostic-code'] ?? '', /too many hops: 6 Received: header lines, more than 5/);
  }
  await waitFor(() => queueFiles(mta).length === 0, { what: 'the queue to empty' });
  assert.equal(mailboxFiles(mta, 'dave').length, 1, 'dave did not get the looping message');
  assert.equal(peer.transactions.length, 1, 'the next hop did not get it either');
  assert.ok(mailLog(mta).some((r) => r.event === 'R' && r.recipient === 'far@remote.test' && /5\.4\.6/.test(r.status)));
});

/** `imsimta submit` of a message with `hops` Received: lines, from alice to a local and a remote recipient. */
async function runSubmit(hops: number, subject: string): Promise<number | null> {
  const r = await runCli('imsimta', ['submit', '--root', mta.root, '-f', 'alice@localhost', '-i', 'dave@localhost', 'far@remote.test'], {
    input: `${received(hops)}From: alice@localhost\nSubject: ${subject}\n\nlooping?\n`,
    timeoutMs: 30_000,
  });
  return r.code;
}

test('a message coming back to a local recipient it was delivered to (Delivered-To:) is returned with 5.4.6, not delivered again', async () => {
  const raw = (deliveredTo: string, to: string, subject: string) => `Delivered-To: ${deliveredTo}\nFrom: <erin@localhost>\nTo: <${to}>\nSubject: ${subject}\n\nback again\n`;
  await sendMessages(ADDRESS, mta.port, [
    { from: 'erin@localhost', to: ['bob@localhost'], subject: 'loop-direct', raw: raw('Bob@LocalHost', 'bob@localhost', 'loop-direct') },
    // The alias leads to bob, who had it under another of this host's names.
    { from: 'erin@localhost', to: ['bobby@localhost'], subject: 'loop-alias', raw: raw(`bob@${LOCAL_HOST}`, 'bobby@localhost', 'loop-alias') },
    { from: 'erin@localhost', to: ['team@localhost'], subject: 'loop-list', raw: raw(`bob@${LOCAL_HOST}`, 'team@localhost', 'loop-list') },
  ]);
  const dsns = await notices('erin', 2);
  const rows = dsns.flatMap(statusOf);
  const by = Object.fromEntries(rows.map((r) => [r['final-recipient'], r]));
  assert.equal(by['rfc822; bob@localhost']?.['status'], '5.4.6', JSON.stringify(rows));
  assert.match(by['rfc822; bob@localhost']?.['diagnostic-code'] ?? '', /mail forwarding loop for <bob@localhost>/);
  assert.equal(by['rfc822; bobby@localhost']?.['status'], '5.4.6', 'through an alias too');
  assert.match(by['rfc822; bobby@localhost']?.['diagnostic-code'] ?? '', /mail forwarding loop for <bob@localhost> \(via <bobby@localhost>\)/);
  await waitFor(() => mailboxFiles(mta, 'carol').length === 1, { what: 'the list copy for carol' });
  const list = await waitFor(() => mailLog(mta).find((r) => r.event === 'D' && r.recipient === 'team@localhost'), { what: 'the list delivered' });
  assert.match(list.status, /delivered to carol.*already delivered to bob \(mail forwarding loop\)/);
  assert.equal(mailboxFiles(mta, 'bob').length, 0, 'bob never got the message again');
  assert.equal(rows.length, 2, 'no notice for the list, which reached carol');
});

test('Maildir files have LF line ends, as Postfix local and Dovecot write them; the message is otherwise as sent', async () => {
  const body = 'first line\n.a dotted line\ntabs\tand  spaces  \n\nlast line';
  await sendMessages(ADDRESS, mta.port, [{ from: 'alice@localhost', to: ['carol@localhost'], subject: 'lf-endings', body }]);
  const file = await waitFor(
    () => mailboxFiles(mta, 'carol').map((f) => readFileSync(f, 'latin1')).find((t) => t.includes('Subject: lf-endings')),
    { what: 'the message in carol\'s mailbox' },
  );
  assert.ok(!file.includes('\r'), 'no CR left');
  assert.match(file, /^Return-Path: <alice@localhost>\nDelivered-To: carol@localhost\nReceived: from client\.test /);
  assert.ok(file.endsWith(`Subject: lf-endings\nMessage-ID: <lf-endings@client.test>\n\n${body}\n`), JSON.stringify(file.slice(-200)));
});
