// RFC 3464 delivery status notifications, parsed back with mailparser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simpleParser } from 'mailparser';
import { addressField, buildDsn, enhancedStatus, headerSection, utf8AddrXtext, type DsnInput } from '../../src/notices/dsn.js';
import { hostNameOf } from '../../src/delivery/status.js';
import { formatRfc5322Date } from '../../src/common/rfc5322-date.js';

const original = Buffer.from('From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: lunch?\r\nMessage-ID: <m1@example.org>\r\n\r\nHello Bob,\r\nlunch at noon?\r\n');

const input = (over: Partial<DsnInput> = {}): DsnInput => ({
  reportingMta: 'mta.example.com',
  postmaster: 'postmaster@mta.example.com',
  to: 'alice@example.org',
  originalId: 'Q0001',
  envid: 'env+2B42',
  arrival: new Date(Date.UTC(2026, 0, 1, 10)),
  recipients: [{ address: 'bob@example.net', orcpt: 'rfc822;Bob@Example.NET', action: 'failed', status: '550 5.1.1 <bob@example.net>: user unknown', remoteHost: 'mx.example.net [192.0.2.1]' }],
  original,
  returnFull: true,
  now: new Date(Date.UTC(2026, 0, 1, 11)),
  willRetryUntil: null,
  uniqueId: 'U123',
  formatDate: (d) => formatRfc5322Date(d, 0),
  ...over,
});

/** The per-message block and the per-recipient blocks of a message/delivery-status body. */
function statusBlocks(text: string): Array<Record<string, string>> {
  return text
    .trim()
    .split(/\r?\n\r?\n/)
    .map((block) => Object.fromEntries(block.split(/\r?\n/).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()])));
}

test('a failure DSN is multipart/report with a delivery-status part and the whole original', async () => {
  const raw = buildDsn(input());
  const mail = await simpleParser(raw, { keepDeliveryStatus: true });
  assert.match(String(mail.headers.get('content-type') && (mail.headers.get('content-type') as { value: string }).value), /^multipart\/report$/);
  assert.equal((mail.headers.get('content-type') as { params: Record<string, string> }).params['report-type'], 'delivery-status');
  assert.equal(mail.subject, 'Undelivered Mail Returned to Sender');
  assert.equal(mail.headers.get('auto-submitted'), 'auto-replied');
  assert.match(mail.text ?? '', /could NOT be delivered[\s\S]*bob@example\.net.*550 5\.1\.1/);
  assert.match(mail.text ?? '', /"lunch\?"/);
  const parts = mail.attachments.map((a) => a.contentType);
  assert.deepEqual(parts, ['message/delivery-status', 'message/rfc822']);
  const [perMessage, perRecipient] = statusBlocks(mail.attachments[0]!.content.toString());
  assert.equal(perMessage!['reporting-mta'], 'dns; mta.example.com');
  // The envelope holds ENVID as the SMTP server decoded it (ENVID=env+2B2B42 arrives as env+2B42): shown as it is.
  assert.equal(perMessage!['original-envelope-id'], 'env+2B42', 'xtext decoded once, at the SMTP server');
  assert.ok(perMessage!['arrival-date']);
  assert.equal(perRecipient!['final-recipient'], 'rfc822; bob@example.net');
  assert.equal(perRecipient!['original-recipient'], 'rfc822; Bob@Example.NET');
  assert.equal(perRecipient!['action'], 'failed');
  assert.equal(perRecipient!['status'], '5.1.1');
  assert.equal(perRecipient!['remote-mta'], 'dns; mx.example.net');
  assert.equal(perRecipient!['diagnostic-code'], 'smtp; 550 5.1.1 <bob@example.net>: user unknown');
  const returned = await simpleParser(mail.attachments[1]!.content);
  assert.equal(returned.messageId, '<m1@example.org>');
  assert.match(returned.text ?? '', /lunch at noon/);
});

test('a delay warning carries Will-Retry-Until and only the original headers', async () => {
  const raw = buildDsn(input({ returnFull: false, willRetryUntil: new Date(Date.UTC(2026, 0, 5)), recipients: [{ address: 'bob@example.net', orcpt: null, action: 'delayed', status: '451 4.3.0 try later', remoteHost: null }] }));
  const mail = await simpleParser(raw, { keepDeliveryStatus: true });
  assert.match(mail.subject ?? '', /Delayed/);
  assert.match(mail.text ?? '', /still being tried[\s\S]*keep trying until/);
  const types = mail.attachments.map((a) => a.contentType);
  assert.deepEqual(types, ['message/delivery-status', 'text/rfc822-headers']);
  const [, rcpt] = statusBlocks(mail.attachments[0]!.content.toString());
  assert.equal(rcpt!['action'], 'delayed');
  assert.equal(rcpt!['status'], '4.3.0');
  assert.ok(rcpt!['will-retry-until']);
  assert.equal(rcpt!['original-recipient'], undefined);
  const headers = mail.attachments[1]!.content.toString();
  assert.match(headers, /Subject: lunch\?/);
  assert.doesNotMatch(headers, /lunch at noon/);
});

