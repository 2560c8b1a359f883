// The dispatcher's spawn/selection/retirement rule (reference §1.4), as a table of cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseProcess, housekeeping, sharedLimits, spawnForLoad, type ProcessState, type ServiceLimits } from '../../src/dispatcher/policy.js';

const limits: ServiceLimits = {
  minProcs: 0,
  maxProcs: 3,
  minConns: 2,
  maxConns: 4,
  maxHandoffs: 0,
  maxLifeTimeSec: 0,
  maxLifeConns: 0,
  maxIdleTimeSec: 0,
  maxShutdown: 2,
};
const T0 = 1_000_000;

function proc(id: number, open: number, extra: Partial<ProcessState> = {}): ProcessState {
  return { id, open, handoffs: 0, served: open, startedAt: T0 + id, lastActive: T0, retiring: false, ready: true, ...extra };
}

test('no process: the first connection starts one', () => {
  assert.deepEqual(chooseProcess(limits, []), { action: 'spawn' });
});

test('a process below MIN_CONNS takes the connection; the least loaded one', () => {
  assert.deepEqual(chooseProcess(limits, [proc(1, 1), proc(2, 0)]), { action: 'use', id: 2 });
  assert.deepEqual(chooseProcess(limits, [proc(1, 1)]), { action: 'use', id: 1 });
});

test('a ready process is preferred over one still starting', () => {
  assert.deepEqual(chooseProcess(limits, [proc(1, 0, { ready: false }), proc(2, 1)]), { action: 'use', id: 2 });
});

test('a process still starting can be given a connection (it waits for the process)', () => {
  assert.deepEqual(chooseProcess(limits, [proc(1, 1, { ready: false })]), { action: 'use', id: 1 });
});

test('a second process only when every process has at least MIN_CONNS', () => {
  assert.deepEqual(chooseProcess(limits, [proc(1, 2)]), { action: 'spawn' });
  assert.deepEqual(chooseProcess(limits, [proc(1, 2), proc(2, 1)]), { action: 'use', id: 2 });
});

test('never beyond MAX_PROCS: at the cap the least loaded process below MAX_CONNS takes it', () => {
  assert.deepEqual(chooseProcess(limits, [proc(1, 3), proc(2, 2), proc(3, 3)]), { action: 'use', id: 2 });
});

test('no process above MAX_CONNS: when all are full the connection waits', () => {
  assert.deepEqual(chooseProcess(limits, [proc(1, 4), proc(2, 4), proc(3, 4)]), { action: 'wait', reason: 'max_conns' });
});

test('retiring processes take no connections but still count towards MAX_PROCS', () => {
  assert.deepEqual(chooseProcess(limits, [proc(1, 0, { retiring: true }), proc(2, 2)]), { action: 'spawn' });
  assert.deepEqual(chooseProcess(limits, [proc(1, 0, { retiring: true }), proc(2, 4), proc(3, 4)]), { action: 'wait', reason: 'max_conns' });
});

test('while spawning is held back, the processes there are take connections up to MAX_CONNS', () => {
  assert.deepEqual(chooseProcess(limits, [proc(1, 2)], false), { action: 'use', id: 1 });
  assert.deepEqual(chooseProcess(limits, [proc(1, 4)], false), { action: 'wait', reason: 'max_conns' });
  assert.deepEqual(chooseProcess(limits, [], false), { action: 'wait', reason: 'max_conns' });
});

test('MAX_HANDOFFS caps the hand-offs in progress', () => {
  const l = { ...limits, maxHandoffs: 2 };
  assert.deepEqual(chooseProcess(l, [proc(1, 1, { handoffs: 2 })]), { action: 'wait', reason: 'max_handoffs' });
  assert.deepEqual(chooseProcess(l, [proc(1, 1, { handoffs: 1 })]), { action: 'use', id: 1 });
});

test('MAX_PROCS of 1 with MIN_CONNS reached: the one process takes connections up to MAX_CONNS', () => {
  const l = { ...limits, maxProcs: 1 };
  assert.deepEqual(chooseProcess(l, [proc(1, 3)]), { action: 'use', id: 1 });
  assert.deepEqual(chooseProcess(l, [proc(1, 4)]), { action: 'wait', reason: 'max_conns' });
});

test('housekeeping starts processes up to MIN_PROCS, within MAX_PROCS', () => {
  assert.deepEqual(housekeeping({ ...limits, minProcs: 2 }, [], T0), { spawn: 2, retire: [] });
  assert.deepEqual(housekeeping({ ...limits, minProcs: 2 }, [proc(1, 0)], T0), { spawn: 1, retire: [] });
  assert.deepEqual(housekeeping({ ...limits, minProcs: 5 }, [proc(1, 0)], T0), { spawn: 2, retire: [] });
  // A retiring process does not count towards MIN_PROCS, but does towards MAX_PROCS.
  assert.deepEqual(housekeeping({ ...limits, minProcs: 1 }, [proc(1, 1, { retiring: true })], T0), { spawn: 1, retire: [] });
  assert.deepEqual(housekeeping({ ...limits, minProcs: 1, maxProcs: 1 }, [proc(1, 1, { retiring: true })], T0), { spawn: 0, retire: [] });
});

