// Maildir delivery on a full disk (a small tmpfs mounted by the test): a message the disk has room
// for only part of is not delivered (ENOSPC, so the local channel defers it) and nothing appears
// in new/ or stays in tmp/. A write cut short by the full disk returns a short count without an
// error; taking that for success linked a truncated message into new/. Mounting needs root: run
// as root (CI does); any other user fails.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { deliverToMaildir, ensureMaildir } from '../../src/delivery/maildir.js';
import { fillFileSystem } from '../helpers/fill-disk.js';

let dir = '';
let mounted = false;

before(() => {
  assert.equal(process.getuid?.(), 0, 'this test mounts a tmpfs: run it as root (CI does)');
  dir = mkdtempSync(join(tmpdir(), 'tsubame-maildir-full-'));
  mkdirSync(join(dir, 'fs'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', join(dir, 'fs')]);
  mounted = true;
});

after(() => {
  if (mounted) execFileSync('umount', ['-l', join(dir, 'fs')]);
  rmSync(dir, { recursive: true, force: true });
});

test('maildir on a full disk: a message that fits only in part is refused with ENOSPC, nothing in new/ or tmp/', async () => {
  const mailbox = join(dir, 'fs', 'alice');
  await ensureMaildir(mailbox);
  const reserve = join(dir, 'fs', 'reserve');
  writeFileSync(reserve, Buffer.alloc(20 * 1024, 0x7a));
  fillFileSystem(join(dir, 'fs', 'filler'));
  rmSync(reserve); // 20 KiB free: less than the message
  // The last write is the one cut short: nothing after it would meet the error.
  const body = Readable.from([Buffer.alloc(4 * 1024, 0x41), Buffer.alloc(60 * 1024, 0x42)]);
  await assert.rejects(deliverToMaildir(mailbox, 'mx.test', 'Delivered-To: alice@test\r\n', body), (err: NodeJS.ErrnoException) => err.code === 'ENOSPC');
  assert.deepEqual(readdirSync(join(mailbox, 'new')), [], 'nothing delivered');
  assert.deepEqual(readdirSync(join(mailbox, 'tmp')), [], 'nothing left in tmp/');
});
