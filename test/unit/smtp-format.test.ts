// What the SMTP server writes: Received: lines, queue drafts, MAIL parameters, transcript lines, replies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Channel } from '../../src/config/types.js';
import { formatReceived } from '../../src/smtp-server/received-header.js';
import { formatRfc5322Date } from '../../src/common/rfc5322-date.js';
import { mailParamsFrom, planDrafts, type AcceptedRecipient, type MessageFacts } from '../../src/smtp-server/envelope-plan.js';
import { formatTranscriptLine } from '../../src/smtp-server/transcript.js';
import { ENHANCED_CODE_PREFIX, formatReply, hookError, REPLIES, unroutable } from '../../src/smtp-server/replies.js';
import { violationReply } from '../../src/smtp-server/message-receiver.js';
import { sessionIdGenerator } from '../../src/smtp-server/session-id.js';

test('RFC 5322 dates in a given offset', () => {
  const d = new Date(Date.UTC(2025, 10, 25, 1, 2, 3));
  assert.equal(formatRfc5322Date(d, 540), 'Tue, 25 Nov 2025 10:02:03 +0900');
  assert.equal(formatRfc5322Date(d, 0), 'Tue, 25 Nov 2025 01:02:03 +0000');
  assert.equal(formatRfc5322Date(d, -330), 'Mon, 24 Nov 2025 19:32:03 -0530');
});

test('Received: names the client by HELO and IP only, folded, one recipient named', () => {
  const text = formatReceived({
    helo: 'client.example', clientAddress: '127.0.5.2', byHost: 'mx.example.org', protocol: 'ESMTPS', id: 'abc.1',
    recipient: 'joe@example.org', tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' }, date: new Date(0),
  });
  const lines = text.split('\r\n');
  assert.equal(lines[0], 'Received: from client.example ([127.0.5.2])');
  assert.equal(lines[1], '\tby mx.example.org (tsubame) with ESMTPS id abc.1 (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)');
  assert.match(lines[2]!, /^\tfor <joe@example\.org>; Thu, 1 Jan 1970 /);
  assert.equal(lines[3], '');
  assert.ok(lines.every((l) => l.length < 998));
});

test('Received: hostile HELO text cannot inject fields or comments; no recipient with several', () => {
  const text = formatReceived({
    helo: 'evil)\r\nX-Injected: yes (', clientAddress: '::1', byHost: 'mx', protocol: 'SMTP', id: 'i', recipient: null, tls: null, date: new Date(0),
  });
  assert.doesNotMatch(text, /\r\nX-Injected/);
  assert.match(text, /^Received: from evil\?+X-Injected:\?yes\?\? \(\[IPv6:::1\]\)\r\n\tby mx \(tsubame\) with SMTP id i;\r\n\tThu, 1 Jan 1970/);
  assert.equal(text.match(/\r\n/g)?.length, 3);
});

const facts: MessageFacts = {
  from: 's@x', mailParams: { size: 10, body: '8BITMIME' }, sourceChannel: 'tcp_local', clientAddress: '1.2.3.4', clientHelo: 'h', arrival: new Date(0),
};
const rcpt = (channel: string, address: string): AcceptedRecipient => ({ channel, address, original: address.toUpperCase(), orcpt: null, notify: ['FAILURE'] });
const ch = (name: string, extra: Partial<Channel>) => [name, { name, copies: 'multiple', addrsPerFile: null, ...extra } as Channel] as const;

test('one draft per destination channel, recipients in RCPT order', () => {
  const drafts = planDrafts(facts, [rcpt('l', 'a@l'), rcpt('tcp_local', 'b@r'), rcpt('l', 'c@l')], new Map([ch('l', {}), ch('tcp_local', {})]));
  assert.equal(drafts.length, 2);
  assert.equal(drafts[0]!.channel, 'l');
  assert.deepEqual(drafts[0]!.recipients.map((r) => r.address), ['a@l', 'c@l']);
  assert.deepEqual(drafts[0]!.recipients[0], { address: 'a@l', original: 'A@L', orcpt: null, notify: ['FAILURE'], state: 'pending', status: null });
  assert.equal(drafts[1]!.channel, 'tcp_local');
  assert.equal(drafts[1]!.sourceChannel, 'tcp_local');
  assert.deepEqual(drafts[1]!.mailParams, { size: 10, body: '8BITMIME' });
});

