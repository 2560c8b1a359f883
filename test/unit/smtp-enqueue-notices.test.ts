// Batched "enqueued" notices: one on its way at a time and at most one per interval, the rest
// wait and go together.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EnqueueNotices, MAX_REFS_PER_NOTICE, NOTICE_INTERVAL_MS } from '../../src/smtp-server/enqueue-notices.js';
import type { QueueRef } from '../../src/queue/types.js';

const ref = (n: number): QueueRef => ({ id: `ID${n}`, channel: 'tcp_local', path: `/q/tcp_local/ZZID${n}.00` });

/** A send function whose calls are recorded and answered only when the test says so. */
function controlledSend() {
  const calls: QueueRef[][] = [];
  const answers: Array<(ok: boolean) => void> = [];
  const send = (refs: QueueRef[]) =>
    new Promise<boolean>((resolve, reject) => {
      calls.push(refs);
      answers.push((ok) => (ok ? resolve(true) : reject(new Error('job controller down'))));
    });
  return { calls, answers, send };
}

const tick = () => new Promise((r) => setImmediate(r));

test('an idle notifier sends at once; what comes meanwhile goes in one notice after', async () => {
  const c = controlledSend();
  const notices = new EnqueueNotices(c.send, { intervalMs: 0 });
  notices.add([ref(1)]);
  assert.deepEqual(c.calls, [[ref(1)]]);
  notices.add([ref(2)]);
  notices.add([ref(3), ref(4)]);
  assert.equal(c.calls.length, 1, 'nothing more while the first is on its way');
  c.answers[0]!(true);
  await tick();
  assert.deepEqual(c.calls[1], [ref(2), ref(3), ref(4)]);
  c.answers[1]!(true);
  await notices.allSent();
  assert.equal(c.calls.length, 2);
  // Idle again: the next one leaves at once.
  notices.add([ref(5)]);
  assert.deepEqual(c.calls[2], [ref(5)]);
  c.answers[2]!(true);
  await notices.allSent();
});

test('a failed notice does not stop the next ones', async () => {
  const c = controlledSend();
  const notices = new EnqueueNotices(c.send, { intervalMs: 0 });
  notices.add([ref(1)]);
  notices.add([ref(2)]);
  c.answers[0]!(false);
  await tick();
  assert.deepEqual(c.calls[1], [ref(2)]);
  c.answers[1]!(true);
  await notices.allSent();
});

test('a large backlog is split into notices of at most MAX_REFS_PER_NOTICE', async () => {
  const sizes: number[] = [];
  const notices = new EnqueueNotices(async (refs) => void sizes.push(refs.length), { intervalMs: 0 });
  notices.add([ref(0)]);
  notices.add(Array.from({ length: MAX_REFS_PER_NOTICE + 10 }, (_, i) => ref(i + 1)));
  await notices.allSent();
  assert.deepEqual(sizes, [1, MAX_REFS_PER_NOTICE, 10]);
});

test('nothing to send: no notice', async () => {
  const c = controlledSend();
  const notices = new EnqueueNotices(c.send, { intervalMs: 0 });
  notices.add([]);
  await notices.allSent();
  assert.equal(c.calls.length, 0);
});

test('under load a notice leaves at most once per interval, with the files of that interval', async () => {
  let now = 1000;
  const sleeps: number[] = [];
  let wake: (() => void) | null = null;
  const c = controlledSend();
  const notices = new EnqueueNotices(c.send, {
    intervalMs: 10,
    now: () => now,
    sleep: (ms) => {
      sleeps.push(ms);
      return new Promise<void>((resolve) => (wake = resolve));
    },
  });
  notices.add([ref(1)]);
  assert.deepEqual(c.calls, [[ref(1)]], 'idle: at once');
  now = 1001;
  c.answers[0]!(true);
  await notices.allSent();
  notices.add([ref(2)]);
  assert.deepEqual(sleeps, [9], 'the next one waits for the rest of the interval');
  notices.add([ref(3)]);
  assert.equal(c.calls.length, 1);
  now = 1010;
  wake!();
  await tick();
  assert.deepEqual(c.calls[1], [ref(2), ref(3)]);
  c.answers[1]!(true);
  await notices.allSent();
  now = 1100;
  notices.add([ref(4)]);
  assert.deepEqual(c.calls[2], [ref(4)], 'after a quiet interval: at once again');
  c.answers[2]!(true);
  await notices.allSent();
  assert.ok(NOTICE_INTERVAL_MS > 0 && NOTICE_INTERVAL_MS <= 50, 'a delay mail does not notice');
});
