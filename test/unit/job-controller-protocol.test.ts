// The job controller's socket protocol (protocol.ts): requests are checked against their type
// before the controller sees them, and a line that is not a request (not JSON, not an object, an
// unknown op, a field of the wrong type) is answered with an error on the same connection, which
// goes on serving; the timeouts of the request kinds come from one table.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type net from 'node:net';
import { jcInstance, startController } from '../helpers/in-process-job-controller.js';
import { exchangeLines } from '../helpers/socket-lines.js';
import { askJobController } from '../../src/job-controller/client.js';
import { parseJobControllerRequest, requestTimeoutMs, serveJobControllerSocket, type JobControllerRequest } from '../../src/job-controller/protocol.js';
import type { JobRunner } from '../../src/job-controller/runner.js';

/** Nothing is queued in these tests: a runner that is never asked. */
const idleRunner: JobRunner = {
  configure() {},
  threads: () => [],
  close: async () => {},
  run: async () => {
    throw new Error('no job expected');
  },
};

const servers: net.Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

/** The real job controller on a fresh instance, served on its socket as main.ts serves it; `seen` records what reached it. */
async function servedController() {
  const inst = jcInstance();
  const controller = await startController(inst, idleRunner);
  const path = join(inst.root, 'run', 'job_controller.sock');
  const seen: JobControllerRequest[] = [];
  servers.push(
    await serveJobControllerSocket(path, (req) => {
      seen.push(req);
      return controller.handle(req);
    }),
  );
  return { path, seen };
}

test('garbage and malformed requests get an error reply each, in order, and never reach the controller', async () => {
  const { path, seen } = await servedController();
  const lines = [
    'not json at all',
    '{"op":"status"', // cut short
    '[1,2,3]',
    'null',
    '"status"',
    '{}',
    '{"op":"frobnicate"}',
    '{"op":"enqueued","refs":"all of them"}',
    '{"op":"enqueued","refs":[{"id":"A1"}]}',
    '{"op":"qm","action":"hold","ids":[42]}',
    '{"op":"qm","action":"explode","ids":[]}',
    '{"op":"qm","action":"stop"}',
    '{"op":"flush","target":5}',
    '{"op":"flush","target":null,"origin":"martian"}',
  ];
  const payload = Buffer.concat([Buffer.from(lines.join('\n') + '\n'), Buffer.from([0xff, 0xfe, 0x00, 0x0a]), Buffer.from('{"op":"status"}\n')]);
  const replies = (await exchangeLines(path, payload, lines.length + 2)) as Array<{ ok: boolean; error?: string; pid?: number }>;
  const refused = replies.slice(0, lines.length + 1);
  for (const [i, r] of refused.entries()) {
    assert.equal(r.ok, false, `line ${i + 1} is refused`);
    assert.equal(typeof r.error, 'string', `line ${i + 1} says why`);
  }
  assert.match(refused[0]!.error!, /not JSON/);
  assert.match(refused[2]!.error!, /not a JSON object/);
  assert.match(refused[6]!.error!, /unknown request "frobnicate"/);
  assert.match(refused[8]!.error!, /ref channel/);
  assert.match(refused[10]!.error!, /unknown qm action "explode"/);
  assert.match(refused[12]!.error!, /target must be a string or null/);
  const status = replies.at(-1)!;
  assert.equal(status.ok, true, 'the connection goes on serving after the garbage');
  assert.equal(status.pid, process.pid);
  assert.deepEqual(seen, [{ op: 'status' }], 'only the well-formed request reached the controller');
});

test('after the garbage, the job controller answers its client on a new connection', async () => {
  const { path } = await servedController();
  await exchangeLines(path, '{"op":42}\n', 1);
  const flush = await askJobController(path, { op: 'flush', target: '#no_such_channel' });
  assert.ok(flush && 'code' in flush, 'a flush reply');
  assert.equal(flush.code, 459);
  const enqueued = await askJobController(path, { op: 'enqueued', refs: [{ id: 'NOTQUEUED1', channel: 'tcp_local', path: join(path, '..', '..', 'queue', 'tcp_local', 'ZZNOTQUEUED1.00') }] });
  assert.deepEqual(enqueued, { ok: true, admitted: 0 }, 'a notice for a file that is not there admits nothing');
});

test('parseJobControllerRequest: well-formed requests come through as their type', () => {
  assert.deepEqual(parseJobControllerRequest({ op: 'flush' }), { op: 'flush', target: null });
  assert.deepEqual(parseJobControllerRequest({ op: 'flush', target: '@example.com', origin: 'etrn', client: '192.0.2.1' }), { op: 'flush', target: '@example.com', origin: 'etrn', client: '192.0.2.1' });
  assert.deepEqual(parseJobControllerRequest({ op: 'qm', action: 'release', ids: ['ABC'] }), { op: 'qm', action: 'release', ids: ['ABC'] });
  assert.deepEqual(parseJobControllerRequest({ op: 'qm', action: 'start', channel: 'tcp_local' }), { op: 'qm', action: 'start', channel: 'tcp_local' });
  assert.deepEqual(parseJobControllerRequest({ op: 'reload', extra: true }), { op: 'reload' });
  const ref = { id: 'A', channel: 'c', path: '/q/c/ZZA.00' };
  assert.deepEqual(parseJobControllerRequest({ op: 'enqueued', refs: [{ ...ref, more: 1 }] }), { op: 'enqueued', refs: [ref] });
});

test('request timeouts come from one table: ETRN is answered sooner than the operator’s flush', () => {
  assert.equal(requestTimeoutMs({ op: 'flush', target: 'example.com', origin: 'etrn', client: '192.0.2.1' }), 5000);
  assert.equal(requestTimeoutMs({ op: 'flush', target: 'example.com' }), 15_000);
  assert.equal(requestTimeoutMs({ op: 'reload' }), 60_000);
  assert.equal(requestTimeoutMs({ op: 'status' }), 3000);
});
