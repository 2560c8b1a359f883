// The pure parts of the DNS blocklist check: query names (IPv4, IPv6 nibbles, mapped IPv4), what
// counts as a listing and its text, who is checked (INTERNAL_IP exempt), and the replies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Answer } from 'dns-packet';
import { blocklistQueryName, listingCode, listingText } from '../../src/policy/blocklist.js';
import { blocklistApplies, blocklistDecision } from '../../src/policy/blocklist-decision.js';
import { parseCidr } from '../../src/common/cidr.js';

test('query names: reversed octets, 32 reversed nibbles for IPv6, mapped IPv4 as IPv4, nothing for a non-address', () => {
  assert.equal(blocklistQueryName('192.0.2.99', 'zen.example'), '99.2.0.192.zen.example');
  assert.equal(blocklistQueryName('::ffff:192.0.2.99', 'zen.example'), '99.2.0.192.zen.example');
  assert.equal(
    blocklistQueryName('2001:db8:1::ab9:C0A8:102', 'bl.example'),
    '2.0.1.0.8.a.0.c.9.b.a.0.0.0.0.0.0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.example',
  );
  assert.equal(blocklistQueryName('::1', 'b.example'), `1.${'0.'.repeat(31)}b.example`);
  assert.equal(blocklistQueryName('not-an-ip', 'b.example'), null);
});

const a = (data: string): Answer => ({ type: 'A', name: 'x', ttl: 60, data });
const txt = (...parts: string[]): Answer => ({ type: 'TXT', name: 'x', ttl: 60, data: parts.map((p) => Buffer.from(p, 'latin1')) });

test('a listing is an A record in 127/8 other than the lists\' 127.255.255.x error answers; its text is one clean line', () => {
  assert.equal(listingCode([a('127.0.0.2')]), '127.0.0.2');
  assert.equal(listingCode([a('127.255.255.254')]), null, 'Spamhaus: query through a public resolver');
  assert.equal(listingCode([a('127.255.255.254'), a('127.0.0.11')]), '127.0.0.11');
  assert.equal(listingCode([a('10.0.0.2')]), null, 'not a listing answer');
  assert.equal(listingText([txt('Listed: ', 'see http://x')]), 'Listed: see http://x', 'strings of one record are joined');
  assert.equal(listingText([txt('evil\r\n250 OK\x00')]), 'evil??250 OK?', 'no line breaks reach the reply');
  assert.equal(listingText([txt('y'.repeat(500))])!.length, 203);
  assert.equal(listingText([]), null);
});

test('who is checked: ENABLE_RBL with zones, clients outside INTERNAL_IP only', () => {
  const internal = ['127.0.0.0/8', '10.0.0.0/8', '::1'].map((c) => parseCidr(c)!);
  const rbl = { enabled: true, zones: ['bl.example'], timeoutMs: 5000, failClosed: false };
  assert.equal(blocklistApplies(rbl, '192.0.2.1', internal), true);
  assert.equal(blocklistApplies(rbl, '10.1.2.3', internal), false);
  assert.equal(blocklistApplies(rbl, '::ffff:10.1.2.3', internal), false);
  assert.equal(blocklistApplies(rbl, '::1', internal), false);
  assert.equal(blocklistApplies({ ...rbl, enabled: false }, '192.0.2.1', internal), false);
  assert.equal(blocklistApplies({ ...rbl, zones: [] }, '192.0.2.1', internal), false);
  assert.equal(blocklistApplies(undefined, '192.0.2.1', internal), false);
});

test('replies per stage and per fail mode', () => {
  const listed = { listed: true as const, zone: 'bl.example', code: '127.0.0.2', text: 'see http://bl.example/' };
  assert.deepEqual(blocklistDecision(listed, { clientIp: '192.0.2.1', stage: 'rcpt', failClosed: false }), {
    action: 'refuse',
    reply: '550 5.7.1 access_control: host 192.0.2.1 found on DNS list bl.example: see http://bl.example/',
    smtpCode: 550,
    enhancedCode: '5.7.1',
    temporary: false,
    reason: 'DNS_VERIFY_DOMAIN bl.example lists 192.0.2.1 (127.0.0.2)',
  });
  const unchecked = { listed: false as const, unchecked: [{ zone: 'a.example', reason: 'SERVFAIL' }, { zone: 'b.example', reason: 'timeout' }] };
  const open = blocklistDecision(unchecked, { clientIp: '192.0.2.1', stage: 'connect', failClosed: false });
  assert.deepEqual([open.action, open.reply, open.reason], ['accept', null, 'DNS_VERIFY_DOMAIN a.example (SERVFAIL), b.example (timeout) not checked for 192.0.2.1: accepted (RBL_FAIL_CLOSED=0)']);
  const closed = blocklistDecision(unchecked, { clientIp: '192.0.2.1', stage: 'mail', failClosed: true });
  assert.deepEqual([closed.action, closed.smtpCode, closed.enhancedCode, closed.temporary], ['refuse', 451, '4.7.1', true]);
});
