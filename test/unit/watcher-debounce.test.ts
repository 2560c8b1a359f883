// A burst of configuration edits makes one reload: after 300 ms of quiet, at most 3 s after the burst began.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Debouncer } from '../../src/watcher/debounce.js';

test('five events within 100 ms fire once, after the quiet period', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const fired: number[] = [];
  const d = new Debouncer({ quietMs: 300, maxWaitMs: 3000 }, (n) => fired.push(n));
  for (let i = 0; i < 5; i++) {
    d.poke();
    t.mock.timers.tick(20);
  }
  assert.equal(d.pending, true);
  t.mock.timers.tick(279);
  assert.deepEqual(fired, []);
  t.mock.timers.tick(1);
  assert.deepEqual(fired, [5]);
  assert.equal(d.pending, false);
  t.mock.timers.tick(5000);
  assert.deepEqual(fired, [5]);
});

test('events that never pause still fire at maxWait, and a new burst starts afterwards', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const fired: number[] = [];
  const d = new Debouncer({ quietMs: 300, maxWaitMs: 1000 }, (n) => fired.push(n));
  for (let i = 0; i < 10; i++) {
    d.poke();
    t.mock.timers.tick(100);
  }
  assert.deepEqual(fired, [10]);
  d.poke();
  t.mock.timers.tick(300);
  assert.deepEqual(fired, [10, 1]);
});

test('cancel drops what was waiting', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const fired: number[] = [];
  const d = new Debouncer({ quietMs: 300, maxWaitMs: 1000 }, (n) => fired.push(n));
  d.poke();
  d.cancel();
  t.mock.timers.tick(2000);
  assert.deepEqual(fired, []);
  assert.equal(d.pending, false);
});
