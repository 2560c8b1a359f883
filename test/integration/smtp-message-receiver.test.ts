// The DATA → queue step of the SMTP server (message-receiver.ts) on a real queue store: what is
// kept byte for byte, what is refused or dropped with nothing left behind, and that a large
// message is streamed with the source paused while the disk catches up.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QueueStore } from '../../src/queue/store.js';
import type { EnvelopeDraft } from '../../src/queue/types.js';
import { readMessageSync } from '../../src/queue/queue-file-reader.js';
import { receiveMessage } from '../../src/smtp-server/message-receiver.js';
import { REPLIES } from '../../src/smtp-server/replies.js';

const root = mkdtempSync(join(tmpdir(), 'tsubame-receiver-'));
after(() => rmSync(root, { recursive: true, force: true }));
const queueDir = join(root, 'queue');
const store = new QueueStore({ queueDir, corruptDir: join(root, 'corrupt'), subdirs: () => 0 });
after(() => store.close());

const LIMITS = { maxLineLength: 998, maxBytes: 10 * 1024 * 1024 };
const HEADER = 'Received: from client.test by mx.test; Tue, 1 Dec 2026 19:00:00 +0000\r\n';

const draft = (channel: string): EnvelopeDraft => ({
  channel,
  from: 'sender@example.org',
  mailParams: {},
  sourceChannel: 'tcp_local',
  clientAddress: '127.0.0.1',
  clientHelo: 'client.test',
  arrival: new Date(),
  recipients: [{ address: 'a@example.com', original: 'a@example.com', orcpt: null, notify: null, state: 'pending', status: null }],
});

/** Queue files and temporary files left in a channel directory and in queue/.tmp. */
const leftovers = (channel: string) =>
  [join(queueDir, channel), join(queueDir, '.tmp')].flatMap((d) => (existsSync(d) ? readdirSync(d) : []));

/** A DATA stream as smtp-server gives it (a PassThrough), fed with these chunks. */
function dataStream(chunks: Buffer[], end: 'end' | 'destroy' = 'end'): PassThrough {
  const stream = new PassThrough();
  setImmediate(() => {
    for (const c of chunks) stream.write(c);
    if (end === 'end') stream.end();
    else stream.destroy(Object.assign(new Error('Connection closed before the message was received in full'), { code: 'ECONNECTION' }));
  });
  return stream;
}

test('a clean message is queued behind the Received: line, byte for byte, in one file per channel', async () => {
  const chunks = ['Subject: a\r\n', '\r\nbody\r', '\n', 'last line\r\n'].map((c) => Buffer.from(c));
  const outcome = await receiveMessage({ stream: dataStream(chunks), store, drafts: [draft('tcp_local'), draft('l')], header: HEADER, limits: LIMITS });
  assert.equal(outcome.kind, 'queued');
  if (outcome.kind !== 'queued') return;
  assert.equal(outcome.size, 31);
  assert.equal(outcome.refs.length, 2);
  for (const ref of outcome.refs) assert.equal(readMessageSync(ref.path)?.toString(), HEADER + 'Subject: a\r\n\r\nbody\r\nlast line\r\n');
});

test('a bare LF refuses the message: the rest is read and counted, nothing is kept', async () => {
  const chunks = ['ok\r\n', 'bad\n', 'more\r\n'].map((c) => Buffer.from(c));
  const outcome = await receiveMessage({ stream: dataStream(chunks), store, drafts: [draft('tcp_refused')], header: HEADER, limits: LIMITS });
  assert.equal(outcome.kind, 'refused');
  if (outcome.kind !== 'refused') return;
  assert.equal(outcome.violation, 'bare-lf');
  assert.deepEqual(outcome.reply, REPLIES.bareNewline);
  assert.equal(outcome.size, 14);
  assert.deepEqual(leftovers('tcp_refused'), []);
});

test('a client that leaves during DATA: aborted, nothing kept, also after a streamed part', async () => {
  const small = await receiveMessage({ stream: dataStream([Buffer.from('Subject: x\r\n')], 'destroy'), store, drafts: [draft('tcp_gone')], header: HEADER, limits: LIMITS });
  assert.deepEqual(small, { kind: 'aborted', size: 12 });
  const line = Buffer.from('x'.repeat(78) + '\r\n');
  const big = await receiveMessage({ stream: dataStream(Array(2000).fill(line), 'destroy'), store, drafts: [draft('tcp_gone')], header: HEADER, limits: LIMITS });
  assert.deepEqual(big, { kind: 'aborted', size: 2000 * 80 });
  assert.deepEqual(leftovers('tcp_gone'), []);
});

test('a large message is streamed to disk with the source paused while writes wait', async () => {
  const line = Buffer.from('y'.repeat(510) + '\r\n');
  const stream = dataStream(Array(6 * 1024).fill(line)); // 3 MiB arriving at once
  let pauses = 0;
  stream.on('pause', () => pauses++);
  const outcome = await receiveMessage({ stream, store, drafts: [draft('tcp_big')], header: HEADER, limits: LIMITS });
  assert.equal(outcome.kind, 'queued');
  if (outcome.kind !== 'queued') return;
  assert.ok(pauses > 0, 'the source was paused');
  const kept = readFileSync(outcome.refs[0]!.path);
  assert.equal(kept.subarray(kept.length - 3 * 1024 * 1024 - HEADER.length).toString('latin1'), HEADER + line.toString('latin1').repeat(6 * 1024));
});

test('a queue that cannot be written: 452 4.3.1, the data still read to its end, nothing kept', async () => {
  const blocked = join(root, 'blocked');
  writeFileSync(blocked, 'a file where the queue directory should be');
  const broken = new QueueStore({ queueDir: blocked, corruptDir: join(root, 'corrupt2'), subdirs: () => 0 });
  try {
    const stream = dataStream([Buffer.from('Subject: y\r\n\r\nz\r\n')]);
    const outcome = await receiveMessage({ stream, store: broken, drafts: [draft('tcp_local')], header: HEADER, limits: LIMITS });
    assert.equal(outcome.kind, 'failed');
    if (outcome.kind !== 'failed') return;
    assert.deepEqual(outcome.reply, REPLIES.storageFull);
    assert.equal(outcome.size, 17);
    assert.equal(stream.readableEnded, true);
  } finally {
    await broken.close();
  }
});
