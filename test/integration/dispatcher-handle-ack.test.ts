// The dispatcher confirms a hand-off by Node's own acknowledgement of the passed socket (an
// internal message, emitted on the ChildProcess as 'internalMessage'), not by a report from the
// server process. This pins that Node behaviour: a Node upgrade that changes it fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';
import { waitFor } from '../helpers/instance.js';

const CHILD = `process.on('message', (m, socket) => { if (socket) socket.end('220 child\\r\\n'); });`;

test('Node acknowledges every passed socket with an internal NODE_HANDLE_ACK', async () => {
  const child = spawn(process.execPath, ['-e', CHILD], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'json' });
  const server = net.createServer({ pauseOnConnect: true });
  try {
    const events: string[] = [];
    child.on('internalMessage', (msg: { cmd?: string } | null) => {
      if (msg?.cmd === 'NODE_HANDLE_ACK') events.push('ack');
    });
    server.on('connection', (socket) => {
      events.push('send');
      child.send({ type: 'connection' }, socket, { keepOpen: true }, (err) => {
        if (!err) socket.destroy();
      });
    });
    server.listen(0, '127.0.8.1');
    await once(server, 'listening');
    const { port } = server.address() as net.AddressInfo;
    const COUNT = 5;
    // All at once: the acknowledgements must still come one per socket.
    const greetings = await Promise.all(
      Array.from({ length: COUNT }, async () => {
        const client = net.connect({ host: '127.0.8.1', port });
        let text = '';
        client.setEncoding('latin1').on('data', (d: string) => (text += d));
        await once(client, 'close');
        return text;
      }),
    );
    assert.deepEqual(greetings, Array(COUNT).fill('220 child\r\n'), 'each socket reached the child');
    const acks = () => events.filter((e) => e === 'ack').length;
    await waitFor(() => acks() === COUNT || null, { timeoutMs: 5000, what: 'one acknowledgement per passed socket' });
    assert.equal(acks(), COUNT);
    assert.equal(events.filter((e) => e === 'send').length, COUNT);
  } finally {
    server.close();
    child.kill();
  }
});
