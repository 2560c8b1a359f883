// The queue on a full or read-only file system: enqueue fails with a temporary QueueWriteError,
// leaves no partial file, keeps what was queued, and works again once the problem is gone.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync, readdirSync, existsSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QueueStore, QueueWriteError, type EnvelopeDraft, type QueueRef, type ScanEntry } from '../../src/queue/index.js';

const isRoot = process.getuid?.() === 0;

function draft(channel = 'tcp_local'): EnvelopeDraft {
  return {
    channel,
    from: 'full@example.com',
    mailParams: {},
    sourceChannel: 'tcp_intranet',
    clientAddress: '127.0.3.3',
    clientHelo: null,
    arrival: new Date(),
    recipients: [{ address: 'x@example.net', original: 'x@example.net', orcpt: null, notify: null, state: 'pending', status: null }],
  };
}

async function scanAll(store: QueueStore): Promise<ScanEntry[]> {
  const out: ScanEntry[] = [];
  for await (const e of store.scan()) out.push(e);
  return out;
}

function isWriteError(code: RegExp) {
  return (err: unknown) => err instanceof QueueWriteError && err.temporary === true && code.test(err.code);
}

/** Fills the file system with one file until ENOSPC; returns its path. */
function fill(path: string): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024, 0x7a);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
    // the last few bytes too, so that even a small envelope does not fit
    try {
      for (;;) writeSync(fd, chunk.subarray(0, 512));
    } catch {
      /* full */
    }
  } finally {
    closeSync(fd);
  }
}

describe('queue write failures', { skip: !isRoot && 'mounting a tmpfs needs root (the unwritable-directory test below still runs)' }, () => {
  let dir: string;
  let queueDir: string;
  let mounted = false;
  let store: QueueStore;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsubame-full-'));
    queueDir = join(dir, 'queue');
    mkdirSync(queueDir);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', queueDir]);
    mounted = true;
    store = new QueueStore({ queueDir, corruptDir: join(dir, 'corrupt'), subdirs: () => 2 });
  });
  after(async () => {
    await store?.close();
    if (mounted) execFileSync('umount', ['-l', queueDir]);
    rmSync(dir, { recursive: true, force: true });
  });

  test('disk full: temporary error, nothing partial, old files intact, recovers', async () => {
    const body = Buffer.alloc(20_000, 0x41);
    const queued: QueueRef[] = [];
    for (let i = 0; i < 5; i++) queued.push(...(await store.enqueue([draft()], body)));
    const filler = join(queueDir, '$filler');
    fill(filler);

    await assert.rejects(store.enqueue([draft(), draft('l')], Buffer.alloc(100_000, 0x42)), isWriteError(/^ENOSPC$/));
    // streamed: fails in write() or commit(), never resolves
    const tx = store.begin([draft()]);
    await assert.rejects(
      (async () => {
        for (let i = 0; i < 20; i++) await tx.write(Buffer.alloc(16_384, 0x43));
        await tx.commit();
      })(),
      isWriteError(/^ENOSPC$/),
    );
    await tx.abort(); // harmless after a failure
    // many at once (group commit path) all fail cleanly
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => store.enqueue([draft()], Buffer.alloc(30_000, 0x44))));
    assert.ok(results.every((r) => r.status === 'rejected' && isWriteError(/^ENOSPC$/)(r.reason)));

    assert.deepEqual((await scanAll(store)).map((e) => e.id).sort(), queued.map((r) => r.id).sort(), 'only the earlier messages are queued');
    assert.deepEqual(readdirSync(join(queueDir, '.tmp')), [], 'no temporary files left behind');
    for (const ref of queued) assert.ok((await store.readMessage(ref.path)).body.equals(body));

    rmSync(filler);
    const [ref] = await store.enqueue([draft()], Buffer.alloc(100_000, 0x45));
    assert.equal((await store.readMessage(ref!.path)).body.length, 100_000);
  });

  test('a rewrite cut short by the full disk fails and leaves the old file whole (a short write is not success)', async () => {
    const body = Buffer.alloc(100_000, 0x46);
    const [ref] = await store.enqueue([draft()], body);
    // The disk full but for 20 KiB: a rewrite runs out part of the way through the message, where
    // write(2) returns a short count without an error.
    const reserve = join(queueDir, '$reserve');
    writeFileSync(reserve, Buffer.alloc(20 * 1024, 0x7a));
    const filler = join(queueDir, '$filler');
    fill(filler);
    rmSync(reserve);
    try {
      const envelope = await store.readEnvelope(ref!.path);
      await assert.rejects(store.update(ref!, { ...envelope, attempts: 1, nextAttempt: new Date() }), isWriteError(/^ENOSPC$/));
      const kept = await store.readMessage(ref!.path);
      assert.equal(kept.envelope.attempts, 0, 'the old version is still in place');
      assert.ok(kept.body.equals(body), 'the old file is whole');
      assert.deepEqual(readdirSync(join(queueDir, '.tmp')), [], 'no temporary files left behind');
    } finally {
      rmSync(filler);
    }
    await store.remove(ref!);
  });

  test('read-only file system: temporary error, recovers after remount', async () => {
    const before = await scanAll(store);
    execFileSync('mount', ['-o', 'remount,ro', queueDir]);
    try {
      await assert.rejects(store.enqueue([draft()], Buffer.from('ro\r\n')), isWriteError(/^EROFS$/));
      await assert.rejects(store.hold(before[0]!), isWriteError(/^EROFS$/));
    } finally {
      execFileSync('mount', ['-o', 'remount,rw', queueDir]);
    }
    assert.equal((await scanAll(store)).length, before.length);
    await store.enqueue([draft()], Buffer.from('rw again\r\n'));
    assert.equal((await scanAll(store)).length, before.length + 1);
  });
});

test('a file where a queue directory should be: temporary error, no partial files', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsubame-notdir-'));
  const queueDir = join(dir, 'queue');
  const store = new QueueStore({ queueDir, corruptDir: join(dir, 'corrupt'), subdirs: () => 0 });
  try {
    mkdirSync(queueDir);
    writeFileSync(join(queueDir, 'tcp_blocked'), 'not a directory');
    await assert.rejects(store.enqueue([draft('tcp_blocked')], Buffer.from('x\r\n')), isWriteError(/^(ENOTDIR|EEXIST)$/));
    // a two-channel message where one channel cannot be written is not stored at all
    await assert.rejects(store.enqueue([draft('tcp_ok'), draft('tcp_blocked')], Buffer.from('y\r\n')), isWriteError(/^(ENOTDIR|EEXIST)$/));
    assert.deepEqual(await scanAll(store), []);
    assert.ok(!existsSync(join(queueDir, '.tmp')) || readdirSync(join(queueDir, '.tmp')).length === 0);
    // and the message is accepted once the operator fixed it
    rmSync(join(queueDir, 'tcp_blocked'));
    const refs = await store.enqueue([draft('tcp_ok'), draft('tcp_blocked')], Buffer.from('z\r\n'));
    assert.equal(refs.length, 2);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
