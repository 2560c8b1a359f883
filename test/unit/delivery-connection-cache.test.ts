// The connection cache of a channel's fan-out: several idle connections per key, the most recent
// reused first, the least recently used one closed at the limit, dead ones never handed out, idle
// ones closed after the idle time, and every connection it closes reported (its shaping slot).
// (When a host gets a second connection is the fan-out's policy: delivery-planner.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionCache } from '../../src/delivery/connection-cache.js';
import type { SmtpSession } from '../../src/delivery/smtp-client.js';
import type { Target } from '../../src/delivery/mx.js';

const target = (n: number): Target => ({ key: `127.6.0.${n}:25`, ip: `127.6.0.${n}`, port: 25, host: `mx${n}.test`, preference: 10 });

let clock = 0;
function fakeSession(t: Target, name: string) {
  const s = { name, target: t, usable: true, lastUsed: ++clock, quits: 0, closes: 0, quit() { s.quits++; s.usable = false; }, close() { s.closes++; s.usable = false; } };
  return s;
}
type Fake = ReturnType<typeof fakeSession>;
const asSession = (f: Fake) => f as unknown as SmtpSession;
const nameOf = (s: SmtpSession | null) => (s as unknown as Fake | null)?.name ?? null;

test('two connections to one host are both kept idle and both reused', async () => {
  const closed: string[] = [];
  const cache = new ConnectionCache(10, 60_000, (s) => closed.push(nameOf(s)!));
  const t = target(1);
  let opened = 0;
  const open = async () => asSession(fakeSession(t, `c${++opened}`));
  const a = await cache.open(t.key, open);
  const b = await cache.open(t.key, open);
  cache.release(a);
  cache.release(b);
  assert.equal(cache.openCount, 2, 'the second release does not close the first connection');
  assert.equal(cache.idleConnections, 2);
  assert.ok(cache.hasIdle(t.key));
  const c = cache.takeIdle(t.key);
  const d = cache.takeIdle(t.key);
  assert.equal(cache.takeIdle(t.key), null);
  assert.deepEqual([nameOf(c), nameOf(d)], ['c2', 'c1'], 'the most recently used first');
  assert.equal(cache.stats.reused, 2);
  assert.equal(cache.busyConnections, 2);
  assert.equal(opened, 2);
  cache.closeAll();
  assert.deepEqual(closed.sort(), ['c1', 'c2'], 'each connection closed is reported once');
});

test('at the limit the least recently used idle connection is closed; a dead idle one is skipped and reported', async () => {
  const closed: string[] = [];
  const cache = new ConnectionCache(2, 60_000, (s) => closed.push(nameOf(s)!));
  const sessions: Fake[] = [];
  const opener = (t: Target) => async () => {
    const s = fakeSession(t, t.host);
    sessions.push(s);
    return asSession(s);
  };
  const x = await cache.open(target(1).key, opener(target(1)));
  const y = await cache.open(target(2).key, opener(target(2)));
  (x as unknown as Fake).lastUsed = 1;
  (y as unknown as Fake).lastUsed = 2;
  cache.release(x);
  cache.release(y);
  await cache.open(target(3).key, opener(target(3)));
  assert.equal(sessions[0]!.quits, 1, 'mx1 (used longest ago) was closed');
  assert.equal(sessions[1]!.quits, 0);
  assert.equal(cache.stats.evicted, 1);
  assert.deepEqual(closed, ['mx1.test']);

  // mx2's idle connection dies while idle: it is not handed out, and its end is reported.
  sessions[1]!.usable = false;
  assert.equal(cache.takeIdle(target(2).key), null);
  assert.deepEqual(closed, ['mx1.test', 'mx2.test']);
  assert.equal(cache.stats.reused, 0);
  // A connection in hand that broke: discarded and reported; a second discard does nothing.
  const z = await cache.open(target(2).key, opener(target(2)));
  cache.discard(z);
  cache.discard(z);
  assert.deepEqual(closed, ['mx1.test', 'mx2.test', 'mx2.test']);
  cache.closeAll();
});

test('idle connections are closed after the idle time', async () => {
  let reported = 0;
  const cache = new ConnectionCache(5, 20, () => reported++);
  const t = target(4);
  const s = fakeSession(t, 'idle');
  const session = await cache.open(t.key, async () => asSession(s));
  cache.release(session);
  assert.equal(cache.openCount, 1);
  const deadline = Date.now() + 2000;
  while (cache.openCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.equal(cache.openCount, 0);
  assert.equal(s.quits, 1);
  assert.equal(cache.stats.closedIdle, 1);
  assert.equal(reported, 1);
});

test('a connection that comes after the cache closed is closed at once; an unusable one released is closed', async () => {
  let reported = 0;
  const cache = new ConnectionCache(10, 60_000, () => reported++);
  const t = target(7);
  const broken = fakeSession(t, 'broken');
  const b = await cache.open(t.key, async () => asSession(broken));
  broken.usable = false;
  cache.release(b);
  assert.equal(broken.quits, 1);
  assert.equal(cache.openCount, 0);
  const late = fakeSession(t, 'late');
  const opening = cache.open(t.key, () => new Promise<SmtpSession>((resolve) => setTimeout(() => resolve(asSession(late)), 30)));
  cache.closeAll();
  await assert.rejects(opening, /connection cache closed/, 'a connection being opened when the cache closes is not left open');
  assert.equal(late.quits, 1);
  assert.equal(reported, 2);
  await assert.rejects(cache.open(t.key, async () => asSession(fakeSession(t, 'after'))), /connection cache closed/);
});
