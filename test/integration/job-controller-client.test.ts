// The job controller's client on a lasting connection (the SMTP server's notices): many notices
// over one connection, a new connection after the job controller restarts, false when nobody
// listens or nobody answers.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveJsonSocket } from '../../src/common/ipc-socket.js';
import { JobControllerClient } from '../../src/job-controller/client.js';
import type { QueueRef } from '../../src/queue/types.js';

const dir = mkdtempSync(join(tmpdir(), 'tsubame-link-'));
const path = join(dir, 'job_controller.sock');
/** Server-side sockets, so that a test can cut them (net.Server.close() waits for them). */
const openSockets: net.Socket[] = [];
after(() => rmSync(dir, { recursive: true, force: true }));
const ref = (id: string): QueueRef => ({ id, channel: 'tcp_local', path: `/queue/tcp_local/ZZ${id}.00` });

function stopServer(server: net.Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  for (const s of openSockets.splice(0)) s.destroy();
  return closed;
}

/** A stand-in job controller that records requests and counts connections. */
async function fakeJobController() {
  const requests: Array<Record<string, unknown>> = [];
  const server = await serveJsonSocket(path, (req) => {
    requests.push(req);
    return { ok: true };
  });
  let connections = 0;
  server.on('connection', (socket: net.Socket) => {
    connections++;
    openSockets.push(socket);
  });
  return { requests, connections: () => connections, server };
}

test('many notices, one connection; a restarted job controller gets a new one', async () => {
  const jc = await fakeJobController();
  const link = new JobControllerClient(path, { lasting: true });
  try {
    const results = await Promise.all([1, 2, 3].map((n) => link.tell({ op: 'enqueued', refs: [ref(`A${n}`)] })));
    assert.deepEqual(results, [true, true, true]);
    assert.equal(await link.tell({ op: 'enqueued', refs: [ref('A4')] }), true);
    assert.equal(jc.connections(), 1);
    assert.deepEqual(jc.requests.map((r) => (r.refs as Array<{ id: string }>)[0]!.id), ['A1', 'A2', 'A3', 'A4']);

    // The job controller goes away (its connections with it) and comes back.
    await stopServer(jc.server);
    assert.equal(await link.tell({ op: 'enqueued', refs: [] }), false, 'nobody listens');
    const again = await fakeJobController();
    try {
      assert.equal(await link.tell({ op: 'enqueued', refs: [ref('B1')] }), true);
      assert.equal(again.connections(), 1);
    } finally {
      await stopServer(again.server);
    }
  } finally {
    link.close();
  }
});

test('a job controller that does not answer: false after the timeout, then a fresh connection', async () => {
  let connections = 0;
  let answer = false;
  const server = net.createServer((socket) => {
    connections++;
    openSockets.push(socket);
    socket.on('data', () => {
      if (answer) socket.write('{"ok":true}\n');
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const link = new JobControllerClient(path, { lasting: true, timeoutMs: () => 200 });
  try {
    assert.equal(await link.tell({ op: 'enqueued', refs: [] }), false);
    answer = true;
    assert.equal(await link.tell({ op: 'enqueued', refs: [] }), true);
    assert.equal(connections, 2, 'the silent connection was dropped');
  } finally {
    link.close();
    await stopServer(server);
  }
});

test('after close(), sends are false and nothing connects', async () => {
  const link = new JobControllerClient(path, { lasting: true });
  link.close();
  assert.equal(await link.tell({ op: 'enqueued', refs: [] }), false);
});
