// `imsimta qm` against a temporary instance: listings, hold/release/delete/return, start/stop,
// corrupt files, and the notices a running job controller gets.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type net from 'node:net';
import { writeFileSync, existsSync, readFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { makeInstance, runCli, type TestInstance } from '../helpers/instance.js';
import { instancePaths } from '../../src/common/instance.js';
import { serveJsonSocket, type JsonObject } from '../../src/common/ipc-socket.js';
import { parseMailLogLine } from '../../src/common/mail-log.js';
import { queueStoreFor, type EnvelopeDraft, type QueueRef, type QueueStore } from '../../src/queue/index.js';

const IMTA_CNF = `! test configuration
example.test   $U@l-daemon
.              $U%$H@tcp-daemon

l subdirs 3
l-daemon

tcp_local smtp mx subdirs 4
tcp-daemon

bitbucket
bitbucket-daemon
`;

function draft(channel: string, recipients: string[]): EnvelopeDraft {
  return {
    channel,
    from: 'sender@example.test',
    mailParams: {},
    sourceChannel: 'tcp_intranet',
    clientAddress: '127.0.3.4',
    clientHelo: 'qm.example',
    arrival: new Date(),
    recipients: recipients.map((r) => ({ address: r, original: r, orcpt: null, notify: null, state: 'pending' as const, status: null })),
  };
}

async function qm(inst: TestInstance, ...args: string[]) {
  return runCli('imsimta', ['qm', ...args], { root: inst.root, timeoutMs: 20_000 });
}

async function directory(inst: TestInstance, ...extra: string[]): Promise<Array<Record<string, unknown>>> {
  const r = await qm(inst, 'directory', '--json', ...extra);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('imsimta qm', () => {
  let inst: TestInstance;
  let store: QueueStore;
  let refs: QueueRef[];
  let jc: net.Server;
  const jcRequests: JsonObject[] = [];

  before(async () => {
    inst = makeInstance({ files: { 'etc/imta.cnf': IMTA_CNF } });
    const paths = instancePaths(inst.root);
    store = queueStoreFor(paths, null);
    refs = [
      ...(await store.enqueue([draft('tcp_local', ['a@remote.example', 'b@remote.example'])], Buffer.from('Subject: one\r\n\r\n1\r\n'))),
      ...(await store.enqueue([draft('tcp_local', ['c@remote.example'])], Buffer.from('Subject: two\r\n\r\n22\r\n'))),
      ...(await store.enqueue([draft('l', ['local1'])], Buffer.from('Subject: three\r\n\r\n333\r\n'))),
    ];
    // a stand-in job controller on the real socket, recording what qm tells it
    jc = await serveJsonSocket(paths.jobControllerSocket, (req) => {
      jcRequests.push(req);
      return { ok: true };
    });
  });
  after(async () => {
    await new Promise<void>((r) => jc.close(() => r()));
    await store.close();
    inst.remove();
  });

  test('directory --json lists every message with the contract fields', async () => {
    const rows = await directory(inst);
    assert.equal(rows.length, 3);
    const first = rows.find((r) => r.id === refs[0]!.id)!;
    assert.deepEqual(
      { ...first, arrival: undefined },
      {
        id: refs[0]!.id, channel: 'tcp_local', from: 'sender@example.test', recipients: ['a@remote.example', 'b@remote.example'], attempts: 0, next_attempt: null, held: false, size: 19, arrival: undefined, source_channel: 'tcp_intranet',
        last_error: null, recipient_status: [{ address: 'a@remote.example', status: null }, { address: 'b@remote.example', status: null }], channel_stopped: false,
      },
    );
    assert.match(String(first.arrival), /^\d{4}-\d\d-\d\dT/);
    assert.deepEqual((await directory(inst, 'l')).map((r) => r.id), [refs[2]!.id]);
    const text = await qm(inst, 'directory');
    assert.equal(text.code, 0);
    assert.match(text.stdout, new RegExp(`${refs[1]!.id}\\s+tcp_local\\s+20\\s+0`));
    assert.match(text.stdout, /to <c@remote\.example>/);
  });

  test('summarize --json has the contract shape and counts', async () => {
    const r = await qm(inst, 'summarize', '--json');
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as { channels: Array<Record<string, unknown>>; messages: number; recipients: number; held: number };
    assert.deepEqual(Object.keys(s).sort(), ['channels', 'held', 'messages', 'recipients']);
    assert.equal(s.messages, 3);
    assert.equal(s.recipients, 4);
    assert.equal(s.held, 0);
    const tcp = s.channels.find((c) => c.name === 'tcp_local')!;
    assert.deepEqual(tcp, { name: 'tcp_local', messages: 2, recipients: 3, held: 0, stopped: false });
    const text = await qm(inst, 'summarize');
    assert.match(text.stdout, /^Total\s+3\s+4\s+0$/m);
  });

  test('hold and release change what directory shows, and the job controller is told', async () => {
    const id = refs[0]!.id;
    const held = await qm(inst, 'hold', id.toLowerCase());
    assert.equal(held.code, 0, held.stderr);
    assert.equal((await directory(inst)).find((r) => r.id === id)?.held, true);
    assert.equal(JSON.parse((await qm(inst, 'summarize', '--json')).stdout).held, 1);
    assert.deepEqual(jcRequests.at(-1), { op: 'qm', action: 'hold', ids: [id] });

    const released = await qm(inst, 'release', id);
    assert.equal(released.code, 0, released.stderr);
    assert.equal((await directory(inst)).find((r) => r.id === id)?.held, false);
    assert.deepEqual(jcRequests.at(-1), { op: 'qm', action: 'release', ids: [id] });
  });

  test('return marks every pending recipient failed for the job controller to bounce', async () => {
    const id = refs[1]!.id;
    await qm(inst, 'hold', id);
    const r = await qm(inst, 'return', id);
    assert.equal(r.code, 0, r.stderr);
    const row = (await directory(inst)).find((x) => x.id === id)!;
    assert.deepEqual(row.recipients, []);
    assert.equal(row.held, false, 'a returned message is released so that the notice goes out');
    const entry = (await store.findById(id))!;
    const env = await store.readEnvelope(entry.path);
    assert.deepEqual(env.recipients.map((x) => [x.state, x.status]), [['failed', '5.0.0 returned by the postmaster']]);
    assert.deepEqual(jcRequests.at(-1), { op: 'qm', action: 'return', ids: [id] });
  });

  test('delete removes the message; unknown ids are one line on stderr and exit 1', async () => {
    const id = refs[2]!.id;
    const r = await qm(inst, 'delete', id, 'ZZZZNOSUCHID0000');
    assert.equal(r.code, 1);
    const lines = r.stderr.trim().split('\n').filter((l) => !l.includes('configuration not loaded')); // config loading is not this test's business
    assert.deepEqual(lines, ['imsimta qm: no queued message with id ZZZZNOSUCHID0000']);
    assert.ok(!(await directory(inst)).some((x) => x.id === id));
    assert.deepEqual(jcRequests.at(-1), { op: 'qm', action: 'delete', ids: [id] });
    // mail.log says so, as for every other way out of the queue: an X record per recipient.
    const records = readFileSync(join(inst.root, 'log', 'mail.log'), 'utf8').split('\n').map(parseMailLogLine).filter((x) => x?.id === id);
    assert.deepEqual(
      records.map((x) => [x!.event, x!.source, x!.destination, x!.from, x!.recipient, x!.status]),
      [['X', 'tcp_intranet', 'l', 'sender@example.test', 'local1', 'deleted by the operator (imsimta qm delete)']],
    );
  });

  test('stop and start a channel persist in queue/.stopped-channels (not in run/, which stop-msg leaves empty)', async () => {
    const file = join(inst.root, 'queue', '.stopped-channels');
    const stop = await qm(inst, 'stop', 'tcp_local');
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal(readFileSync(file, 'utf8'), 'tcp_local\n');
    assert.deepEqual(jcRequests.at(-1), { op: 'qm', action: 'stop', channel: 'tcp_local' });
    const s = JSON.parse((await qm(inst, 'summarize', '--json')).stdout) as { channels: Array<{ name: string; stopped: boolean }> };
    assert.equal(s.channels.find((c) => c.name === 'tcp_local')?.stopped, true);
    assert.equal((await qm(inst, 'start', 'tcp_local')).code, 0);
    assert.equal(readFileSync(file, 'utf8'), '');
    assert.ok(!existsSync(join(inst.root, 'run', 'stopped-channels')));
    // A list an earlier version left in run/ is still honoured, and moved at the next change.
    mkdirSync(join(inst.root, 'run'), { recursive: true });
    writeFileSync(join(inst.root, 'run', 'stopped-channels'), 'tcp_local\n');
    rmSync(file);
    const legacy = JSON.parse((await qm(inst, 'summarize', '--json')).stdout) as { channels: Array<{ name: string; stopped: boolean }> };
    assert.equal(legacy.channels.find((c) => c.name === 'tcp_local')?.stopped, true);
    assert.equal((await qm(inst, 'stop', 'l')).code, 0);
    assert.equal(readFileSync(file, 'utf8'), 'l\ntcp_local\n');
    assert.ok(!existsSync(join(inst.root, 'run', 'stopped-channels')), 'moved out of run/');
    assert.equal((await qm(inst, 'start', 'l')).code, 0);
    assert.equal((await qm(inst, 'start', 'tcp_local')).code, 0);
    const bad = await qm(inst, 'stop', 'no_such_channel');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /no channel named "no_such_channel"/);
  });

  test('directory shows why a message waits (its last error), and "channel stopped" instead of "now" on a stopped channel', async () => {
    const entry = (await store.findById(refs[0]!.id))!;
    const envelope = await store.readEnvelope(entry.path);
    const refused = '451 4.4.1 connect to mx.remote.example[192.0.2.25]:25: Connection refused';
    const full = '452 4.2.2 mailbox full (in reply to RCPT TO)';
    envelope.recipients = envelope.recipients.map((r, i) => ({ ...r, status: i === 0 ? refused : full }));
    const next = new Date(Date.now() + 3600_000);
    await store.update({ id: entry.id, channel: entry.channel, path: entry.path }, { ...envelope, attempts: 1, nextAttempt: next });
    const row = (await directory(inst)).find((r) => r.id === refs[0]!.id)!;
    assert.equal(row.last_error, refused);
    assert.deepEqual(row.recipient_status, [{ address: 'a@remote.example', status: refused }, { address: 'b@remote.example', status: full }]);
    assert.equal(row.channel_stopped, false);
    let text = (await qm(inst, 'directory', 'tcp_local')).stdout;
    assert.ok(text.includes(`    (${refused})\n      to <a@remote.example>\n    (${full})\n      to <b@remote.example>`), text);

    assert.equal((await qm(inst, 'stop', 'tcp_local')).code, 0);
    try {
      const rows = await directory(inst, 'tcp_local');
      assert.ok(rows.length > 0 && rows.every((r) => r.channel_stopped === true));
      assert.equal(rows.find((r) => r.id === refs[0]!.id)!.next_attempt, next.toISOString(), 'the contract field is unchanged');
      text = (await qm(inst, 'directory', 'tcp_local')).stdout;
      assert.match(text, new RegExp(`${refs[0]!.id}\\s+tcp_local\\s+19\\s+1\\s+\\S+ \\S+\\s+channel stopped \\(qm start\\)\\n`));
      assert.doesNotMatch(text, /\snow\n/);
    } finally {
      assert.equal((await qm(inst, 'start', 'tcp_local')).code, 0);
    }
  });

  test('corrupt files are set aside by a listing and reported by qm corrupt', async () => {
    const junk = join(inst.root, 'queue', 'tcp_local', 'ZZ00000000GARBAGE.00');
    writeFileSync(junk, 'this is not a queue file\n');
    const rows = await directory(inst);
    assert.ok(!rows.some((r) => r.id === '00000000GARBAGE'));
    assert.ok(!existsSync(junk));
    const r = await qm(inst, 'corrupt', '--json');
    assert.equal(r.code, 0, r.stderr);
    const list = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(list, [{ name: 'ZZ00000000GARBAGE.00', reason: 'not a tsubame queue file (no version line)', original_path: junk }]);
  });

  test('works without a running job controller, and bad usage exits 2', async () => {
    const other = makeInstance({ files: { 'etc/imta.cnf': IMTA_CNF } });
    try {
      const otherStore = queueStoreFor(instancePaths(other.root), null);
      const [ref] = await otherStore.enqueue([draft('l', ['x'])], Buffer.from('x\r\n'));
      await otherStore.close();
      const r = await qm(other, 'hold', ref!.id);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await directory(other))[0]?.held, true);
      const usage = await qm(other, 'frobnicate');
      assert.equal(usage.code, 2);
      assert.match(usage.stderr, /unknown qm command "frobnicate"/);
      assert.ok(!usage.stderr.includes('    at '), 'no stack trace');
    } finally {
      other.remove();
    }
  });
});
