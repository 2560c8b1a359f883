// Pure policies of the job controller: backoff, notices ages, pool/maxjobs/threaddepth limits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_BACKOFF_MS, backoffDelayMs, backoffSchedule, nextAttemptAt } from '../../src/job-controller/backoff.js';
import { batchSize, jobsToStart, jobsWanted, type ChannelDemand } from '../../src/job-controller/pool-policy.js';
import { DEFAULT_NOTICES_MS, noticeDue, noticesSchedule, returnTime } from '../../src/notices/schedule.js';

const MIN = 60_000;
const DAY = 86_400_000;

test('backoff: Messaging Server normal default 60,120,120,240,240,240,480 minutes, the last repeats', () => {
  assert.deepEqual(DEFAULT_BACKOFF_MS.map((m) => m / MIN), [60, 120, 120, 240, 240, 240, 480]);
  const s = backoffSchedule(null);
  assert.equal(backoffDelayMs(s, 1), 60 * MIN);
  assert.equal(backoffDelayMs(s, 2), 120 * MIN);
  assert.equal(backoffDelayMs(s, 4), 240 * MIN);
  assert.equal(backoffDelayMs(s, 7), 480 * MIN);
  assert.equal(backoffDelayMs(s, 8), 480 * MIN);
  assert.equal(backoffDelayMs(s, 500), 480 * MIN);
});

test('backoff: a channel schedule replaces the default; an empty one does not', () => {
  const s = backoffSchedule([1000, 5000]);
  assert.equal(backoffDelayMs(s, 1), 1000);
  assert.equal(backoffDelayMs(s, 2), 5000);
  assert.equal(backoffDelayMs(s, 3), 5000);
  assert.equal(backoffSchedule([]), DEFAULT_BACKOFF_MS);
  assert.equal(backoffDelayMs(s, 0), 1000, 'a count below 1 is the first step');
  assert.equal(nextAttemptAt(new Date(10_000), s, 2).getTime(), 15_000);
});

test('notices: default 3 6 9 12 days, channel ages win, else the l channel ages', () => {
  assert.deepEqual(DEFAULT_NOTICES_MS.map((d) => d / DAY), [3, 6, 9, 12]);
  assert.deepEqual(noticesSchedule([DAY], [2 * DAY]), [DAY]);
  assert.deepEqual(noticesSchedule(null, [2 * DAY]), [2 * DAY]);
  assert.equal(noticesSchedule(null, null), DEFAULT_NOTICES_MS);
});

test('notices: a warning at each age but the last, once; return at the last', () => {
  const n = DEFAULT_NOTICES_MS;
  assert.deepEqual(noticeDue(n, 1 * DAY, 0), { kind: 'none' });
  assert.deepEqual(noticeDue(n, 3 * DAY, 0), { kind: 'warn', warnings: 1 });
  assert.deepEqual(noticeDue(n, 4 * DAY, 1), { kind: 'none' }, 'already warned for the first age');
  assert.deepEqual(noticeDue(n, 6.5 * DAY, 1), { kind: 'warn', warnings: 2 });
  assert.deepEqual(noticeDue(n, 10 * DAY, 0), { kind: 'warn', warnings: 3 }, 'several ages passed: one warning');
  assert.deepEqual(noticeDue(n, 12 * DAY, 3), { kind: 'return' });
  assert.deepEqual(noticeDue([5000], 4000, 0), { kind: 'none' }, 'a single age only returns');
  assert.deepEqual(noticeDue([5000], 5000, 0), { kind: 'return' });
  assert.equal(returnTime(new Date(0), n).getTime(), 12 * DAY);
});

const demand = (d: Partial<ChannelDemand>): ChannelDemand => ({
  backlogMessages: 0,
  backlogRecipients: 0,
  readyMessages: 0,
  runningJobs: 0,
  threadDepth: 10,
  maxJobs: 100,
  filesPerJob: 0,
  addrsPerJob: 0,
  ...d,
});

