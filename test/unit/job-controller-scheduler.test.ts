// The job controller's scheduler (scheduler.ts) on a plain message index, with a batch callback
// the test holds: no more jobs than the pool's JOB_LIMIT, a stopped channel gets none, a message
// waiting for its next attempt is started when it is due, and stop() waits for the batches in hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/instance.js';
import { jcInstance } from '../helpers/in-process-job-controller.js';
import { loadInstanceConfigOrThrow } from '../../src/config/load.js';
import { silentLogger } from '../../src/common/logger.js';
import { MessageIndex, type IndexedMessage } from '../../src/job-controller/message-index.js';
import { Scheduler } from '../../src/job-controller/scheduler.js';
import type { Batch } from '../../src/job-controller/deliver.js';

const msg = (id: string, dueMs = 0): IndexedMessage => ({ id, channel: 'tcp_local', path: `/q/tcp_local/ZZ${id}.00`, attempts: 0, arrivalMs: 0, dueMs, pendingRecipients: 1, domains: ['remote.test'] });

/** A scheduler over `index` for tcp_local (threaddepth 1, maxjobs 5) in a pool of JOB_LIMIT 2; batches wait until the test releases them. */
function makeScheduler(index: MessageIndex) {
  const inst = jcInstance('[POOL=DEFAULT]\nJOB_LIMIT=2\n');
  inst.write('etc/imta.cnf', inst.read('etc/imta.cnf').replace('tcp_local smtp nomx backoff "PT1H"', 'tcp_local smtp nomx threaddepth 1 maxjobs 5 backoff "PT1H"'));
  const config = loadInstanceConfigOrThrow(inst.root);
  const batches: Batch[] = [];
  const holds: Array<() => void> = [];
  let inHand = 0;
  let mostInHand = 0;
  const scheduler = new Scheduler({
    ready: index,
    config: () => config,
    deliver: async (batch) => {
      batches.push(batch);
      inHand++;
      mostInHand = Math.max(mostInHand, inHand);
      await new Promise<void>((resolve) => holds.push(resolve));
      for (const m of batch.messages) index.remove(m.id); // delivered
      inHand--;
      return 7;
    },
    onJobEnd: () => {},
    logger: silentLogger(),
    now: Date.now,
  });
  const releaseAll = () => {
    for (const h of holds.splice(0)) h();
  };
  return { scheduler, batches, releaseAll, inHand: () => inHand, mostInHand: () => mostInHand };
}

test('jobs are started within the pool’s JOB_LIMIT, each taking a batch of threaddepth, until the index is empty', async () => {
  const index = new MessageIndex(100);
  for (const id of ['A', 'B', 'C', 'D', 'E', 'F']) index.add(msg(id), Date.now());
  const s = makeScheduler(index);
  s.scheduler.kick();
  await waitFor(() => s.inHand() === 2, { what: 'two batches in hand' });
  assert.equal(s.scheduler.jobsOfPool('DEFAULT'), 2);
  assert.equal(s.scheduler.jobsOfChannel('tcp_local'), 2);
  assert.ok(s.batches.every((b) => b.messages.length === 1 && b.pool === 'DEFAULT' && b.channel.name === 'tcp_local'));
  await waitFor(
    () => {
      s.releaseAll();
      return index.size === 0;
    },
    { what: 'every message delivered' },
  );
  assert.equal(s.mostInHand(), 2, 'never more than JOB_LIMIT at once');
  assert.deepEqual(s.batches.flatMap((b) => b.messages.map((m) => m.id)).sort(), ['A', 'B', 'C', 'D', 'E', 'F']);
  await waitFor(() => s.scheduler.jobsOfPool('DEFAULT') === 0, { what: 'the jobs to end' });
  assert.deepEqual(s.scheduler.handedSoFar(), { batches: 6, messages: 6 });
});

test('a stopped channel gets no job until it is started again; stop() waits for the batch in hand', async () => {
  const index = new MessageIndex(100);
  index.add(msg('S1'), Date.now());
  const s = makeScheduler(index);
  s.scheduler.setStopped(['tcp_local']);
  s.scheduler.kick();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(s.batches.length, 0);
  assert.deepEqual(s.scheduler.stoppedChannels(), ['tcp_local']);
  s.scheduler.setStopped([]);
  s.scheduler.kick();
  await waitFor(() => s.inHand() === 1, { what: 'the batch in hand' });
  assert.equal(s.scheduler.jobRows()[0]?.in_hand, 1);
  let stopped = false;
  const stopping = s.scheduler.stop().then(() => (stopped = true));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(stopped, false, 'not before the batch in hand is done');
  s.releaseAll();
  await stopping;
  assert.equal(index.size, 0);
});

test('a message waiting for its next attempt is started when it is due, without another kick', async () => {
  const index = new MessageIndex(100);
  const dueAt = Date.now() + 150;
  index.add(msg('LATER', dueAt), Date.now());
  const s = makeScheduler(index);
  s.scheduler.kick();
  assert.equal(s.batches.length, 0);
  await waitFor(() => s.batches.length === 1, { what: 'the wake-up' });
  assert.ok(Date.now() >= dueAt, 'not before it was due');
  s.releaseAll();
  await s.scheduler.stop();
});
