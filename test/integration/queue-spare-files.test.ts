// Reuse of delivered queue files (queue/spare-files.ts) on a real file system: a retired file is
// taken over by the next enqueue (same inode, exactly the new bytes), only this boot's pool is
// used, large files are not kept, and concurrent claimers (processes) never share a spare.
import { test, describe, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync, mkdirSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QueueStore, type EnvelopeDraft } from '../../src/queue/index.js';
import { SPARE_MAX_BYTES, SPARE_SLOTS, SpareFiles } from '../../src/queue/spare-files.js';

const BOOT = '0f2c6d3e-1111-4a4a-9b9b-123456789abc';

function draft(recipients = ['bob@example.net']): EnvelopeDraft {
  return {
    channel: 'tcp_local',
    from: 'alice@example.com',
    mailParams: {},
    sourceChannel: 'tcp_local',
    clientAddress: '127.0.3.9',
    clientHelo: 'client.example',
    arrival: new Date('2026-03-04T05:06:07.089Z'),
    recipients: recipients.map((r) => ({ address: r, original: r, orcpt: null, notify: null, state: 'pending' as const, status: null })),
  };
}

describe('spare queue files', () => {
  let dir: string;
  let queueDir: string;
  let store: QueueStore;
  const open = (bootId: string | null = BOOT) => new QueueStore({ queueDir, corruptDir: join(dir, 'corrupt'), subdirs: () => 0, bootId });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsubame-spare-'));
    queueDir = join(dir, 'queue');
    store = open();
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Lets a claimer see the pool as it is now (after finding it empty it waits EMPTY_RELIST_MS). */
  const primed = async (s: QueueStore) => {
    s.spares.listSync();
  };

  test('a retired file is overwritten by the next enqueue: same inode, exactly the new message', async () => {
    const big = Buffer.alloc(20_000, 0x61);
    const [first] = await store.enqueue([draft(['a@example.net', 'b@example.net'])], big);
    const ino = statSync(first!.path).ino;
    assert.equal(store.spares.retireSync(first!.path, statSync(first!.path).size), true);
    assert.equal(existsSync(first!.path), false, 'the queue no longer has it');
    assert.equal(store.spares.countSync(), 1);

    await primed(store);
    const small = Buffer.from('Subject: short\r\n\r\nhello\r\n');
    const [second] = await store.enqueue([draft()], small);
    assert.equal(statSync(second!.path).ino, ino, 'the spare inode was used');
    assert.equal(store.spares.countSync(), 0);
    const back = await store.readMessage(second!.path);
    assert.deepEqual(back.body, small, 'no byte of the longer old message is left');
    assert.deepEqual(back.envelope.recipients.map((r) => r.address), ['bob@example.net']);
    // The next one has no spare: a new file.
    const [third] = await store.enqueue([draft()], small);
    assert.notEqual(statSync(third!.path).ino, ino);
  });

  test('a streamed (large) enqueue over a spare is cut to its own length', async () => {
    const [old] = await store.enqueue([draft()], Buffer.alloc(30_000, 0x62));
    assert.ok(store.spares.retireSync(old!.path, statSync(old!.path).size));
    await primed(store);
    const tx = store.begin([draft()]);
    const chunk = Buffer.alloc(70_000, 0x63); // over the in-memory limit: written as it comes
    await tx.write(chunk);
    await tx.write(Buffer.from('end\r\n'));
    const [ref] = await tx.commit();
    const back = await store.readMessage(ref!.path);
    assert.equal(back.body.length, 70_005);
    assert.deepEqual(back.body.subarray(70_000).toString(), 'end\r\n');
  });

  test('files over SPARE_MAX_BYTES are not kept; with no boot id nothing is', async () => {
    const [ref] = await store.enqueue([draft()], Buffer.alloc(SPARE_MAX_BYTES + 1, 0x61));
    assert.equal(store.spares.retireSync(ref!.path, statSync(ref!.path).size), false);
    assert.ok(existsSync(ref!.path), 'left for the caller to delete');
    const off = open(null);
    const [small] = await off.enqueue([draft()], Buffer.from('x\r\n'));
    assert.equal(off.spares.retireSync(small!.path, 100), false);
    assert.equal(off.spares.claimSync(join(dir, 'x')), false);
    await off.close();
  });

  test('spares of another boot are never taken, and the sweep removes them', async () => {
    const earlier = join(queueDir, '.spare', 'an-earlier-boot-0000');
    mkdirSync(earlier, { recursive: true });
    writeFileSync(join(earlier, 's1'), 'still a queued message after a crash');
    await primed(store);
    const [ref] = await store.enqueue([draft()], Buffer.from('x\r\n'));
    assert.ok(existsSync(join(earlier, 's1')));
    assert.notEqual(statSync(ref!.path).ino, statSync(join(earlier, 's1')).ino);
    await store.sweepTemporary();
    assert.equal(existsSync(earlier), false);
    assert.deepEqual(readdirSync(join(queueDir, '.spare')), []);
  });

  test('the pool never holds more than SPARE_SLOTS files', async () => {
    const pool = new SpareFiles({ queueDir, bootId: BOOT });
    mkdirSync(join(dir, 'f'));
    for (let i = 0; i < SPARE_SLOTS + 50; i++) {
      const p = join(dir, 'f', String(i));
      writeFileSync(p, 'x');
      assert.ok(pool.retireSync(p, 1));
    }
    assert.equal(pool.countSync(), SPARE_SLOTS);
  });

  test('claimers in several stores (processes) never take the same spare', async () => {
    const writers = [store, open(), open()];
    const made = await Promise.all(Array.from({ length: 30 }, (_, i) => store.enqueue([draft()], Buffer.from(`old ${i}\r\n`))));
    for (const [ref] of made) assert.ok(store.spares.retireSync(ref!.path, statSync(ref!.path).size));
    for (const w of writers) await primed(w);
    const bodies = Array.from({ length: 60 }, (_, i) => Buffer.from(`Subject: new ${i}\r\n\r\n${'y'.repeat(i)}\r\n`));
    const refs = await Promise.all(bodies.map((b, i) => writers[i % writers.length]!.enqueue([draft()], b)));
    const inodes = refs.map(([r]) => statSync(r!.path).ino);
    assert.equal(new Set(inodes).size, inodes.length, 'every queued message has its own file');
    for (const [i, [r]] of refs.entries()) assert.deepEqual((await store.readMessage(r!.path)).body, bodies[i]);
    const reused = 30 - store.spares.countSync();
    assert.ok(reused > 0, 'some spares were taken');
    for (const w of writers.slice(1)) await w.close();
  });
});