test('addrsperfile and single split a channel into several files', () => {
  const many = ['a', 'b', 'c', 'd', 'e'].map((x) => rcpt('tcp_local', `${x}@r`));
  assert.deepEqual(planDrafts(facts, many, new Map([ch('tcp_local', { addrsPerFile: 2 })])).map((d) => d.recipients.length), [2, 2, 1]);
  assert.deepEqual(planDrafts(facts, many, new Map([ch('tcp_local', { copies: 'single' })])).map((d) => d.recipients.length), [1, 1, 1, 1, 1]);
});

test('each draft gets the sender senderFor gives its channel (SRS), files of one channel share it', () => {
  const drafts = planDrafts(facts, [rcpt('l', 'a@l'), rcpt('tcp_local', 'b@r'), rcpt('tcp_local', 'c@r')], new Map([ch('l', {}), ch('tcp_local', { addrsPerFile: 1 })]), (channel) => (channel === 'tcp_local' ? 'SRS0=abcd=TT=x=s@srs.example' : 's@x'));
  assert.deepEqual(drafts.map((d) => [d.channel, d.from]), [['l', 's@x'], ['tcp_local', 'SRS0=abcd=TT=x=s@srs.example'], ['tcp_local', 'SRS0=abcd=TT=x=s@srs.example']]);
});

test('MAIL parameters: SIZE, BODY, RET, ENVID, SMTPUTF8, XVERP', () => {
  assert.deepEqual(mailParamsFrom({ SIZE: '1234', BODY: '8bitmime', SMTPUTF8: true }, { ret: 'HDRS', envid: 'QQ314159' }, true), {
    size: 1234, body: '8BITMIME', ret: 'HDRS', envid: 'QQ314159', smtputf8: true,
  });
  assert.deepEqual(mailParamsFrom(false, undefined, false), {});
  // XVERP: its own delimiters, or bare the VERP_DELIMITERS given (Postfix's default_verp_delimiters).
  assert.deepEqual(mailParamsFrom({ XVERP: '-=' }, undefined, false, '+='), { verp: '-=' });
  assert.deepEqual(mailParamsFrom({ XVERP: true }, undefined, false, '=+'), { verp: '=+' });
  assert.deepEqual(mailParamsFrom({ XVERP: true }, undefined, false), { verp: '+=' });
});

test('transcript lines: session id, formatted arguments, no raw controls', () => {
  const line = formatTranscriptLine(new Date(0), { cid: 'abc' }, 'S:', ['250 ok\r\nsmuggled\x00']);
  assert.equal(line, '1970-01-01T00:00:00.000Z abc S: 250 ok\\nsmuggled\\x00\n');
  assert.equal(formatTranscriptLine(new Date(0), undefined, '%s bytes', [12]), '1970-01-01T00:00:00.000Z - 12 bytes\n');
});

test('replies carry enhanced status codes the connection recognises', () => {
  assert.equal(formatReply(REPLIES.relayDenied), '550 5.7.1 Relaying denied');
  assert.equal(formatReply(REPLIES.storageFull), '452 4.3.1 Insufficient system storage');
  const err = hookError(REPLIES.bareNewline);
  assert.equal(err.responseCode, 550);
  assert.match(err.message, ENHANCED_CODE_PREFIX);
  assert.equal(formatReply(unroutable('bad\r\nthing')), '550 5.1.2 bad thing');
  assert.equal(formatReply(violationReply('too-big', { maxBytes: 100, maxLineLength: 998 })), '552 5.3.4 Message size exceeds fixed maximum message size of 100 octets');
  assert.equal(formatReply(violationReply('line-too-long', { maxBytes: 0, maxLineLength: 998 })), '550 5.5.2 Message contains a line longer than 998 octets');
  assert.equal(formatReply(violationReply('bare-lf', { maxBytes: 0, maxLineLength: 998 })), '550 5.5.2 Message contains bare CR or LF');
});

test('session ids: 16 base-32 characters, distinct within a process and between processes', () => {
  const a = sessionIdGenerator();
  const b = sessionIdGenerator();
  const ids = [a(), a(), a(), b(), b()];
  for (const id of ids) assert.match(id, /^[0-9a-v]{16}$/);
  assert.equal(new Set(ids).size, ids.length);
  assert.notEqual(ids[0]!.slice(0, 8), ids[3]!.slice(0, 8), 'each generator has its own prefix');
});
