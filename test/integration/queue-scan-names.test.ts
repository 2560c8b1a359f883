// QueueStore.scan takes files whose id carries its creation time from the directory entry alone
// (no stat: the job controller's start-up scan of a large queue); anything else is still
// stat'ed, and what is not a regular file is still set aside.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, symlinkSync, utimesSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QueueStore, type ScanEntry } from '../../src/queue/index.js';
import { queueIdTimeMs } from '../../src/queue/message-id.js';

const dir = mkdtempSync(join(tmpdir(), 'tsubame-scan-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('scan: the id time for ids that carry one, the file time otherwise; non-regular files set aside', async () => {
  const store = new QueueStore({ queueDir: join(dir, 'queue'), corruptDir: join(dir, 'corrupt'), subdirs: () => 0 });
  const [ref] = await store.enqueue(
    [{ channel: 'tcp_x', from: 'a@b.test', mailParams: {}, sourceChannel: 'l', clientAddress: null, clientHelo: null, arrival: new Date(), recipients: [{ address: 'c@d.test', original: 'c@d.test', orcpt: null, notify: null, state: 'pending', status: null }] }],
    Buffer.from('Subject: x\r\n\r\nbody\r\n'),
  );
  const chDir = join(dir, 'queue', 'tcp_x');
  // An id without a time in it (put there by hand): its file time is used.
  const odd = join(chDir, 'ZZZZZZZZZZZZ.00');
  writeFileSync(odd, 'not read by a scan');
  const fileTime = new Date('2026-01-02T03:04:05.000Z');
  utimesSync(odd, fileTime, fileTime);
  // A symlink with a good name: not a regular file.
  // Its id differs from the real one in the last character (never the same name as the message's file).
  const last = ref!.id.endsWith('Q') ? 'R' : 'Q';
  const linkName = `ZZ${ref!.id.slice(0, -1)}${last}.00`;
  symlinkSync(ref!.path, join(chDir, linkName));
  mkdirSync(join(dir, 'corrupt'), { recursive: true });

  const seen: ScanEntry[] = [];
  for await (const e of store.scan('tcp_x')) seen.push(e);
  await store.close();

  const byId = new Map(seen.map((e) => [e.id, e]));
  assert.equal(byId.get(ref!.id)?.mtimeMs, queueIdTimeMs(ref!.id), 'a new id: its creation time, no stat');
  assert.ok(queueIdTimeMs(ref!.id)! > Date.now() - 60_000);
  assert.equal(byId.get('ZZZZZZZZZZ')?.mtimeMs, fileTime.getTime(), 'an id without a time: the file time');
  assert.equal(seen.length, 2, 'the symlink is not a queue entry');
  assert.ok(readdirSync(join(dir, 'corrupt')).includes(linkName), 'the symlink was set aside');
});
