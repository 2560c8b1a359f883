// Reading bounces (src/notices/dsn-parse.ts) and turning them into records
// (src/notices/bounce-records.ts): tsubame's own DSNs, a Postfix DSN, a report inside a
// multipart/mixed with a base64 delivery-status part, an RFC 6533 global DSN, qmail's plain-text
// bounce, a vacation reply, a delay notice; the records of a VERP address and of a plain one; the
// file appended and read back with filters, rotated copies and damaged lines; --since forms.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildDsn, type DsnRecipient } from '../../src/notices/dsn.js';
import { parseBounce } from '../../src/notices/dsn-parse.js';
import { appendBounceRecords, bounceRecords, readBounceRecords, summarizeBounces, type BounceRecord } from '../../src/notices/bounce-records.js';
import { parseSince } from '../../src/cli/commands/bounces.js';

const dir = mkdtempSync(join(tmpdir(), 'notices-bounce-parse-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const crlf = (s: string) => Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'utf8');

function tsubameDsn(to: string, recipients: DsnRecipient[], smtputf8 = false): Buffer {
  return buildDsn({
    reportingMta: 'mta.remote.test',
    postmaster: 'postmaster@mta.remote.test',
    to,
    originalId: 'q1',
    envid: null,
    arrival: new Date('2026-12-01T10:00:00Z'),
    recipients,
    original: crlf('From: news@list.example\nTo: members\nSubject: issue 7\n\nhello\n'),
    returnFull: false,
    now: new Date('2026-12-01T10:05:00Z'),
    willRetryUntil: new Date('2026-12-05T10:00:00Z'),
    smtputf8,
    uniqueId: 'u1',
    formatDate: (d) => d.toUTCString(),
  });
}

const POSTFIX_DSN = `Return-Path: <>
Date: Tue,  1 Dec 2026 11:00:02 +0000 (UTC)
From: MAILER-DAEMON@mx.remote.example (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: news+carol=remote.example@bounces.list.example
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="D94A1C0123.1764586802/mx.remote.example"
Message-Id: <20261201110002.6C5E5C0124@mx.remote.example>

This is a MIME-encapsulated message.

--D94A1C0123.1764586802/mx.remote.example
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.remote.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<carol@remote.example>: host inbox.remote.example[192.0.2.25] said: 550 5.1.1
    <carol@remote.example>: Recipient address rejected: User unknown in virtual
    mailbox table (in reply to RCPT TO command)

--D94A1C0123.1764586802/mx.remote.example
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.remote.example
X-Postfix-Queue-ID: D94A1C0123
X-Postfix-Sender: rfc822; news+carol=remote.example@bounces.list.example
Arrival-Date: Tue,  1 Dec 2026 11:00:01 +0000 (UTC)

Final-Recipient: rfc822; carol@remote.example
Original-Recipient: rfc822;carol@remote.example
Action: failed
Status: 5.1.1
Remote-MTA: dns; inbox.remote.example
Diagnostic-Code: smtp; 550 5.1.1 <carol@remote.example>: Recipient address
    rejected: User unknown in virtual mailbox table

--D94A1C0123.1764586802/mx.remote.example
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: news@list.example
Subject: issue 7

--D94A1C0123.1764586802/mx.remote.example--
`;

const status64 = Buffer.from(
  'Reporting-MTA: dns;EX01.corp.example\r\nReceived-From-MTA: dns;gw.corp.example\r\n\r\nFinal-Recipient: rfc822;dave@corp.example\r\nAction: failed\r\nStatus: 5.2.2 (mailbox full)\r\nDiagnostic-Code: smtp;554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException\r\n',
).toString('base64');
const NESTED_REPORT = `From: postmaster@corp.example
To: <news+dave=corp.example@bounces.list.example>
Subject: Undeliverable: issue 7
Content-Type: multipart/mixed; boundary=outer

--outer
Content-Type: multipart/report; report-type=delivery-status; boundary="inner"

--inner
Content-Type: text/plain

Delivery has failed to these recipients or groups: dave@corp.example
--inner
Content-Type: message/delivery-status
Content-Transfer-Encoding: base64

${status64.replace(/(.{76})/g, '$1\n')}
--inner
Content-Type: message/rfc822

From: news@list.example
To: dave@corp.example
Subject: issue 7

a returned message whose own report must not be read:
--inner--
--outer--
`;

const QMAIL_BOUNCE = `From: MAILER-DAEMON@mail.old.example
To: news+erin=old.example@bounces.list.example
Subject: failure notice

Hi. This is the qmail-send program at mail.old.example.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<erin@old.example>:
192.0.2.40 does not like recipient.
Remote host said: 550 5.1.1 <erin@old.example>... User unknown
Giving up on 192.0.2.40.

--- Below this line is a copy of the message.
`;

const VACATION = `From: frank@away.example
To: news+frank=away.example@bounces.list.example
Subject: Out of Office: issue 7
Auto-Submitted: auto-replied
X-Autoreply: yes

I am away until Monday; 550 is my room number.
`;

test("tsubame's own DSN: every recipient block, the reporting MTA, the delay notice told apart", () => {
  const failed = parseBounce(
    tsubameDsn('news+bob=b.example@bounces.list.example', [
      { address: 'bob@b.example', orcpt: 'rfc822;Bob@B.example', action: 'failed', status: '550 5.1.1 <bob@b.example>: user unknown', remoteHost: 'mx.b.example [192.0.2.5]' },
      { address: 'x@b.example', orcpt: null, action: 'delayed', status: '451 4.3.0 try later', remoteHost: null },
    ]),
  );
  assert.equal(failed.kind, 'dsn');
  if (failed.kind !== 'dsn') return;
  assert.equal(failed.reportingMta, 'dns; mta.remote.test');
  assert.equal(failed.recipients.length, 2);
  assert.deepEqual(
    { ...failed.recipients[0], diagnostic: failed.recipients[0]!.diagnostic?.replace(/\s+/g, ' ') },
    { finalRecipient: 'bob@b.example', originalRecipient: 'Bob@B.example', action: 'failed', status: '5.1.1', remoteMta: 'dns; mx.b.example', diagnostic: 'smtp; 550 5.1.1 <bob@b.example>: user unknown' },
  );
  assert.equal(failed.recipients[1]!.action, 'delayed');
  assert.equal(failed.recipients[1]!.status, '4.3.0');

  const delayed = parseBounce(tsubameDsn('news+x=b.example@bounces.list.example', [{ address: 'x@b.example', orcpt: null, action: 'delayed', status: '451 4.3.0 try later', remoteHost: null }]));
  const r = bounceRecords({ recipient: 'news+x=b.example@bounces.list.example', bounce: delayed, delimiters: '+=', time: new Date(), id: 'q' });
  assert.deepEqual(r.records, []);
  assert.match(r.note, /without failures \(delayed\): not recorded/);
});

test('a Postfix DSN (folded fields, X- fields, comments) and its VERP record', () => {
  const bounce = parseBounce(crlf(POSTFIX_DSN));
  assert.equal(bounce.kind, 'dsn', 'a DSN even though it says Auto-Submitted: auto-replied');
  const time = new Date('2026-12-01T11:00:03Z');
  const { records, note } = bounceRecords({ recipient: 'news+carol=remote.example@bounces.list.example', bounce, delimiters: '+=', time, id: 'Q42' });
  assert.deepEqual(records, [
    {
      time: '2026-12-01T11:00:03.000Z',
      list: 'news@bounces.list.example',
      member: 'carol@remote.example',
      action: 'failed',
      status: '5.1.1',
      diagnostic: 'smtp; 550 5.1.1 <carol@remote.example>: Recipient address rejected: User unknown in virtual mailbox table',
      remote_mta: 'dns; inbox.remote.example',
      reporting_mta: 'dns; mx.remote.example',
      verp: true,
      kind: 'dsn',
      id: 'Q42',
    },
  ]);
  assert.equal(note, 'bounce recorded for carol@remote.example');
  // The same DSN with LF line ends (a file fed by hand) reads the same.
  assert.deepEqual(parseBounce(Buffer.from(POSTFIX_DSN)), bounce);
});

test('a report inside a multipart/mixed, its delivery-status in base64; the returned message is not read', () => {
  const bounce = parseBounce(crlf(NESTED_REPORT));
  assert.equal(bounce.kind, 'dsn');
  if (bounce.kind !== 'dsn') return;
  assert.equal(bounce.reportingMta, 'dns;EX01.corp.example');
  assert.deepEqual(bounce.recipients.map((r) => [r.finalRecipient, r.action, r.status]), [['dave@corp.example', 'failed', '5.2.2']]);
});

test('an RFC 6533 global DSN: a UTF-8 recipient', () => {
  const bounce = parseBounce(tsubameDsn('news+x=b.example@bounces.list.example', [{ address: 'ユーザー@例え.jp', orcpt: null, action: 'failed', status: '550 5.1.1 unknown', remoteHost: null }], true));
  assert.equal(bounce.kind, 'dsn');
  if (bounce.kind === 'dsn') assert.equal(bounce.recipients[0]!.finalRecipient, 'ユーザー@例え.jp');
});

test("qmail's plain-text bounce: recorded for the VERP member, with the SMTP reply it quotes", () => {
  const bounce = parseBounce(crlf(QMAIL_BOUNCE));
  assert.deepEqual(bounce, { kind: 'other', subject: 'failure notice', status: '5.1.1', diagnostic: '550 5.1.1 <erin@old.example>... User unknown' });
  const { records } = bounceRecords({ recipient: 'news+erin=old.example@bounces.list.example', bounce, delimiters: '+=', time: new Date(0), id: 'q' });
  assert.deepEqual(records.map((r) => [r.list, r.member, r.action, r.status, r.kind]), [['news@bounces.list.example', 'erin@old.example', 'unknown', '5.1.1', 'other']]);
});

test('a vacation reply is not a bounce', () => {
  const bounce = parseBounce(crlf(VACATION));
  assert.equal(bounce.kind, 'auto-reply');
  const r = bounceRecords({ recipient: 'news+frank=away.example@bounces.list.example', bounce, delimiters: '+=', time: new Date(0), id: 'q' });
  assert.deepEqual(r.records, []);
  assert.match(r.note, /auto-reply/);
});

test('a DSN to a plain address: one record per failed recipient, named by the report', () => {
  const bounce = parseBounce(
    tsubameDsn('news@bounces.list.example', [
      { address: 'a@x.example', orcpt: 'rfc822;A@x.example', action: 'failed', status: '550 5.1.1 unknown', remoteHost: null },
      { address: 'b@x.example', orcpt: null, action: 'failed', status: '552 5.2.2 full', remoteHost: null },
      { address: 'c@x.example', orcpt: null, action: 'delayed', status: '451 4.4.1 no answer', remoteHost: null },
    ]),
  );
  const { records } = bounceRecords({ recipient: 'news@bounces.list.example', bounce, delimiters: '+=', time: new Date(0), id: 'q' });
  assert.deepEqual(records.map((r) => [r.list, r.member, r.status, r.verp]), [
    ['news@bounces.list.example', 'A@x.example', '5.1.1', false],
    ['news@bounces.list.example', 'b@x.example', '5.2.2', false],
  ]);
  // A VERP address whose report names several failures: the member's own block is used.
  const verp = bounceRecords({ recipient: 'news+b=x.example@bounces.list.example', bounce, delimiters: '+=', time: new Date(0), id: 'q' });
  assert.deepEqual(verp.records.map((r) => [r.member, r.status]), [['b@x.example', '5.2.2']]);
});

test('records appended, read back with filters, across rotated copies, damaged lines skipped; the summary per member', async () => {
  const file = join(dir, 'bounces.jsonl');
  const rec = (time: string, list: string, member: string | null, status: string): BounceRecord => ({ time, list, member, action: 'failed', status, diagnostic: `smtp; 550 ${status}`, remote_mta: null, reporting_mta: null, verp: true, kind: 'dsn', id: 'q' });
  writeFileSync(`${file}.1`, `${JSON.stringify(rec('2026-11-20T00:00:00.000Z', 'news@l.example', 'old@x.example', '5.1.1'))}\n`);
  utimesSync(`${file}.1`, new Date('2026-11-21'), new Date('2026-11-21'));
  appendBounceRecords(file, [rec('2026-12-01T00:00:00.000Z', 'news@l.example', 'a@x.example', '5.1.1'), rec('2026-12-01T01:00:00.000Z', 'other@l.example', 'a@x.example', '5.2.2')]);
  appendFileSync(file, '{"not":"a record"}\nnot json at all\n');
  appendBounceRecords(file, [rec('2026-12-02T00:00:00.000Z', 'news@l.example', 'A@X.example', '5.2.2')]);
  appendBounceRecords(file, []);
  const all = await readBounceRecords(file);
  assert.equal(all.skipped, 2);
  assert.deepEqual(all.records.map((r) => r.time.slice(0, 10)), ['2026-11-20', '2026-12-01', '2026-12-01', '2026-12-02']);
  const news = await readBounceRecords(file, { list: 'NEWS@l.example', since: new Date('2026-11-25') });
  assert.deepEqual(news.records.map((r) => r.member), ['a@x.example', 'A@X.example']);
  assert.deepEqual((await readBounceRecords(file, { member: 'a@x.example' })).records.length, 3);
  const summary = summarizeBounces(all.records);
  assert.deepEqual(summary.map((s) => [s.list, s.member, s.bounces, s.last_status]), [
    ['news@l.example', 'a@x.example', 2, '5.2.2'],
    ['news@l.example', 'old@x.example', 1, '5.1.1'],
    ['other@l.example', 'a@x.example', 1, '5.2.2'],
  ]);
  assert.deepEqual(await readBounceRecords(join(dir, 'missing', 'bounces.jsonl')), { records: [], skipped: 0 });
});

test('--since: a date, a time, an ISO 8601 duration or a short age', () => {
  const now = new Date('2026-12-10T12:00:00Z');
  assert.equal(parseSince('2026-12-01', now).toISOString(), '2026-12-01T00:00:00.000Z');
  assert.equal(parseSince('2026-12-01T08:30:00Z', now).toISOString(), '2026-12-01T08:30:00.000Z');
  assert.equal(parseSince('P7D', now).toISOString(), '2026-12-03T12:00:00.000Z');
  assert.equal(parseSince('PT12H', now).toISOString(), '2026-12-10T00:00:00.000Z');
  assert.equal(parseSince('7d', now).toISOString(), '2026-12-03T12:00:00.000Z');
  assert.equal(parseSince('30m', now).toISOString(), '2026-12-10T11:30:00.000Z');
  for (const bad of ['yesterday', '7 weeks', 'P', '12']) assert.throws(() => parseSince(bad, now), /--since takes a date or time/);
});