test('MAX_LIFE_CONNS and MAX_LIFE_TIME retire a process', () => {
  const l = { ...limits, maxLifeConns: 10, maxLifeTimeSec: 60 };
  assert.deepEqual(housekeeping(l, [proc(1, 1, { served: 10 }), proc(2, 1, { served: 9 })], T0).retire, [{ id: 1, reason: 'life_conns' }]);
  assert.deepEqual(housekeeping(l, [proc(1, 1, { startedAt: T0 - 60_000 })], T0).retire, [{ id: 1, reason: 'life_time' }]);
  assert.deepEqual(housekeeping(l, [proc(1, 1, { startedAt: T0 - 59_000 })], T0).retire, []);
});

test('at most MAX_SHUTDOWN processes retire at once (oldest first)', () => {
  const l = { ...limits, maxLifeConns: 1, maxShutdown: 2 };
  const procs = [proc(3, 1, { startedAt: T0 + 3 }), proc(1, 1, { startedAt: T0 + 1 }), proc(2, 1, { startedAt: T0 + 2 })];
  assert.deepEqual(housekeeping(l, procs, T0 + 10).retire.map((r) => r.id), [1, 2]);
  assert.deepEqual(housekeeping(l, [...procs.slice(0, 2), { ...procs[2]!, retiring: true }], T0 + 10).retire.map((r) => r.id), [1]);
});

test('idle retirement only above MIN_PROCS and only for processes without sessions', () => {
  const l = { ...limits, minProcs: 1, maxIdleTimeSec: 10 };
  const idle = (id: number) => proc(id, 0, { lastActive: T0 - 10_000 });
  assert.deepEqual(housekeeping(l, [idle(1)], T0).retire, []);
  assert.deepEqual(housekeeping(l, [idle(1), idle(2)], T0).retire, [{ id: 1, reason: 'idle' }]);
  assert.deepEqual(housekeeping(l, [idle(1), proc(2, 1, { lastActive: T0 - 10_000 })], T0).retire, [{ id: 1, reason: 'idle' }]);
  assert.deepEqual(housekeeping(l, [proc(1, 0, { lastActive: T0 - 9_000 }), idle(2)], T0).retire, [{ id: 2, reason: 'idle' }]);
  assert.deepEqual(housekeeping({ ...l, maxIdleTimeSec: 0 }, [idle(1), idle(2)], T0).retire, []);
});

test('a process still starting is not retired', () => {
  const l = { ...limits, maxLifeConns: 1 };
  assert.deepEqual(housekeeping(l, [proc(1, 1, { served: 5, ready: false })], T0).retire, []);
});

test('shared accept: one more process once every running one holds MIN_CONNS, never while one starts, never beyond MAX_PROCS', () => {
  assert.equal(spawnForLoad(limits, [proc(1, 1)]), 0);
  assert.equal(spawnForLoad(limits, [proc(1, 2)]), 1);
  assert.equal(spawnForLoad(limits, [proc(1, 2), proc(2, 1)]), 0);
  assert.equal(spawnForLoad(limits, [proc(1, 2), proc(2, 0, { ready: false })]), 0, 'one is starting: its share is not known yet');
  assert.equal(spawnForLoad(limits, [proc(1, 4), proc(2, 4), proc(3, 4)]), 0, 'MAX_PROCS');
  // Retiring ones count towards MAX_PROCS but not among the processes that take the load.
  assert.equal(spawnForLoad(limits, [proc(1, 0, { retiring: true }), proc(2, 2)]), 1);
  assert.equal(spawnForLoad(limits, [proc(1, 0, { retiring: true }), proc(2, 2), proc(3, 3)]), 0);
  // A process that stopped accepting (MAX_LIFE_CONNS, not retired yet) takes no load: it counts as busy.
  assert.equal(spawnForLoad(limits, [proc(1, 0, { accepting: false })]), 1);
  assert.equal(spawnForLoad(limits, []), 0, 'MIN_PROCS is housekeeping’s');
});

test('shared accept runs at least one process: MIN_PROCS 0 counts as 1', () => {
  assert.equal(sharedLimits(limits).minProcs, 1);
  assert.equal(sharedLimits({ ...limits, minProcs: 3 }).minProcs, 3);
  assert.deepEqual(housekeeping(sharedLimits(limits), [], T0), { spawn: 1, retire: [] });
});