test('pool policy: one job per threaddepth messages of backlog, at least one', () => {
  assert.equal(jobsWanted(demand({ backlogMessages: 0 })), 0);
  assert.equal(jobsWanted(demand({ backlogMessages: 1 })), 1);
  assert.equal(jobsWanted(demand({ backlogMessages: 10 })), 1);
  assert.equal(jobsWanted(demand({ backlogMessages: 11 })), 2);
  assert.equal(jobsWanted(demand({ backlogMessages: 95 })), 10);
  assert.equal(jobsWanted(demand({ backlogMessages: 95, maxJobs: 3 })), 3, 'maxjobs caps');
  assert.equal(jobsWanted(demand({ backlogMessages: 4, threadDepth: 1 })), 4);
});

test('pool policy: filesperjob / addrsperjob ask for more jobs, the larger wins, maxjobs still caps', () => {
  assert.equal(jobsWanted(demand({ backlogMessages: 8, filesPerJob: 2 })), 4);
  assert.equal(jobsWanted(demand({ backlogMessages: 2, backlogRecipients: 30, addrsPerJob: 5 })), 6);
  assert.equal(jobsWanted(demand({ backlogMessages: 8, backlogRecipients: 30, filesPerJob: 2, addrsPerJob: 5 })), 6);
  assert.equal(jobsWanted(demand({ backlogMessages: 8, filesPerJob: 1, maxJobs: 2 })), 2);
});

test('pool policy: jobs to start are within the pool JOB_LIMIT and beyond the running ones', () => {
  const d = demand({ backlogMessages: 50, readyMessages: 50 });
  assert.equal(jobsToStart(d, { jobLimit: 10, runningJobs: 0 }), 5);
  assert.equal(jobsToStart(d, { jobLimit: 2, runningJobs: 0 }), 2);
  assert.equal(jobsToStart(d, { jobLimit: 2, runningJobs: 2 }), 0, 'pool full');
  assert.equal(jobsToStart({ ...d, runningJobs: 4 }, { jobLimit: 10, runningJobs: 4 }), 1);
  assert.equal(jobsToStart({ ...d, runningJobs: 5 }, { jobLimit: 10, runningJobs: 5 }), 0, 'channel has its share');
  assert.equal(jobsToStart({ ...d, readyMessages: 0 }, { jobLimit: 10, runningJobs: 0 }), 0, 'nothing ready: no job');
  assert.equal(jobsToStart(demand({ backlogMessages: 30, readyMessages: 2, threadDepth: 1 }), { jobLimit: 10, runningJobs: 0 }), 2, 'never more jobs than ready messages');
});

test('pool policy: a job whose batch waits on slow hosts does not hold back new mail; maxjobs and the pool still bind', () => {
  // One job busy for a while with a few messages; four arrived meanwhile (backlog below threaddepth).
  const d = demand({ backlogMessages: 5, readyMessages: 4, runningJobs: 1, maxJobs: 7 });
  assert.equal(jobsToStart(d, { jobLimit: 10, runningJobs: 1 }), 0, 'a job that is not slow: the new mail waits for it');
  assert.equal(jobsToStart({ ...d, slowJobs: 1 }, { jobLimit: 10, runningJobs: 1 }), 1, 'a slow one: a second job');
  assert.equal(jobsToStart({ ...d, slowJobs: 1, maxJobs: 1 }, { jobLimit: 10, runningJobs: 1 }), 0, 'maxjobs 1');
  assert.equal(jobsToStart({ ...d, slowJobs: 1 }, { jobLimit: 1, runningJobs: 1 }), 0, 'pool full');
  assert.equal(jobsToStart({ ...d, runningJobs: 3, slowJobs: 3, backlogMessages: 40, readyMessages: 30 }, { jobLimit: 10, runningJobs: 3 }), 4, 'never beyond maxjobs 7 in all');
  assert.equal(jobsToStart({ ...d, slowJobs: 5 }, { jobLimit: 10, runningJobs: 1 }), 1, 'more slow jobs than running ones count as the running ones');
});

test('batch size: a threaddepth worth, between 1 and 100', () => {
  assert.equal(batchSize(10), 10);
  assert.equal(batchSize(0), 1);
  assert.equal(batchSize(1000), 100);
});
