// The farm's pure parts: option.dat's FARM_* options (defaults, errors with file:line, the
// password kept out of messages), a node's share of a limit while Redis is unreachable, and the
// shaper asking its counters when to look again for a connection slot another node holds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { makeInstance } from '../helpers/instance.js';
import { parseOptionDat } from '../../src/config/option-dat.js';
import { redactedRedisUrl } from '../../src/config/farm-options.js';
import { defaultShapingConfig } from '../../src/config/shaping-cnf.js';
import type { Diagnostic } from '../../src/config/types.js';
import { parseFlushNotice, shareOf } from '../../src/farm/index.js';
import { LocalShapingCounters, Shaper, type ShapingCounters } from '../../src/shaping/index.js';

function options(text: string) {
  const inst = makeInstance({ files: { 'etc/option.dat': text } });
  try {
    const diagnostics: Diagnostic[] = [];
    const config = parseOptionDat(join(inst.root, 'etc/option.dat'), diagnostics);
    return { farm: config.farm!, diagnostics: diagnostics.map((d) => `${d.line}: ${d.severity}: ${d.message}`) };
  } finally {
    inst.remove();
  }
}

test('FARM_* options: defaults (no farm, LOCAL_HOST as node name, 1 node, 30 s leases) and values', () => {
  const none = options('LOCAL_HOST=mx1.example.com\n');
  assert.deepEqual(none.farm, { redisUrl: null, nodeName: 'mx1.example.com', nodeCount: 1, leaseTtlMs: 30_000 });
  assert.deepEqual(none.diagnostics, []);
  const set = options('FARM_REDIS_URL=redis://10.0.0.5:6379/2\nFARM_NODE_NAME=mx-2\nFARM_NODE_COUNT=3\nFARM_LEASE_TTL=10\n');
  assert.deepEqual(set.farm, { redisUrl: 'redis://10.0.0.5:6379/2', nodeName: 'mx-2', nodeCount: 3, leaseTtlMs: 10_000 });
  assert.deepEqual(set.diagnostics, []);
});

test('FARM_* options: errors at their line, the password never shown; warnings for options without FARM_REDIS_URL', () => {
  const bad = options('FARM_REDIS_URL=http://user:s3cret@host/\nFARM_NODE_NAME=a b\nFARM_NODE_COUNT=0\nFARM_LEASE_TTL=1\n');
  assert.equal(bad.diagnostics.filter((d) => / error: /.test(d)).length, 4, bad.diagnostics.join('\n'));
  assert.ok(bad.diagnostics[0]!.startsWith('1: error: FARM_REDIS_URL must start with redis://'), bad.diagnostics[0]);
  assert.ok(!bad.diagnostics.join('\n').includes('s3cret'));
  const lonely = options('FARM_NODE_COUNT=3\n');
  assert.deepEqual(lonely.diagnostics, ['1: warning: FARM_NODE_COUNT has no effect without FARM_REDIS_URL']);
  assert.equal(redactedRedisUrl('redis://default:pw@10.0.0.5:6379/0'), 'redis://default:***@10.0.0.5:6379/0');
  assert.equal(redactedRedisUrl('rediss://:pw@r.example/1'), 'rediss://:***@r.example/1');
  assert.equal(redactedRedisUrl('redis://10.0.0.5'), 'redis://10.0.0.5');
});

test('a node’s share of a farm-wide limit while Redis is unreachable: the limit divided by the node count, at least 1', () => {
  assert.equal(shareOf(20, 3), 6);
  assert.equal(shareOf(6, 3), 2);
  assert.equal(shareOf(2, 3), 1);
  assert.equal(shareOf(5, 1), 5);
});

test('a destination whose slots another node holds: the shaper asks again when the counters say, not only at a local close', () => {
  const T0 = Date.UTC(2026, 11, 1);
  const local = new LocalShapingCounters();
  // Counters that play a farm whose other nodes hold every slot: ask again in 200 ms.
  const farm: ShapingCounters = Object.assign(Object.create(local) as ShapingCounters, {
    leaseWait: () => 200,
    acquireLease: () => null,
  });
  const farmState = new Shaper(defaultShapingConfig(), { counters: farm }).stateFor('example.com', 'mx.example.com', T0);
  assert.equal(farmState.connectionOpened(T0), null);
  assert.equal(farmState.mayOpenConnection(T0), false);
  assert.equal(farmState.nextConnectionAt(T0), T0 + 200);
  // Local counters: a full destination waits for one of its own connections to close.
  const alone = new Shaper(defaultShapingConfig(), { counters: local });
  const s = alone.stateFor('example.com', 'mx.example.com', T0);
  const max = s.destinationClass.limits.maxConnections;
  for (let i = 0; i < max; i++) assert.ok(local.acquireLease('mx:other', max, 1000, T0) !== null);
  assert.equal(local.leaseWait('mx:other', max, T0), Infinity);
  assert.equal(local.leaseWait('mx:other', max + 1, T0), 0);
});

test('a flush notice from the Redis channel is taken only when it is one: node, target (domain, #channel, or all) and origin', () => {
  assert.deepEqual(parseFlushNotice('{"node":"mx2","target":"example.com","origin":"etrn"}'), { node: 'mx2', target: 'example.com', origin: 'etrn' });
  assert.deepEqual(parseFlushNotice('{"node":"mx2","target":null,"origin":"operator"}'), { node: 'mx2', target: null, origin: 'operator' });
  assert.deepEqual(parseFlushNotice('{"node":"mx2","target":"#tcp_local","origin":"operator"}')?.target, '#tcp_local');
  assert.equal(parseFlushNotice('{"node":"mx2","target":null,"origin":"etrn","sender":"0a1b2c3d4e5f6071"}')?.sender, '0a1b2c3d4e5f6071');
  assert.equal(parseFlushNotice('{"node":"mx2","target":null,"origin":"etrn","sender":"not hex"}'), null);
  for (const bad of ['', 'not json', 'null', '[]', '{"node":"mx2","target":"example.com"}', '{"node":"mx2","target":"a b","origin":"etrn"}', '{"node":"mx2","target":"x\\r\\nQUIT","origin":"etrn"}', `{"node":"mx2","target":"${'a'.repeat(300)}","origin":"etrn"}`, '{"node":7,"target":null,"origin":"etrn"}', '{"node":"mx2","target":null,"origin":"anyone"}']) {
    assert.equal(parseFlushNotice(bad), null, bad);
  }
});
