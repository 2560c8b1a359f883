// The spool of a message the end-of-DATA checks read (src/queue/message-spool.ts) on a real queue
// directory: small messages stay in memory, larger ones go to one file in queue/.tmp; both read
// back the same from any offset, in chunks of at most 64 KiB; dispose() leaves nothing; a spool
// file whose writer died is swept like any temporary file.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QueueStore } from '../../src/queue/store.js';
import { SPOOL_READ_CHUNK } from '../../src/queue/message-spool.js';

const root = mkdtempSync(join(tmpdir(), 'tsubame-spool-'));
after(() => rmSync(root, { recursive: true, force: true }));
const queueDir = join(root, 'queue');
const store = new QueueStore({ queueDir, corruptDir: join(root, 'corrupt'), subdirs: () => 0 });
after(() => store.close());
const tmpFiles = () => (existsSync(join(queueDir, '.tmp')) ? readdirSync(join(queueDir, '.tmp')) : []);

async function collect(it: AsyncIterable<Buffer>): Promise<{ data: Buffer; largest: number }> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(c);
  return { data: Buffer.concat(parts), largest: Math.max(0, ...parts.map((p) => p.length)) };
}

function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) % 251;
  return b;
}

test('a small message stays in memory and reads back from any offset', async () => {
  const spool = store.spool(store.newMessageId(), 1024);
  const chunks = [bytes(300, 1), bytes(500, 2), bytes(100, 3)];
  for (const c of chunks) await spool.write(c);
  const whole = Buffer.concat(chunks);
  assert.equal(spool.onDisk, false);
  assert.equal(spool.size, 900);
  assert.deepEqual(tmpFiles(), []);
  assert.ok((await collect(spool.read())).data.equals(whole));
  assert.ok((await collect(spool.read(250, 820))).data.equals(whole.subarray(250, 820)));
  assert.ok((await spool.head(10)).equals(whole.subarray(0, 10)));
  await spool.dispose();
});

test('a larger one goes to one file in queue/.tmp, read back in chunks of at most 64 KiB; dispose() removes it', async () => {
  const id = store.newMessageId();
  const spool = store.spool(id, 64 * 1024);
  const chunks = Array.from({ length: 40 }, (_, i) => bytes(10_000 + i, i));
  // not awaited one by one: the writes are applied in call order
  await Promise.all(chunks.map((c) => spool.write(c)));
  await spool.finish();
  const whole = Buffer.concat(chunks);
  assert.equal(spool.onDisk, true);
  assert.equal(spool.size, whole.length);
  const files = tmpFiles();
  assert.equal(files.length, 1);
  assert.match(files[0]!, new RegExp(`^${id}-spool\\.${process.pid}\\.\\d+$`));
  const all = await collect(spool.read());
  assert.ok(all.data.equals(whole));
  assert.ok(all.largest <= SPOOL_READ_CHUNK);
  assert.ok((await collect(spool.read(123_457))).data.equals(whole.subarray(123_457)));
  await spool.dispose();
  assert.deepEqual(tmpFiles(), []);
  await assert.rejects(spool.write(Buffer.from('x')), /after dispose/);
});

test('a spool file left by a writer that died is swept with the other temporaries', async () => {
  const spool = store.spool(store.newMessageId(), 16);
  await spool.write(bytes(100, 7));
  await spool.finish();
  const [name] = tmpFiles();
  // as if its process had died: a pid that cannot exist
  const orphan = name!.replace(`.${process.pid}.`, '.4194999.');
  renameSync(join(queueDir, '.tmp', name!), join(queueDir, '.tmp', orphan));
  assert.equal(await store.sweepTemporary(), 1);
  assert.deepEqual(tmpFiles(), []);
  await spool.dispose();
});