test('status codes: the enhanced code of the reply, else one from its class', () => {
  assert.equal(enhancedStatus('550 5.7.1 relaying denied', 'failed'), '5.7.1');
  assert.equal(enhancedStatus('4.4.7 message expired after 3 days', 'failed'), '4.4.7');
  assert.equal(enhancedStatus('554 no', 'failed'), '5.0.0');
  assert.equal(enhancedStatus('connection refused', 'delayed'), '4.0.0');
  assert.equal(enhancedStatus('250 ok', 'delivered'), '2.0.0');
  assert.equal(headerSection(Buffer.from('A: 1\nB: 2\n\nbody\n')).toString(), 'A: 1\r\nB: 2\r\n');
});

test('ENVID and ORCPT are decoded once (xtext decoded twice: ENVID=id+2B41 showed as idA)', async () => {
  // What the SMTP server stores for `ENVID=id+2B41` and `ORCPT=rfc822;a+2B2B42@example.net`.
  const raw = buildDsn(input({ envid: 'id+41', recipients: [{ address: 'bob@example.net', orcpt: 'rfc822;a+2B42@example.net', action: 'failed', status: '550 5.1.1 no', remoteHost: null }] }));
  const mail = await simpleParser(raw, { keepDeliveryStatus: true });
  const [perMessage, rcpt] = statusBlocks(mail.attachments[0]!.content.toString());
  assert.equal(perMessage!['original-envelope-id'], 'id+41');
  assert.equal(rcpt!['original-recipient'], 'rfc822; a+2B42@example.net');
});

test('Remote-MTA names the host, not host[address]:port (Remote-MTA carried 127.0.0.1[127.0.0.1]:2526)', async () => {
  assert.equal(hostNameOf('mx.example.net[192.0.2.1]:2526'), 'mx.example.net');
  assert.equal(hostNameOf('mx.example.net[192.0.2.1]'), 'mx.example.net');
  assert.equal(hostNameOf('mx.example.net [192.0.2.1]'), 'mx.example.net');
  assert.equal(hostNameOf('127.0.0.1[127.0.0.1]:2526'), '127.0.0.1');
  assert.equal(hostNameOf('[192.0.2.7][192.0.2.7]:2525'), '192.0.2.7');
  assert.equal(hostNameOf('mx6.example.net[2001:db8::25]:2525'), 'mx6.example.net');
  const raw = buildDsn(input({ recipients: [{ address: 'bob@example.net', orcpt: null, action: 'failed', status: '550 5.1.1 no', remoteHost: 'mx.example.net[192.0.2.1]:2526' }] }));
  const mail = await simpleParser(raw, { keepDeliveryStatus: true });
  const [, rcpt] = statusBlocks(mail.attachments[0]!.content.toString());
  assert.equal(rcpt!['remote-mta'], 'dns; mx.example.net');
});

test('a UTF-8 recipient is utf-8 typed in a message/global-delivery-status (Final-Recipient showed ???@…)', async () => {
  const utf8Original = Buffer.from('From: Jörg <jörg@example.org>\r\nTo: 用户@例子.example\r\nSubject: grüße\r\n\r\nHallo\r\n', 'utf8');
  const raw = buildDsn(
    input({
      smtputf8: true,
      to: 'jörg@example.org',
      original: utf8Original,
      recipients: [{ address: '用户@例子.example', orcpt: 'utf-8;用户@例子.example', action: 'failed', status: '550 5.1.1 <用户@例子.example>: user unknown', remoteHost: 'mx.例子.example[192.0.2.1]' }],
    }),
  );
  assert.ok(!raw.toString('utf8').includes('???'), 'no address replaced by question marks');
  const mail = await simpleParser(raw, { keepDeliveryStatus: true });
  assert.deepEqual(mail.attachments.map((a) => a.contentType), ['message/global-delivery-status', 'message/global']);
  const [, rcpt] = statusBlocks(mail.attachments[0]!.content.toString('utf8'));
  assert.equal(rcpt!['final-recipient'], 'utf-8; 用户@例子.example');
  assert.equal(rcpt!['original-recipient'], 'utf-8; 用户@例子.example');
  assert.match(mail.text ?? '', /<用户@例子\.example>: 550 5\.1\.1/);
  assert.match(mail.text ?? '', /"grüße"/);
  const returned = await simpleParser(mail.attachments[1]!.content);
  assert.equal(returned.subject, 'grüße');
});

test('without SMTPUTF8 a UTF-8 address is written in utf-8-addr-xtext (RFC 6533 §3), 7-bit', () => {
  assert.equal(utf8AddrXtext('jörg+x=y@example.org'), 'j\\x{F6}rg\\x{2B}x\\x{3D}y@example.org');
  assert.equal(addressField('bob@example.net', false), 'rfc822; bob@example.net');
  assert.equal(addressField('jörg@example.org', true), 'utf-8; jörg@example.org');
  assert.equal(addressField('jörg@example.org', false), 'utf-8; j\\x{F6}rg@example.org');
});
