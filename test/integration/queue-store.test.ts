// The queue store on a real file system (a temporary directory).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readdirSync, writeFileSync, readFileSync, existsSync, mkdirSync, truncateSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, basename, dirname } from 'node:path';
import { QueueStore, QueueFileError, type EnvelopeDraft, type ScanEntry } from '../../src/queue/index.js';

function draft(channel: string, recipients = ['bob@example.net']): EnvelopeDraft {
  return {
    channel,
    from: 'alice "the sender"@example.com',
    mailParams: { size: 99, body: '8BITMIME', ret: 'FULL', envid: 'ENV 1', smtputf8: false },
    sourceChannel: 'tcp_local',
    clientAddress: '127.0.3.9',
    clientHelo: 'client.example',
    arrival: new Date('2026-03-04T05:06:07.089Z'),
    recipients: recipients.map((r) => ({ address: r, original: r.toUpperCase(), orcpt: `rfc822;${r}`, notify: ['FAILURE'], state: 'pending' as const, status: null })),
  };
}

/** A message with every awkward byte: 8-bit, NUL, bare CR, bare LF, a 5000-octet line, no final CRLF. */
function awkwardBody(): Buffer {
  return Buffer.concat([
    Buffer.from('Received: from x\r\nSubject: caf\xe9\r\n\r\n', 'latin1'),
    Buffer.from([0x00, 0x01, 0xff, 0x0d, 0x41, 0x0a, 0x42, 0x0d, 0x0a]),
    Buffer.alloc(5000, 0x78),
    Buffer.from('\r\n.\r\n..dot\r\nend-of-envelope\nlast', 'latin1'),
  ]);
}

async function collect(it: AsyncIterable<ScanEntry>): Promise<ScanEntry[]> {
  const out: ScanEntry[] = [];
  for await (const e of it) out.push(e);
  return out;
}

