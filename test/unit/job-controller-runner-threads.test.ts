// How a pool's jobs are spread over its worker threads (runner.ts): at most one thread per CPU,
// every job of a channel in one thread (its fan-out), channels spread over the threads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deliveryCpus, sharedThreadBalancer, threadForChannel, threadPlan } from '../../src/job-controller/runner.js';

test('threads: one per CPU at most, never more than JOB_LIMIT; the jobs spread over them', () => {
  assert.deepEqual(threadPlan(10, 2), { threads: 2, jobsPerThread: 5 });
  assert.deepEqual(threadPlan(7, 2), { threads: 2, jobsPerThread: 4 });
  assert.deepEqual(threadPlan(1, 8), { threads: 1, jobsPerThread: 1 });
  assert.deepEqual(threadPlan(4, 8), { threads: 4, jobsPerThread: 1 }, 'more CPUs than jobs: a thread per job, as before');
  assert.deepEqual(threadPlan(0, 2), { threads: 1, jobsPerThread: 1 }, 'a pool always has room for one job');
  assert.deepEqual(threadPlan(3, 0), { threads: 1, jobsPerThread: 3 });
});

const worker = (id: number, currentUsage: number, extra: Partial<{ isRunningAbortableTask: boolean; terminating: boolean; destroyed: boolean }> = {}) => ({
  id,
  currentUsage,
  isRunningAbortableTask: false,
  terminating: false,
  destroyed: false,
  ...extra,
});

test('job threads leave one CPU to the SMTP servers and the job controller, and have at least one', () => {
  assert.equal(deliveryCpus(2), 1);
  assert.equal(deliveryCpus(8), 7);
  assert.equal(deliveryCpus(1), 1);
  assert.deepEqual(threadPlan(10, deliveryCpus(2)), { threads: 1, jobsPerThread: 10 });
});

test('balancer: the least busy thread below the limit; a thread with one (abortable) job counts as one', () => {
  const pick = sharedThreadBalancer(3);
  assert.equal(pick(null, [worker(1, 2), worker(2, 1)])?.id, 2);
  // piscina reports a thread running one abortable task as fully used (Infinity): it is not.
  assert.equal(pick(null, [worker(1, Infinity, { isRunningAbortableTask: true }), worker(2, 2)])?.id, 1);
  assert.equal(pick(null, [worker(1, 3), worker(2, 3)]), null, 'all threads full: piscina starts another or queues');
  assert.equal(pick(null, [worker(1, 0, { terminating: true }), worker(2, 2)])?.id, 2, 'a thread being ended gets nothing');
  assert.equal(pick(null, [worker(1, 0, { destroyed: true })]), null);
  assert.equal(pick(null, []), null);
});

test('balancer with one job per thread behaves as piscina does by default', () => {
  const pick = sharedThreadBalancer(1);
  assert.equal(pick(null, [worker(1, Infinity, { isRunningAbortableTask: true }), worker(2, 0)])?.id, 2);
  assert.equal(pick(null, [worker(1, Infinity, { isRunningAbortableTask: true })]), null);
});

test('every job of a channel runs in one thread; a new channel gets the thread with the fewest channels', () => {
  const assigned = new Map<string, number>();
  const place = (channel: string, threads: number) => {
    const t = threadForChannel(assigned, channel, threads);
    assigned.set(channel, t);
    return t;
  };
  assert.equal(place('tcp_local', 3), 0);
  assert.equal(place('tcp_local', 3), 0, 'the same thread again');
  assert.equal(place('tcp_intranet', 3), 1);
  assert.equal(place('tcp_lists', 3), 2);
  assert.equal(place('tcp_verp', 3), 0);
  assert.equal(place('tcp_intranet', 3), 1);
  // A pool made smaller (a reload): a channel whose thread is gone goes to the least loaded one left.
  assert.equal(place('tcp_lists', 2), 1, 'thread 0 has two channels, thread 1 one');
  assert.equal(threadForChannel(new Map(), 'any', 0), 0, 'a pool always has a thread');
});
