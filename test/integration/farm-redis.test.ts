// Farm-wide shaping counters against a real redis-server (started by the test on loopback with its
// own configuration, stopped by its pid): two "nodes" (two SharedShapingCounters, each with its
// own Redis connection) never hold more connection leases together than the limit; a node that
// dies without giving its leases back loses them after FARM_LEASE_TTL; a message rate is shared
// (both together take no more than the rate); Redis killed mid-run: each node falls back on its
// share (the limit divided by FARM_NODE_COUNT) and says so once in its log, and is farm-wide
// again once Redis is back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { RedisFarmStore, SharedShapingCounters, logStoreState } from '../../src/farm/index.js';
import type { LeaseId } from '../../src/shaping/index.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/instance.js';

const HOST = '127.0.7.1';
const TTL = 10 * 60_000; // the shaper's own lease ttl (LEASE_TTL_MS)
let redis: TestRedis;
const closers: Array<() => Promise<void> | void> = [];

before(async () => {
  redis = await startRedis({ host: HOST });
});

after(async () => {
  for (const c of closers.reverse()) await c();
  await redis?.close();
});

function node(holder: string, opts: { slotTtlMs?: number; nodeCount?: number; scope?: string } = {}): { store: RedisFarmStore; counters: SharedShapingCounters } {
  const store = new RedisFarmStore(redis.url);
  const counters = new SharedShapingCounters({ store, holder, scope: opts.scope ?? 'tcp_local', nodeCount: opts.nodeCount ?? 2, slotTtlMs: opts.slotTtlMs ?? 30_000 });
  closers.push(async () => {
    counters.close();
    await store.close();
  });
  return { store, counters };
}

/** A lease of `key` within `ms` (asking as the fan-out does: when leaseWait says), or null. */
async function leaseWithin(c: SharedShapingCounters, key: string, limit: number, ms: number): Promise<LeaseId | null> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const id = c.acquireLease(key, limit, TTL, Date.now());
    if (id !== null) return id;
    const wait = c.leaseWait(key, limit, Date.now());
    await new Promise((r) => setTimeout(r, Math.min(Number.isFinite(wait) ? Math.max(wait, 5) : 50, deadline - Date.now())));
  }
  return null;
}

test('two nodes hold no more connection leases together than the limit; a released one goes to the other node', async () => {
  const a = node('n1:1');
  const b = node('n2:1');
  await waitFor(() => a.counters.shared && b.counters.shared, { what: 'both nodes to reach Redis' });
  const key = 'mx:mx.dest.test\0conn';
  const held: LeaseId[] = [];
  for (let i = 0; i < 2; i++) held.push((await leaseWithin(a.counters, key, 3, 2000))!);
  assert.ok(held.every((h) => h !== null));
  const bLease = await leaseWithin(b.counters, key, 3, 2000);
  assert.notEqual(bLease, null);
  assert.equal(await leaseWithin(b.counters, key, 3, 600), null, 'the fourth lease is refused farm-wide');
  assert.equal(await leaseWithin(a.counters, key, 3, 600), null);
  assert.equal(a.counters.leasesHeld(key, Date.now()), 3, 'a sees the farm’s three');
  a.counters.releaseLease(key, held.pop()!, Date.now());
  // a keeps the free slot a moment for its next connection, then gives it back: b gets it.
  assert.notEqual(await leaseWithin(b.counters, key, 3, 4000), null);
  assert.equal(await leaseWithin(a.counters, key, 3, 400), null);
});

