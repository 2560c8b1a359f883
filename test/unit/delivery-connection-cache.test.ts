// The connection cache shared by the jobs of a worker thread: several idle connections per host
// (one per job that used it), the most recent reused first, the least recently used one closed
// at the limit, dead ones never handed out.
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

test('two jobs to one host keep both connections; the next two batches reuse them', async () => {
  const cache = new ConnectionCache(10, 60_000);
  const t = target(1);
  let opened = 0;
  const open = async () => asSession(fakeSession(t, `c${++opened}`));
  const a = await cache.acquire(t, open);
  const b = await cache.acquire(t, open);
  cache.release(a);
  cache.release(b);
  assert.equal(cache.openCount, 2, 'the second release does not close the first connection');
  const c = await cache.acquire(t, open);
  const d = await cache.acquire(t, open);
  assert.deepEqual([c, d].map((s) => (s as unknown as Fake).name).sort(), ['c1', 'c2']);
  assert.equal(cache.stats.reused, 2);
  assert.equal(opened, 2);
  cache.closeAll();
});

test('at the limit the least recently used idle connection is closed; a dead idle one is skipped', async () => {
  const cache = new ConnectionCache(2, 60_000);
  const sessions: Fake[] = [];
  const opener = (t: Target) => async () => {
    const s = fakeSession(t, t.host);
    sessions.push(s);
    return asSession(s);
  };
  const x = await cache.acquire(target(1), opener(target(1)));
  const y = await cache.acquire(target(2), opener(target(2)));
  (x as unknown as Fake).lastUsed = 1;
  (y as unknown as Fake).lastUsed = 2;
  cache.release(x);
  cache.release(y);
  await cache.acquire(target(3), opener(target(3)));
  assert.equal(sessions[0]!.quits, 1, 'mx1 (used longest ago) was closed');
  assert.equal(sessions[1]!.quits, 0);
  assert.equal(cache.stats.evicted, 1);

  // mx2's idle connection dies while idle: the next acquire opens a new one.
  sessions[1]!.usable = false;
  const again = await cache.acquire(target(2), opener(target(2)));
  assert.notEqual(again, y);
  assert.equal(cache.stats.reused, 0);
  cache.closeAll();
});

test('idle connections are closed after the idle time', async () => {
  const cache = new ConnectionCache(5, 20);
  const t = target(4);
  const s = fakeSession(t, 'idle');
  const session = await cache.acquire(t, async () => asSession(s));
  cache.release(session);
  assert.equal(cache.openCount, 1);
  const deadline = Date.now() + 2000;
  while (cache.openCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.equal(cache.openCount, 0);
  assert.equal(s.quits, 1);
  assert.equal(cache.stats.closedIdle, 1);
});

test('a host slow to get ready: a second job waits for the busy connection instead of opening another', async () => {
  const cache = new ConnectionCache(10, 60_000);
  const t = target(5);
  let opened = 0;
  // Each new connection takes 80 ms to be ready (a late greeting).
  const slowOpen = () => new Promise<SmtpSession>((resolve) => setTimeout(() => resolve(asSession(fakeSession(t, `s${++opened}`))), 80));
  const first = await cache.acquire(t, slowOpen);
  const second = cache.acquire(t, slowOpen);
  setTimeout(() => cache.release(first), 10); // the first job's transaction ends well before a new greeting would come
  assert.equal(await second, first, 'the second job got the first connection');
  assert.equal(opened, 1);
  assert.equal(cache.stats.reused, 1);

  // Not released in time (longer than the setup took): a new connection after all.
  const third = await cache.acquire(t, slowOpen);
  assert.notEqual(third, first);
  assert.equal(opened, 2);
  cache.closeAll();
});

test('a host quick to get ready gets a second connection at once; closeAll releases a waiting job', async () => {
  const cache = new ConnectionCache(10, 60_000);
  const quick = target(6);
  let opened = 0;
  const open = async () => asSession(fakeSession(quick, `q${++opened}`));
  await cache.acquire(quick, open);
  await cache.acquire(quick, open);
  assert.equal(opened, 2, 'no waiting for a host that is ready at once');

  const slow = target(7);
  const slowOpen = () => new Promise<SmtpSession>((resolve) => setTimeout(() => resolve(asSession(fakeSession(slow, 'slow'))), 80));
  await cache.acquire(slow, slowOpen);
  const waiting = cache.acquire(slow, slowOpen);
  cache.closeAll();
  await assert.rejects(waiting, /connection cache closed/, 'a job waiting when the cache closes is not left hanging');
});
