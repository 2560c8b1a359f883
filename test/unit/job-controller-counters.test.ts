// Counter persistence of the job controller.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CounterBook, parseCounters } from '../../src/job-controller/counters.js';
import { formatCounters } from '../../src/cli/commands/counters.js';

test('counters survive a restart through their file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsubame-counters-'));
  try {
    const path = join(dir, 'counters.json');
    const book = new CounterBook(path);
    book.load();
    book.add('tcp_local', 'enqueued', 2, 3);
    book.add('tcp_local', 'delivered', 1, 2);
    book.add('l', 'returned', 1, 1);
    await book.save();
    const again = new CounterBook(path);
    again.load();
    const t = again.snapshot();
    assert.equal(t.tcp_local!.enqueued, 2);
    assert.equal(t.tcp_local!.recipients.enqueued, 3);
    assert.equal(t.tcp_local!.delivered, 1);
    assert.equal(t.l!.returned, 1);
    assert.match(readFileSync(path, 'utf8'), /"version":1/);
    writeFileSync(path, 'garbage{');
    const broken = new CounterBook(path);
    broken.load();
    assert.deepEqual(broken.snapshot(), {}, 'an unreadable file counts as zero');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('parseCounters ignores nonsense values', () => {
  const t = parseCounters(JSON.stringify({ channels: { a: { enqueued: -1, delivered: 'x', deferred: 2.7, recipients: { deferred: 4 } } } }));
  assert.deepEqual(t.a, { enqueued: 0, delivered: 0, deferred: 2, returned: 0, recipients: { enqueued: 0, delivered: 0, deferred: 4, returned: 0 } });
});

test('counters table: dashes when the job controller could not say', () => {
  const text = formatCounters({
    l: { enqueued: null, delivered: null, deferred: null, returned: null, queued: 3, held: 1, recipients: null },
    tcp_local: { enqueued: 5, delivered: 4, deferred: 1, returned: 0, queued: 0, held: 0, recipients: { enqueued: 6, delivered: 5, deferred: 1, returned: 0 } },
  });
  assert.match(text, /^CHANNEL\s+ENQUEUED\s+DELIVERED\s+DEFERRED\s+RETURNED\s+QUEUED\s+HELD\n/);
  assert.match(text, /\nl\s+-\s+-\s+-\s+-\s+3\s+1\n/);
  assert.match(text, /\ntcp_local\s+5 \(6\)\s+4 \(5\)\s+1 \(1\)\s+0 \(0\)\s+0\s+0\n/);
});
