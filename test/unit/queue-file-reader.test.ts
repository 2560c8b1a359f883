// The synchronous queue file reads of the delivery path (queue-file-reader.ts) agree with the store's:
// same envelope and size, same verdict on truncated and foreign files, null when the file is gone.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync, writeFileSync, truncateSync, appendFileSync, renameSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QueueStore } from '../../src/queue/store.js';
import { QueueFileError } from '../../src/queue/errors.js';
import type { EnvelopeDraft } from '../../src/queue/types.js';
import { readMessageSync, readQueuedFileSync, READ_WHOLE_MAX } from '../../src/queue/queue-file-reader.js';

const root = mkdtempSync(join(tmpdir(), 'tsubame-queue-read-'));
after(() => rmSync(root, { recursive: true, force: true }));
const queueDir = join(root, 'queue');
const store = new QueueStore({ queueDir, corruptDir: join(root, 'corrupt'), subdirs: () => 0 });
after(() => store.close());

const draft = (recipients: string[]): EnvelopeDraft => ({
  channel: 'tcp_local',
  from: 'sender@example.org',
  mailParams: { body: '8BITMIME' },
  sourceChannel: 'tcp_intranet',
  clientAddress: '127.0.0.1',
  clientHelo: 'client.test',
  arrival: new Date('2026-01-02T03:04:05.000Z'),
  recipients: recipients.map((address) => ({ address, original: address, orcpt: null, notify: null, state: 'pending', status: null })),
});

test('envelope and size as the store reads them; the body whole when asked', async () => {
  const body = Buffer.from('Subject: hi\r\n\r\nbody text\r\n');
  const [ref] = await store.enqueue([draft(['a@remote.test', 'b@remote.test'])], body);
  const file = readQueuedFileSync(ref!.path, { queueDir });
  const fromStore = await store.inspect(ref!.path);
  assert.deepEqual(file?.envelope, fromStore?.envelope);
  assert.equal(file?.size, body.length);
  assert.equal(file?.body, null, 'the body only when asked for');
  assert.deepEqual(readQueuedFileSync(ref!.path, { withBody: true })?.body, body);
  assert.deepEqual(readMessageSync(ref!.path), body);
});

test('the file name and directory win over the contents, as in the store', async () => {
  const [ref] = await store.enqueue([draft(['c@remote.test'])], Buffer.from('x\r\n'));
  mkdirSync(join(queueDir, 'tcp_other'), { recursive: true });
  const moved = join(queueDir, 'tcp_other', ref!.path.split('/').pop()!);
  renameSync(ref!.path, moved);
  const file = readQueuedFileSync(moved, { queueDir });
  assert.equal(file?.envelope.channel, 'tcp_other');
  assert.equal(file?.envelope.id, ref!.id);
});

test('gone: null; truncated, padded or foreign: QueueFileError', async () => {
  assert.equal(readQueuedFileSync(join(queueDir, 'tcp_local', '00NOTTHERE.00')), null);
  assert.equal(readMessageSync(join(queueDir, 'tcp_local', '00NOTTHERE.00')), null);

  const [short] = await store.enqueue([draft(['d@remote.test'])], Buffer.from('0123456789\r\n'));
  truncateSync(short!.path, readFileSync(short!.path).length - 3);
  assert.throws(() => readQueuedFileSync(short!.path), (e: unknown) => e instanceof QueueFileError && /truncated/.test(e.reason));
  assert.throws(() => readMessageSync(short!.path), QueueFileError);

  const [long] = await store.enqueue([draft(['e@remote.test'])], Buffer.from('0123456789\r\n'));
  appendFileSync(long!.path, 'junk');
  assert.throws(() => readQueuedFileSync(long!.path), (e: unknown) => e instanceof QueueFileError && /garbage/.test(e.reason));
  assert.throws(() => readMessageSync(long!.path), QueueFileError);

  const foreign = join(queueDir, 'tcp_local', '00FOREIGNFILE1.00');
  writeFileSync(foreign, 'From: someone\r\n\r\n'.repeat(2000));
  assert.throws(() => readQueuedFileSync(foreign), (e: unknown) => e instanceof QueueFileError && /not a tsubame queue file/.test(e.reason));
  assert.throws(() => readMessageSync(foreign), QueueFileError);
});

test('a large envelope (many recipients) is read past the first 16 KiB; a large message is left to streaming', async () => {
  const many = Array.from({ length: 600 }, (_, i) => `member${i}@list${i % 50}.test`);
  const [ref] = await store.enqueue([draft(many)], Buffer.from('list message\r\n'));
  const file = readQueuedFileSync(ref!.path, { withBody: true });
  assert.equal(file?.envelope.recipients.length, 600);
  assert.deepEqual(file?.body, Buffer.from('list message\r\n'));

  const big = Buffer.alloc(READ_WHOLE_MAX + 10, 'a');
  const [large] = await store.enqueue([draft(['f@remote.test'])], big);
  assert.equal(readMessageSync(large!.path), 'stream');
  const header = readQueuedFileSync(large!.path, { withBody: true });
  assert.equal(header?.size, big.length);
  assert.equal(header?.body, null, 'too large to be read whole');
});
