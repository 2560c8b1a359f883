// What a reload changes in a running dispatcher: services added, removed and kept, the sockets
// to bind and close, refused moves, and MAX_PROCS lowered under running processes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DispatcherService } from '../../src/config/types.js';
import { planServices, targetsOf, limitsOf, type BoundListener } from '../../src/dispatcher/reload-plan.js';
import { housekeeping, type ProcessState } from '../../src/dispatcher/policy.js';

function service(name: string, ports: number[], extra: Partial<DispatcherService> = {}): DispatcherService {
  return {
    name,
    ports,
    interfaceAddress: '127.0.11.1',
    minProcs: 0,
    maxProcs: 5,
    minConns: 5,
    maxConns: 20,
    maxHandoffs: 5,
    backlog: 100,
    maxLifeTimeSec: 86400,
    maxLifeConns: 100,
    maxIdleTimeSec: 0,
    maxShutdown: 2,
    acceptMode: 'shared',
    parameters: {},
    channel: 'tcp_local',
    lmtp: false,
    file: '/i/etc/dispatcher.cnf',
    line: 1,
    ...extra,
  };
}
const bound = (svc: string, ...ports: number[]): BoundListener[] => ports.map((port) => ({ service: svc, address: '127.0.11.1', port }));

test('nothing changed: the service is kept with nothing to bind or close', () => {
  const plan = planServices(['SMTP'], bound('SMTP', 25), [service('SMTP', [25])]);
  assert.deepEqual(plan.added, []);
  assert.deepEqual(plan.removed, []);
  assert.deepEqual(plan.problems, []);
  assert.equal(plan.kept.length, 1);
  assert.deepEqual(plan.kept[0]!.bind, []);
  assert.deepEqual(plan.kept[0]!.close, []);
});

test('a port added to and one removed from a kept service', () => {
  const plan = planServices(['SMTP'], bound('SMTP', 25, 587), [service('SMTP', [25, 2525])]);
  assert.deepEqual(plan.kept[0]!.bind, [{ address: '127.0.11.1', port: 2525 }]);
  assert.deepEqual(plan.kept[0]!.close, [{ address: '127.0.11.1', port: 587 }]);
});

test('a new interface address means new sockets for every port', () => {
  const plan = planServices(['SMTP'], bound('SMTP', 25), [service('SMTP', [25], { interfaceAddress: '127.0.11.2' })]);
  assert.deepEqual(plan.kept[0]!.bind, [{ address: '127.0.11.2', port: 25 }]);
  assert.deepEqual(plan.kept[0]!.close, [{ address: '127.0.11.1', port: 25 }]);
});

test('services added and removed; names compare without case', () => {
  const plan = planServices(['SMTP', 'SUBMIT'], [...bound('SMTP', 25), ...bound('SUBMIT', 587)], [service('smtp', [25]), service('LMTP', [24])]);
  assert.deepEqual(plan.removed, ['SUBMIT']);
  assert.deepEqual(plan.added.map((s) => s.name), ['LMTP']);
  assert.deepEqual(plan.kept.map((k) => k.service.name), ['smtp']);
  assert.deepEqual(plan.problems, []);
});

test('a port that moves to another service in one reload is refused with file:line', () => {
  const plan = planServices(['SMTP', 'SUBMIT'], [...bound('SMTP', 25), ...bound('SUBMIT', 587)], [service('SMTP', [25, 587], { line: 4 })]);
  assert.equal(plan.problems.length, 1);
  assert.match(plan.problems[0]!, /^\/i\/etc\/dispatcher\.cnf:4: port 587 moves from service SUBMIT to service SMTP: restart the dispatcher/);
});

test('a port listed twice is one socket', () => {
  assert.deepEqual(targetsOf(service('SMTP', [25, 25, 26])), [
    { address: '127.0.11.1', port: 25 },
    { address: '127.0.11.1', port: 26 },
  ]);
});

test('limitsOf keeps at least one process and one connection', () => {
  const l = limitsOf(service('SMTP', [25], { maxProcs: 0, maxConns: 0, minProcs: 2 }));
  assert.equal(l.maxProcs, 1);
  assert.equal(l.maxConns, 1);
  assert.equal(l.minProcs, 2);
});

test('MAX_PROCS lowered below the running processes: the least loaded extras retire', () => {
  const limits = { ...limitsOf(service('SMTP', [25], { maxProcs: 1, maxShutdown: 5, maxLifeConns: 0, maxLifeTimeSec: 0 })) };
  const p = (id: number, open: number): ProcessState => ({ id, open, handoffs: 0, served: open, startedAt: id, lastActive: 0, retiring: false, ready: true });
  const plan = housekeeping(limits, [p(1, 3), p(2, 0), p(3, 1)], 1000);
  assert.deepEqual(plan.retire, [
    { id: 2, reason: 'max_procs' },
    { id: 3, reason: 'max_procs' },
  ]);
  assert.equal(plan.spawn, 0);
  // Already within the limit: nobody retires.
  assert.deepEqual(housekeeping({ ...limits, maxProcs: 3 }, [p(1, 3), p(2, 0), p(3, 1)], 1000).retire, []);
});

test('ACCEPT_MODE changed for a running service is refused with file:line: the dispatcher is restarted for it', () => {
  const modes = new Map([['SMTP', 'shared' as const]]);
  const plan = planServices(['SMTP'], bound('SMTP', 25), [service('SMTP', [25], { acceptMode: 'handoff', line: 7 })], modes);
  assert.deepEqual(plan.problems, ['/i/etc/dispatcher.cnf:7: ACCEPT_MODE of service SMTP changes to HANDOFF: restart the dispatcher (imsimta restart dispatcher) for this change']);
  assert.deepEqual(planServices(['SMTP'], bound('SMTP', 25), [service('SMTP', [25])], modes).problems, []);
});