test('a node that dies without giving its leases back loses them after FARM_LEASE_TTL', async () => {
  const a = node('dead:1', { slotTtlMs: 3000 });
  const b = node('live:1', { slotTtlMs: 3000 });
  await waitFor(() => a.counters.shared && b.counters.shared, { what: 'both nodes to reach Redis' });
  const key = 'mx:mx.dies.test\0conn';
  assert.notEqual(await leaseWithin(a.counters, key, 2, 2000), null);
  assert.notEqual(await leaseWithin(a.counters, key, 2, 2000), null);
  assert.equal(await leaseWithin(b.counters, key, 2, 500), null);
  await a.store.close(); // the node is gone: no release, no renewal
  const started = Date.now();
  assert.notEqual(await leaseWithin(b.counters, key, 2, 6000), null, 'the dead node’s slot expired');
  assert.ok(Date.now() - started >= 1500, 'not before its leases expired');
});

test('a message rate is shared: two nodes together take no more than the rate', async () => {
  const a = node('r1:1');
  const b = node('r2:1');
  await waitFor(() => a.counters.shared && b.counters.shared, { what: 'both nodes to reach Redis' });
  const key = 'mx:mx.rate.test\0msg';
  const interval = 1000 / 40; // 40 per second
  const burst = 2;
  let taken = 0;
  const runMs = 1500;
  const until = Date.now() + runMs;
  const pump = async (c: SharedShapingCounters) => {
    while (Date.now() < until) {
      const wait = c.take(key, interval, burst, Date.now());
      if (wait === 0) taken++;
      else await new Promise((r) => setTimeout(r, Math.min(wait, 20)));
    }
  };
  await Promise.all([pump(a.counters), pump(b.counters)]);
  const max = (runMs / interval) + burst + 4; // units granted ahead by less than a tenth of a second
  assert.ok(taken <= max, `taken ${taken} ≤ ${max}`);
  assert.ok(taken >= (runMs / interval) * 0.5, `taken ${taken}: the rate is used`);
});

test('Redis killed: each node falls back on its share, logged once; back when Redis returns', async () => {
  const lines: Array<{ level: number; msg: string }> = [];
  const logger = pino({ level: 'info' }, new Writable({ write(chunk: Buffer, _e, cb) { lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string }); cb(); } }));
  const a = node('f1:1', { nodeCount: 3 });
  logStoreState(a.store, logger, { store: redis.url, nodeCount: 3 });
  await waitFor(() => a.counters.shared, { what: 'the node to reach Redis' });
  const key = 'mx:mx.fallback.test\0conn';
  const before = await leaseWithin(a.counters, key, 6, 2000); // a connection open when Redis goes
  assert.notEqual(before, null);
  await redis.stop('SIGKILL');
  await waitFor(() => !a.counters.shared, { what: 'the node to see Redis gone' });
  // The farm's limit is 6; this node's share is 6 / FARM_NODE_COUNT = 2, one of them open already.
  const got: LeaseId[] = [];
  for (let i = 0; i < 4; i++) {
    const id = a.counters.acquireLease(key, 6, TTL, Date.now());
    if (id !== null) got.push(id);
  }
  assert.equal(got.length, 1, 'the node’s share of the limit, the connection already open counted');
  assert.equal(a.counters.leaseWait(key, 6, Date.now()), Infinity);
  // and the rate: one unit per interval × node count
  assert.equal(a.counters.take('r', 100, 1, 1_000_000), 0);
  assert.equal(a.counters.take('r', 100, 1, 1_000_100), 200, 'the rate divided by the node count');
  const warnings = () => lines.filter((l) => l.level === 40 && /unreachable/.test(l.msg));
  await waitFor(() => warnings().length === 1, { what: 'the warning' });

  await redis.start();
  await waitFor(() => a.counters.shared, { timeoutMs: 10_000, what: 'the node to reach Redis again' });
  await waitFor(() => lines.some((l) => l.level === 30 && /reached again/.test(l.msg)), { what: 'the line saying so' });
  assert.equal(warnings().length, 1, 'one warning for the whole outage');
  for (const id of [...got, before!]) a.counters.releaseLease(key, id, Date.now()); // leases of the outage go back to the local counters
  assert.notEqual(await leaseWithin(a.counters, key, 6, 2000), null, 'farm-wide again');
});
