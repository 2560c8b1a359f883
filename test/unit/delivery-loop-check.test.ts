// Loop signs in a queued message's header (Received: count against MAX_RECEIVED_LINES, Delivered-To:
// lines), and the header peeked off a stream that still gives the whole message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { waitFor } from '../helpers/instance.js';
import { deliveredBefore, forwardingLoop, headerFacts, headerSectionOf, peekHeader, tooManyHops } from '../../src/delivery/loop-check.js';

const received = (n: number) => Array.from({ length: n }, (_, i) => `Received: from hop${i}.example (hop${i}.example [192.0.2.${i % 250}])\r\n\tby next.example; Mon, 7 Dec 2026 10:00:00 +0000\r\n`).join('');

test('mail loops: more Received: lines than the hop limit is a loop (5.4.6); at the limit it is not', () => {
  const at = headerFacts(headerSectionOf(Buffer.from(`${received(50)}Subject: x\r\n\r\nReceived: in the body does not count\r\n`)));
  assert.equal(at.received, 50);
  assert.equal(tooManyHops(at, 50), null);
  const over = headerFacts(headerSectionOf(Buffer.from(`${received(51)}Subject: x\r\n\r\nbody\r\n`)));
  assert.match(tooManyHops(over, 50) ?? '', /^554 5\.4\.6 too many hops: 51 Received: header lines, more than 50/);
});

test('Delivered-To: lines name where the message was delivered before (any case, with or without angle brackets)', () => {
  const facts = headerFacts(headerSectionOf(Buffer.from('Delivered-To: Alice@LocalHost\r\nDelivered-To: <bob@example.org>\r\nSubject: x\r\n\r\nDelivered-To: carol@example.org\r\n')));
  assert.deepEqual([...facts.deliveredTo].sort(), ['alice@localhost', 'bob@example.org']);
  assert.equal(forwardingLoop(facts, 'alice@localhost'), '554 5.4.6 mail forwarding loop for <alice@localhost>');
  assert.equal(forwardingLoop(facts, 'carol@example.org'), null, 'a Delivered-To: in the body is not a header');
  assert.deepEqual(deliveredBefore(facts, ['alice', 'bob', 'carol'], ['', 'mail.example.org', 'localhost']), ['alice'], 'users reached through an alias, under this host\'s names');
});

test('peekHeader: the header of a stream that arrives in small pieces, and every byte of it again after', async () => {
  const message = Buffer.from(`${received(3)}Subject: x\r\n\r\n${'body line\r\n'.repeat(500)}`);
  const chunks: Buffer[] = [];
  for (let i = 0; i < message.length; i += 7) chunks.push(message.subarray(i, i + 7));
  const { header, stream } = await peekHeader(Readable.from(chunks));
  assert.equal(header.toString(), `${received(3)}Subject: x\r\n\r\n`);
  const again: Buffer[] = [];
  for await (const c of stream) again.push(c as Buffer);
  assert.deepEqual(Buffer.concat(again), message);
});

test('peekHeader: the stream given back, destroyed unread, closes the source (no file left open)', async () => {
  const source = Readable.from([Buffer.from('Subject: x\r\n\r\n'), Buffer.from('body\r\n')]);
  const { stream } = await peekHeader(source);
  stream.destroy();
  await waitFor(() => source.destroyed, { timeoutMs: 2000, what: 'the source to be destroyed' });
});
