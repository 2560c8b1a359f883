// QueueStore.retire, the one way a settled message's file leaves the queue: a small file goes to
// the spare pool (spare-files.ts), a large one (or any, with reuse off) is unlinked, a file
// already gone is no error, and the removals' directory fsyncs are owed until close().
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QueueStore, type EnvelopeDraft } from '../../src/queue/index.js';
import { SPARE_MAX_BYTES } from '../../src/queue/spare-files.js';

const dir = mkdtempSync(join(tmpdir(), 'tsubame-retire-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const draft: EnvelopeDraft = {
  channel: 'tcp_local', from: 'a@example.org', mailParams: {}, sourceChannel: 'l', clientAddress: null, clientHelo: null, arrival: new Date(),
  recipients: [{ address: 'b@remote.test', original: 'b@remote.test', orcpt: null, notify: null, state: 'pending', status: null }],
};

function storeIn(name: string, bootId: string | null): QueueStore {
  return new QueueStore({ queueDir: join(dir, name, 'queue'), corruptDir: join(dir, name, 'corrupt'), subdirs: () => 0, bootId });
}

test('small files become spares, large ones are unlinked, gone ones are fine', async () => {
  const store = storeIn('reuse', '0f2c6d3e-2222-4a4a-9b9b-123456789abc');
  try {
    const [small] = await store.enqueue([draft], Buffer.from('Subject: s\r\n\r\nsmall\r\n'));
    const [large] = await store.enqueue([draft], Buffer.alloc(SPARE_MAX_BYTES + 1, 'x'));
    store.retire(small!.path);
    store.retire(large!.path);
    assert.equal(existsSync(small!.path), false);
    assert.equal(existsSync(large!.path), false);
    assert.equal(store.spares.countSync(), 1, 'only the small one is kept for reuse');
    assert.doesNotThrow(() => store.retire(small!.path), 'already gone');
  } finally {
    await store.close();
  }
});

test('with reuse off every retired file is unlinked', async () => {
  const store = storeIn('off', null);
  try {
    const [ref] = await store.enqueue([draft], Buffer.from('Subject: s\r\n\r\nsmall\r\n'));
    store.retire(ref!.path);
    assert.equal(existsSync(ref!.path), false);
    assert.equal(store.spares.countSync(), 0);
  } finally {
    await store.close();
  }
});
