// Removals of delivered messages are made durable in the background: the directories noted in a
// short window get one fsync each, and nothing waits for it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DelayedDirectorySync } from '../../src/queue/removal-sync.js';

const root = mkdtempSync(join(tmpdir(), 'tsubame-removal-sync-'));
after(() => rmSync(root, { recursive: true, force: true }));

test('many removals in two directories: one fsync round per directory, after the delay', async () => {
  const a = join(root, 'a');
  const b = join(root, 'b');
  mkdirSync(a);
  mkdirSync(b);
  const sync = new DelayedDirectorySync(30);
  for (let i = 0; i < 50; i++) sync.noteFile(join(i % 2 ? a : b, `file${i}`));
  assert.equal(sync.rounds, 0, 'nothing yet: the removals of the next few milliseconds join in');
  const deadline = Date.now() + 2000;
  while (sync.rounds < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.equal(sync.rounds, 2);
  await sync.close();
});

test('a directory that is gone is reported, not thrown; close() flushes what is noted', async () => {
  const errors: string[] = [];
  const sync = new DelayedDirectorySync(60_000, (dir) => errors.push(dir));
  sync.note(join(root, 'missing'));
  sync.note(root);
  await sync.close();
  assert.deepEqual(errors, [join(root, 'missing')]);
  assert.equal(sync.rounds, 2);
});
