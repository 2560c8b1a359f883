// The farm's flush relay (src/farm/flush-relay.ts) against a real redis-server started by the test
// on loopback: a flush asked of one node reaches the other, even when both were left with the same
// FARM_NODE_NAME (two nodes on one machine share the default, the host name), and the clash is
// logged once; a node never takes its own notice back; Redis stopped: each node says it is cut
// off (imsimta process shows this state) and a publish fails without blocking; Redis back: the
// relay subscribes again by itself and notices flow again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { FlushRelay, type FlushNotice } from '../../src/farm/index.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/instance.js';

const HOST = '127.0.218.1';
let redis: TestRedis;
const relays: FlushRelay[] = [];

before(async () => {
  redis = await startRedis({ host: HOST });
});

after(async () => {
  for (const r of relays) await r.close();
  await redis?.close();
});

function relay(node: string): { relay: FlushRelay; got: FlushNotice[]; lines: Array<{ level: number; msg: string }> } {
  const got: FlushNotice[] = [];
  const lines: Array<{ level: number; msg: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(l) as { level: number; msg: string });
      done();
    },
  });
  const r = new FlushRelay({ url: redis.url, node, logger: pino(sink), onFlush: (n) => got.push(n) });
  relays.push(r);
  return { relay: r, got, lines };
}

test('two nodes with the same FARM_NODE_NAME: each takes the other’s flush, never its own, and the clash is logged once', async () => {
  const a = relay('mx.same.test');
  const b = relay('mx.same.test');
  await waitFor(() => a.relay.state === 'up' && b.relay.state === 'up', { what: 'both relays to reach Redis' });
  assert.equal(await a.relay.publish('dest.test', 'etrn'), true);
  await waitFor(() => b.got.length === 1, { what: 'the other node to take the flush' });
  assert.deepEqual({ ...b.got[0], sender: undefined }, { node: 'mx.same.test', target: 'dest.test', origin: 'etrn', sender: undefined });
  assert.equal(await b.relay.publish(null, 'operator'), true);
  await waitFor(() => a.got.length === 1, { what: 'the flush of b at a' });
  assert.equal(await a.relay.publish('again.test', 'operator'), true);
  await waitFor(() => b.got.length === 2, { what: 'a second flush at b' });
  assert.equal(a.got.length, 1, 'a never took its own notices');
  assert.equal(b.got.filter((n) => n.target === null).length, 0, 'nor b its own');
  const clashes = b.lines.filter((l) => l.level === 40 && /another node is also named "mx\.same\.test"/.test(l.msg));
  assert.equal(clashes.length, 1, 'the clash is said once');
});

test('Redis stopped: the relays say they are cut off and a flush is this node’s only; Redis back: notices flow again', async () => {
  const a = relay('mx1.test');
  const b = relay('mx2.test');
  await waitFor(() => a.relay.state === 'up' && b.relay.state === 'up', { what: 'both relays to reach Redis' });
  await redis.stop('SIGKILL');
  await waitFor(() => a.relay.state === 'down' && b.relay.state === 'down', { what: 'the relays to see Redis gone' });
  assert.equal(await a.relay.publish('lost.test', 'etrn'), false);
  assert.ok(a.lines.some((l) => l.level === 40 && /could not be sent to the other nodes/.test(l.msg)));
  await redis.start();
  await waitFor(() => a.relay.state === 'up' && b.relay.state === 'up', { timeoutMs: 15_000, what: 'the relays to reach Redis again' });
  // Subscribed again: a notice published now reaches the other node.
  await waitFor(async () => (await a.relay.publish('back.test', 'etrn')) && b.got.some((n) => n.target === 'back.test'), { timeoutMs: 10_000, what: 'a flush to reach b after Redis came back' });
  assert.equal(b.got.filter((n) => n.target === 'lost.test').length, 0);
});
