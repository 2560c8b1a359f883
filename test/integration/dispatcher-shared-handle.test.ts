// What ACCEPT_MODE=SHARED relies on in Node, pinned (a Node upgrade that changes it fails here): a
// socket the parent bound with net._createServerHandle (as cluster does) and never listened on is
// passed to children over IPC; their server.listen(handle) makes it a listening socket whose one
// accept queue they share, and the parent accepts nothing. A child that closes its copy stops
// accepting while the others go on; with no child accepting, the parent's copy keeps the port
// listening and connections wait in the accept queue, which /proc/net/tcp shows; a child given
// the socket again takes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';
import { bindShared } from '../../src/dispatcher/shared-listener.js';
import { acceptBacklog } from '../../src/dispatcher/listen-queue.js';
import { freePort, waitFor } from '../helpers/instance.js';

const ADDRESS = '127.0.44.80';

// Each child greets with its name; `close` stops it accepting; `listen` (with the handle) starts it.
const CHILD = `
const net = require('node:net');
let server = null;
process.on('message', (m, handle) => {
  if (m.type === 'listen') {
    server = net.createServer({ pauseOnConnect: true }, (s) => s.end(process.env.NAME + '\\r\\n'));
    server.listen(handle, 511, () => process.send({ type: 'listening' }));
  } else if (m.type === 'close') {
    server.close();
    process.send({ type: 'closed' });
  }
});`;

function child(name: string): ChildProcess {
  return spawn(process.execPath, ['-e', CHILD], { env: { ...process.env, NAME: name }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'json' });
}

async function tell(c: ChildProcess, msg: { type: string }, handle?: unknown): Promise<void> {
  const answer = once(c, 'message');
  c.send(msg, handle as net.Server);
  await answer;
}

/**
 * A connection and the greeting it gets. Not answered within 20 s it is closed with what came: a
 * connection the kernel dropped from a full accept queue stays established on the client's side
 * only, waiting for a greeting that never comes (the backlog above is large enough for the test's
 * 40 at once even on a loaded machine; this bounds the test if it is not).
 */
function greet(port: number): { done: Promise<string>; socket: net.Socket } {
  const socket = net.connect({ host: ADDRESS, port });
  socket.setTimeout(20_000, () => socket.destroy());
  let text = '';
  socket.setEncoding('latin1').on('data', (d: string) => (text += d));
  socket.on('error', () => {});
  return { socket, done: once(socket, 'close').then(() => text.trim()) };
}

test('children share the accept queue of a socket the parent bound; the parent keeps it listening while none accepts', async () => {
  const port = await freePort(ADDRESS);
  const { handle } = await bindShared('TEST', { address: ADDRESS, port });
  const a = child('a');
  const b = child('b');
  try {
    await tell(a, { type: 'listen' }, handle);
    await tell(b, { type: 'listen' }, handle);
    const names = await Promise.all(Array.from({ length: 40 }, () => greet(port).done));
    assert.ok(names.every((n) => n === 'a' || n === 'b'), `every connection accepted by a child: ${names.join(' ')}`);

    // One child stops: the other takes everything.
    await tell(a, { type: 'close' });
    const onlyB = await Promise.all(Array.from({ length: 10 }, () => greet(port).done));
    assert.deepEqual(new Set(onlyB), new Set(['b']));

    // None accepts: the port still listens (the parent's copy), and connections wait in the queue.
    await tell(b, { type: 'close' });
    const waiting = [greet(port), greet(port), greet(port)];
    await waitFor(() => acceptBacklog([handle.fd]) === 3 || null, { what: 'three connections in the accept queue' });
    // Given the socket again, a child takes them.
    await tell(a, { type: 'listen' }, handle);
    assert.deepEqual(await Promise.all(waiting.map((w) => w.done)), ['a', 'a', 'a']);
    assert.equal(acceptBacklog([handle.fd]), 0);
  } finally {
    a.kill();
    b.kill();
    handle.close();
  }
});

test('binding a port another program listens on fails with the operator’s line', async () => {
  const squatter = net.createServer();
  squatter.listen(0, ADDRESS);
  await once(squatter, 'listening');
  const { port } = squatter.address() as net.AddressInfo;
  try {
    await assert.rejects(bindShared('SMTP', { address: ADDRESS, port }), new RegExp(`^Error: port ${port} on 127\\.0\\.44\\.80 is in use by another program$`));
  } finally {
    squatter.close();
  }
});
