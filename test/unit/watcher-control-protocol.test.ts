// The watcher's control socket protocol (control.ts): requests are checked against their type
// before the watcher sees them, a line that is not one is answered with an error on the same
// connection, which goes on serving, and askWatcher gets each kind's time from one table.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type net from 'node:net';
import { exchangeLines } from '../helpers/socket-lines.js';
import { instancePaths } from '../../src/common/instance.js';
import { askWatcher } from '../../src/watcher/client.js';
import { controlTimeoutMs, parseControlRequest, serveControlSocket, type ControlReply, type ControlRequest } from '../../src/watcher/control.js';

const root = mkdtempSync(join(tmpdir(), 'tsubame-control-'));
mkdirSync(join(root, 'run'));
const paths = instancePaths(root);
let server: net.Server | null = null;
after(() => {
  server?.close();
  rmSync(root, { recursive: true, force: true });
});

/** A stand-in watcher that records what reaches it and answers every request as done. */
async function servedStandIn(): Promise<ControlRequest[]> {
  const seen: ControlRequest[] = [];
  server?.close();
  server = await serveControlSocket(paths.controlSocket, async (req): Promise<ControlReply> => {
    seen.push(req);
    return { ok: true, message: `did ${req.op}` };
  });
  return seen;
}

test('garbage and malformed requests get an error reply each and never reach the watcher; the connection goes on serving', async () => {
  const seen = await servedStandIn();
  const lines = ['}{', '[]', '{"op":"explode"}', '{"op":"stop","part":"smtp"}', '{"op":"start","part":7}', '{"part":"dispatcher"}'];
  const replies = (await exchangeLines(paths.controlSocket, lines.join('\n') + '\n{"op":"restart","part":"dispatcher"}\n', lines.length + 1)) as Array<{ ok: boolean; error?: string; message?: string }>;
  for (const [i, r] of replies.slice(0, lines.length).entries()) assert.equal(r.ok, false, `line ${i + 1} is refused`);
  assert.match(replies[0]!.error!, /not JSON/);
  assert.match(replies[2]!.error!, /unknown request "explode"/);
  assert.match(replies[3]!.error!, /unknown part "smtp" \(dispatcher or job_controller\)/);
  assert.deepEqual(replies.at(-1), { ok: true, message: 'did restart' });
  assert.deepEqual(seen, [{ op: 'restart', part: 'dispatcher' }]);
});

test('askWatcher: the reply over the socket, null when no watcher listens', async () => {
  await servedStandIn();
  assert.deepEqual(await askWatcher(paths, { op: 'stop', part: 'job_controller' }), { ok: true, message: 'did stop' });
  server!.close();
  server = null;
  assert.equal(await askWatcher(paths, { op: 'status' }), null);
});

test('parseControlRequest and the timeouts of the request kinds', () => {
  assert.deepEqual(parseControlRequest({ op: 'status', extra: 1 }), { op: 'status' });
  assert.deepEqual(parseControlRequest({ op: 'stop' }), { op: 'stop' });
  assert.throws(() => parseControlRequest(null), /not a JSON object/);
  assert.equal(controlTimeoutMs({ op: 'status' }), 10_000);
  assert.equal(controlTimeoutMs({ op: 'start' }), 60_000);
  assert.equal(controlTimeoutMs({ op: 'stop', part: 'dispatcher' }), 180_000);
  assert.equal(controlTimeoutMs({ op: 'reload' }), 180_000);
});