describe('queue store', () => {
  let dir: string;
  let store: QueueStore;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsubame-queue-'));
    store = new QueueStore({ queueDir: join(dir, 'queue'), corruptDir: join(dir, 'corrupt'), subdirs: (ch) => (ch === 'tcp_local' ? 4 : 0) });
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('enqueue writes one file per channel; every field and byte reads back', async () => {
    const body = awkwardBody();
    const refs = await store.enqueue([draft('tcp_local', ['bob@example.net', 'carol@example.org']), draft('l', ['dave'])], body);
    assert.equal(refs.length, 2);
    assert.notEqual(refs[0]!.id, refs[1]!.id);
    assert.match(basename(refs[0]!.path), /^ZZ[0-9A-Z]+\.00$/);
    assert.match(refs[0]!.path, /queue\/tcp_local\/00[0-3]\/ZZ/);
    assert.equal(dirname(refs[1]!.path), join(dir, 'queue', 'l'));
    for (const [i, ref] of refs.entries()) {
      const { envelope, body: back } = await store.readMessage(ref.path);
      const d = [draft('tcp_local', ['bob@example.net', 'carol@example.org']), draft('l', ['dave'])][i]!;
      assert.deepEqual(envelope, { ...d, id: ref.id, attempts: 0, nextAttempt: null, held: false });
      assert.ok(back.equals(body), 'body bytes identical');
      assert.deepEqual(await store.readEnvelope(ref.path), envelope);
      const streamed: Buffer[] = [];
      for await (const c of (await store.openBody(ref.path)) as AsyncIterable<Buffer>) streamed.push(c);
      assert.ok(Buffer.concat(streamed).equals(body), 'streamed body identical');
    }
    // readable with cat: the envelope is text, then the message
    const text = readFileSync(refs[0]!.path, 'latin1');
    assert.match(text, /^tsubame-queue 1\n[\s\S]*\nrcpt state=pending to=bob@example.net [\s\S]*\nend-of-envelope\nReceived: from x\r\n/);
  });

  test('streamed enqueue of a large message; abort leaves nothing', async () => {
    const tx = store.begin([draft('tcp_bulk')]);
    const chunks: Buffer[] = [];
    for (let i = 0; i < 40; i++) {
      const c = Buffer.alloc(8192, i);
      chunks.push(c);
      await tx.write(c);
    }
    assert.equal(tx.bytes, 40 * 8192);
    const [ref] = await tx.commit();
    const { body } = await store.readMessage(ref!.path);
    assert.ok(body.equals(Buffer.concat(chunks)));

    const aborted = store.begin([draft('tcp_bulk')]);
    for (let i = 0; i < 20; i++) await aborted.write(Buffer.alloc(8192, 1));
    await aborted.abort();
    const entries = await collect(store.scan('tcp_bulk'));
    assert.deepEqual(entries.map((e) => e.id), [ref!.id]);
    assert.deepEqual(readdirSync(store.tmpDir), [], 'no temporary files left');
  });

  test('writes made in one turn keep their order when one of them starts the streaming', async () => {
    // 60 KiB buffered, then in the same turn of the event loop (not awaited, as a stream's
    // 'data' events may come) a chunk that goes over the in-memory limit and a small one that
    // would still fit under it: the small one must not overtake the big one.
    const tx = store.begin([draft('tcp_bulk')]);
    const parts = [Buffer.alloc(60 * 1024, 0x61), Buffer.alloc(10 * 1024, 0x62), Buffer.alloc(1024, 0x63), Buffer.alloc(100 * 1024, 0x64)];
    const writes = parts.map((p) => tx.write(p));
    await Promise.all(writes);
    const [ref] = await tx.commit();
    const { body } = await store.readMessage(ref!.path);
    assert.ok(body.equals(Buffer.concat(parts)), 'the bytes are queued in the order they were written');
  });

  test('update rewrites atomically and renames with the attempt count', async () => {
    const [ref] = await store.enqueue([draft('tcp_local', ['a@x.example', 'b@y.example'])], Buffer.from('Subject: u\r\n\r\nbody\r\n'));
    const env = await store.readEnvelope(ref!.path);
    env.attempts = 1;
    env.nextAttempt = new Date('2026-03-04T06:00:00.000Z');
    env.recipients[0]!.state = 'delivered';
    env.recipients[0]!.status = '250 2.0.0 ok';
    env.recipients[1]!.status = '451 4.3.0 try later';
    env.recipients[1]!.warnings = 1;
    const ref2 = await store.update(ref!, env);
    assert.equal(ref2.id, ref!.id);
    assert.match(basename(ref2.path), /^ZY/);
    assert.ok(!existsSync(ref!.path), 'old name gone');
    assert.deepEqual(await store.readEnvelope(ref2.path), env);
    assert.equal((await store.readMessage(ref2.path)).body.toString(), 'Subject: u\r\n\r\nbody\r\n');
    const seen = (await collect(store.scan('tcp_local'))).filter((e) => e.id === ref!.id);
    assert.equal(seen.length, 1, 'one file per message');
    assert.equal(seen[0]!.attempts, 1);
    // same attempt count: same name
    env.recipients[1]!.status = 'still waiting';
    const ref3 = await store.update(ref2, env);
    assert.equal(ref3.path, ref2.path);
    // a file deleted meanwhile is not resurrected
    await store.remove(ref3);
    await assert.rejects(store.update(ref3, env), { code: 'ENOENT' });
    assert.equal(await store.findById(ref!.id), null);
    assert.deepEqual(readdirSync(store.tmpDir), []);
  });

  test('hold and release rename; findById sees the state', async () => {
    const [ref] = await store.enqueue([draft('l', ['held-user'])], Buffer.from('x\r\n'));
    const held = await store.hold(ref!);
    assert.match(held.path, /\.HELD$/);
    assert.equal((await store.readEnvelope(held.path)).held, true);
    const found = await store.findById(ref!.id.toLowerCase());
    assert.equal(found?.held, true);
    assert.equal(found?.path, held.path);
    const released = await store.release(held);
    assert.equal(released.path, ref!.path);
    assert.equal((await store.findById(ref!.id))?.held, false);
  });

  test('scan skips temporary files and moves foreign and damaged files to corrupt/', async () => {
    const [ref] = await store.enqueue([draft('tcp_odd')], Buffer.from('hello\r\n'));
    const chDir = join(dir, 'queue', 'tcp_odd');
    writeFileSync(join(chDir, '$partial'), 'temporary');
    writeFileSync(join(chDir, 'README'), 'someone put this here');
    mkdirSync(join(dir, 'queue', '.tmp'), { recursive: true });
    writeFileSync(join(dir, 'queue', '.tmp', 'ZZJUNK.00'), 'half');
    const entries = await collect(store.scan());
    assert.ok(entries.some((e) => e.id === ref!.id));
    assert.ok(!entries.some((e) => e.channel === '.tmp'));
    assert.ok(!existsSync(join(chDir, 'README')));
    assert.ok(existsSync(join(chDir, '$partial')));

    // a truncated file: the reader reports it, tryReadEnvelope quarantines it
    const [bad] = await store.enqueue([draft('tcp_odd')], Buffer.alloc(3000, 0x61));
    truncateSync(bad!.path, statSync(bad!.path).size - 10);
    await assert.rejects(store.readEnvelope(bad!.path), (err: unknown) => err instanceof QueueFileError && /truncated/.test(err.reason));
    assert.equal(await store.tryReadEnvelope(bad!.path), null);
    assert.ok(!existsSync(bad!.path));
    // garbage with a queue file name
    const junkPath = join(chDir, 'ZZ0000000000JUNK.00');
    writeFileSync(junkPath, 'not a queue file\n');
    assert.equal(await store.tryReadEnvelope(junkPath), null);

    const corrupt = await store.listCorrupt();
    const byName = new Map(corrupt.map((c) => [c.name, c]));
    assert.equal(byName.get('README')?.reason, 'not a queue file name');
    assert.match(byName.get(basename(bad!.path))?.reason ?? '', /truncated/);
    assert.match(byName.get('ZZ0000000000JUNK.00')?.reason ?? '', /not a tsubame queue file/);
    assert.equal(byName.get('README')?.originalPath, join(chDir, 'README'));
    // the scan still goes on and finds the good one
    assert.ok((await collect(store.scan('tcp_odd'))).some((e) => e.id === ref!.id));
  });

  test('temporary files of dead writers are swept', async () => {
    rmSync(store.tmpDir, { recursive: true, force: true });
    mkdirSync(store.tmpDir, { recursive: true });
    writeFileSync(join(store.tmpDir, 'ABCDEFGHIJ.999999999.1'), 'left by a killed writer');
    writeFileSync(join(store.tmpDir, `ABCDEFGHIK.${process.pid}.1`), 'ours, in progress');
    assert.equal(await store.sweepTemporary(), 1);
    assert.deepEqual(readdirSync(store.tmpDir), [`ABCDEFGHIK.${process.pid}.1`]);
    rmSync(join(store.tmpDir, `ABCDEFGHIK.${process.pid}.1`));
  });

  test('concurrent commits share directory fsync rounds', async () => {
    const before = store.fsyncRounds;
    const n = 200;
    const refs = await Promise.all(Array.from({ length: n }, (_, i) => store.enqueue([draft('tcp_group')], Buffer.from(`message ${i}\r\n`))));
    const rounds = store.fsyncRounds - before;
    assert.equal(new Set(refs.map((r) => r[0]!.id)).size, n);
    assert.ok(rounds < n / 2, `${rounds} directory fsync rounds for ${n} messages`);
    assert.equal((await collect(store.scan('tcp_group'))).length, n);
  });

  test('a queue directory removed behind the store is recreated', async () => {
    await store.enqueue([draft('tcp_gone')], Buffer.from('one\r\n'));
    rmSync(join(dir, 'queue', 'tcp_gone'), { recursive: true });
    rmSync(store.tmpDir, { recursive: true });
    const [ref] = await store.enqueue([draft('tcp_gone')], Buffer.from('two\r\n'));
    assert.equal((await store.readMessage(ref!.path)).body.toString(), 'two\r\n');
  });

  test('bad input is refused before anything is written', () => {
    assert.throws(() => store.begin([]), /at least one/);
    assert.throws(() => store.begin([draft('../etc')]), /not a usable channel name/);
    assert.throws(() => store.begin([{ ...draft('l'), recipients: [] }]), /no recipients/);
  });
});
