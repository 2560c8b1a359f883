// The job controller's bounded message index.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageIndex, domainsOf, flushMatches, type IndexedMessage } from '../../src/job-controller/message-index.js';
import { SmallestN } from '../../src/job-controller/heap.js';
import { arrivalKey } from '../../src/queue/index.js';

const msg = (id: string, over: Partial<IndexedMessage> = {}): IndexedMessage => ({
  id,
  channel: 'tcp_local',
  path: `/q/tcp_local/ZZ${id}.00`,
  attempts: 0,
  arrivalMs: 0,
  dueMs: 0,
  pendingRecipients: 1,
  domains: ['example.com'],
  ...over,
});

test('index: never holds more than MAX_MESSAGES; a refused add marks it overflowed', () => {
  const idx = new MessageIndex(3);
  for (const id of ['A', 'B', 'C']) assert.equal(idx.add(msg(id), 0), true);
  assert.equal(idx.overflowed, false);
  assert.equal(idx.add(msg('D'), 0), false);
  assert.equal(idx.size, 3);
  assert.equal(idx.overflowed, true);
  assert.equal(idx.room, 0);
  assert.equal(idx.add(msg('A'), 0), false, 'a known id is not added twice');
  idx.remove('A');
  assert.equal(idx.room, 1);
  assert.equal(idx.highWater, 3);
});

test('index: a full index of deferred mail gives up its furthest-due entries, never one in flight or due', () => {
  const idx = new MessageIndex(4);
  const now = 1_000;
  idx.add(msg('soon', { attempts: 1, dueMs: now + 10 }), now);
  idx.add(msg('later', { attempts: 1, dueMs: now + 5_000 }), now);
  idx.add(msg('latest', { attempts: 2, dueMs: now + 9_000 }), now);
  idx.add(msg('due', { attempts: 1, dueMs: 0 }), now);
  assert.equal(idx.add(msg('new'), now), false, 'full');
  assert.deepEqual(idx.evictFurthestWaiting(2, now), ['latest', 'later']);
  assert.equal(idx.overflowed, true, 'the evicted ones come back with a rescan');
  assert.equal(idx.add(msg('new'), now), true);
  assert.ok(idx.has('soon') && idx.has('due') && idx.has('new'));
  assert.equal(idx.size, 3);
  assert.deepEqual(idx.evictFurthestWaiting(5, now), ['soon'], 'a due message is never evicted');
});

test('index: ready messages are taken in order, marked in flight, and come back by reschedule', () => {
  const idx = new MessageIndex(10);
  for (const id of ['A', 'B', 'C']) idx.add(msg(id), 0);
  idx.add(msg('X', { channel: 'l' }), 0);
  const first = idx.take('tcp_local', 2);
  assert.deepEqual(first.map((m) => m.id), ['A', 'B']);
  assert.deepEqual(idx.channelStats('tcp_local'), { messages: 3, recipients: 3, ready: 1, delayed: 0, inFlight: 2 });
  assert.equal(idx.get('A')!.inFlight, true);
  idx.reschedule('A', { dueMs: 1000, attempts: 1, path: '/q/tcp_local/ZYA.00' }, 0);
  assert.deepEqual(idx.channelStats('tcp_local'), { messages: 3, recipients: 3, ready: 1, delayed: 1, inFlight: 1 });
  assert.equal(idx.get('A')!.path, '/q/tcp_local/ZYA.00');
  assert.deepEqual(idx.take('tcp_local', 10).map((m) => m.id), ['C'], 'A waits for its backoff');
  idx.promoteDue(999);
  assert.deepEqual(idx.take('tcp_local', 10), []);
  assert.equal(idx.nextDueMs(), 1000);
  idx.promoteDue(1000);
  assert.deepEqual(idx.take('tcp_local', 10).map((m) => m.id), ['A']);
  assert.equal(idx.nextDueMs(), null);
  idx.remove('A');
  idx.remove('B');
  idx.remove('C');
  assert.deepEqual(idx.channels(), ['l']);
});

test('index: a message added with a future due time waits; flush makes matching ones due', () => {
  const idx = new MessageIndex(10);
  idx.add(msg('A', { dueMs: 5000, domains: ['a.example'] }), 0);
  idx.add(msg('B', { dueMs: 5000, domains: ['mx.b.example'] }), 0);
  idx.add(msg('C', { dueMs: 5000, channel: 'tcp_intranet', domains: ['c.example'] }), 0);
  assert.equal(idx.channelStats('tcp_local').delayed, 2);
  assert.equal(idx.makeDue((m) => flushMatches('a.example', m)), 1);
  assert.deepEqual(idx.take('tcp_local', 10).map((m) => m.id), ['A']);
  assert.equal(idx.makeDue((m) => flushMatches('@b.example', m)), 1);
  assert.equal(idx.makeDue((m) => flushMatches('#tcp_intranet', m)), 1);
  assert.equal(idx.makeDue((m) => flushMatches(null, m)), 0, 'nothing left waiting');
  // The stale heap items of flushed messages cause no double hand-out.
  idx.promoteDue(10_000);
  assert.deepEqual(idx.take('tcp_local', 10).map((m) => m.id), ['B']);
  assert.deepEqual(idx.take('tcp_local', 10), []);
});

test('index: removing a waiting message leaves no trace in the schedule', () => {
  const idx = new MessageIndex(10);
  idx.add(msg('A', { dueMs: 100 }), 0);
  idx.remove('A');
  assert.equal(idx.nextDueMs(), null);
  idx.promoteDue(1000);
  assert.deepEqual(idx.take('tcp_local', 10), []);
  assert.equal(idx.size, 0);
});

test('flush targets: domain exact, @domain with subdomains, #channel, all', () => {
  const m = { channel: 'tcp_local', domains: ['mail.example.com'] };
  assert.equal(flushMatches('mail.example.com', m), true);
  assert.equal(flushMatches('example.com', m), false);
  assert.equal(flushMatches('@example.com', m), true);
  assert.equal(flushMatches('@ample.com', m), false);
  assert.equal(flushMatches('#TCP_LOCAL', m), true);
  assert.equal(flushMatches('#l', m), false);
  assert.equal(flushMatches(null, m), true);
  assert.deepEqual(domainsOf(['a@X.example', 'b@x.example', 'c@[127.0.0.1]', 'nodomain']), ['x.example', '127.0.0.1']);
});

test('SmallestN keeps the oldest of a backlog bigger than the room', () => {
  const pick = new SmallestN<number>(3, (n) => n);
  for (const n of [9, 4, 7, 1, 8, 2, 6]) pick.offer(n);
  assert.deepEqual(pick.result(), [1, 2, 4]);
  assert.equal(pick.dropped, 4);
  const none = new SmallestN<number>(0, (n) => n);
  none.offer(1);
  assert.deepEqual(none.result(), []);
  assert.equal(none.dropped, 1);
});

test('arrival key: the time in a queue id, else the file time', () => {
  const t = Date.UTC(2026, 0, 1);
  const id = t.toString(36).padStart(9, '0').toUpperCase() + 'ABCDE00010AB';
  assert.equal(arrivalKey({ id, mtimeMs: 5 }), t);
  assert.equal(arrivalKey({ id: 'ZZZZZZZZZZZZ', mtimeMs: 5 }), 5);
});
