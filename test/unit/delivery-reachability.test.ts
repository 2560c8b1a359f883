// The host reachability cache: how long a host stays down, and who is told when it goes down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReachabilityCache } from '../../src/delivery/reachability.js';

test('a host marked down stays down for its time, then is tried again', () => {
  let now = 1_000;
  const cache = new ReachabilityCache(() => now);
  cache.markDown('h:25', '451 4.4.2 greeting timeout', 500);
  assert.deepEqual(cache.check('h:25'), { reason: '451 4.4.2 greeting timeout', until: 1_500 });
  now = 1_499;
  assert.ok(cache.check('h:25'));
  now = 1_500;
  assert.equal(cache.check('h:25'), null);
  cache.markDown('h:25', 'x', 0);
  assert.equal(cache.check('h:25'), null, 'a zero retry time keeps nothing');
});

test('whenDown: each waiting listener is told once, with the reason; a withdrawn one is not', () => {
  const cache = new ReachabilityCache(() => 0);
  const told: string[] = [];
  cache.whenDown('h:25', (d) => told.push(`a ${d.reason}`));
  const withdraw = cache.whenDown('h:25', (d) => told.push(`b ${d.reason}`));
  cache.whenDown('other:25', (d) => told.push(`c ${d.reason}`));
  withdraw();
  cache.markDown('h:25', 'x', 0);
  assert.deepEqual(told, [], 'nothing when the host is not kept down');
  cache.markDown('h:25', 'refused', 1000);
  cache.markDown('h:25', 'refused again', 1000);
  assert.deepEqual(told, ['a refused'], 'the listener of h, once; not the withdrawn one, not the other host\'s');
});
