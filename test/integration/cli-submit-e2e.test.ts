// `imsimta submit` end to end on a temporary instance: routing through the rewrite rules, one
// queue file per channel, the header it completes, -t with Bcc, refused recipients, a queue that
// cannot be written, and the notice to a running job controller.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type net from 'node:net';
import { mkdirSync, writeFileSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeInstance, runCli, repoRoot, type TestInstance } from '../helpers/instance.js';
import { instancePaths } from '../../src/common/instance.js';
import { serveJsonSocket, type JsonObject } from '../../src/common/ipc-socket.js';
import { queueStoreFor, type QueueStore, type ScanEntry } from '../../src/queue/index.js';

const LOCAL_HOST = 'mail.example.test';
const IMTA_CNF = `! submit test configuration
.              $U%$H@tcp-daemon

l subdirs 2
${LOCAL_HOST}

tcp_local smtp mx
tcp-daemon

! The shipped dispatcher.cnf's submission services run as this channel.
tcp_submit submit smtp mx mustsaslserver
tcp_submit-daemon
`;

async function scanAll(store: QueueStore): Promise<ScanEntry[]> {
  const out: ScanEntry[] = [];
  for await (const e of store.scan()) out.push(e);
  return out;
}

describe('imsimta submit', () => {
  let inst: TestInstance;
  let store: QueueStore;
  let jc: net.Server;
  const jcRequests: JsonObject[] = [];

  before(async () => {
    const shipped = existsSync(join(repoRoot, 'etc', 'imta.cnf'));
    inst = makeInstance({ shipped, files: { 'etc/imta.cnf': IMTA_CNF, 'etc/option.dat': `LOCAL_HOST=${LOCAL_HOST}\n` } });
    for (const user of ['alice', 'bob']) mkdirSync(join(inst.root, 'mailbox', user, 'new'), { recursive: true });
    const paths = instancePaths(inst.root);
    store = queueStoreFor(paths, null);
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

  const submit = (args: string[], input: string | Buffer) => runCli('imsimta', ['submit', ...args], { root: inst.root, input, timeoutMs: 20_000 });

  async function newMessages(before: Set<string>): Promise<ScanEntry[]> {
    return (await scanAll(store)).filter((e) => !before.has(e.id));
  }

  test('routes each recipient, one file per channel, message bytes kept (LF → CRLF)', async () => {
    const seen = new Set((await scanAll(store)).map((e) => e.id));
    const body = Buffer.concat([
      Buffer.from('Subject: caf\xe9\nX-Test: 1\n\nline one\nbare\rcr\n', 'latin1'),
      Buffer.from([0x00, 0xff, 0x0a]),
      Buffer.alloc(1500, 0x6c),
      Buffer.from('\n..leading dot\n'),
    ]);
    const r = await submit(['-f', 'sender@example.org', '-i', 'alice', 'remote@far.example'], body);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const entries = await newMessages(seen);
    assert.deepEqual(entries.map((e) => e.channel).sort(), ['l', 'tcp_local']);
    const local = entries.find((e) => e.channel === 'l')!;
    const { envelope, body: stored } = await store.readMessage(local.path);
    assert.equal(envelope.from, 'sender@example.org');
    assert.equal(envelope.sourceChannel, 'l');
    assert.equal(envelope.mailParams.body, '8BITMIME');
    assert.deepEqual(envelope.recipients.map((x) => [x.address, x.original, x.state]), [[`alice@${LOCAL_HOST}`, 'alice', 'pending']]);
    const remote = await store.readMessage(entries.find((e) => e.channel === 'tcp_local')!.path);
    assert.deepEqual(remote.envelope.recipients.map((x) => x.address), ['remote@far.example']);
    assert.ok(remote.body.equals(stored), 'the same bytes in both files');

    const text = stored.toString('latin1');
    assert.match(text, new RegExp(`^Received: by ${LOCAL_HOST.replace(/\./g, '\\.')} \\(tsubame submit, from userid \\d+\\);\\r\\n\\t`));
    assert.match(text, /\r\nDate: [A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}\r\n/);
    assert.match(text, new RegExp(`\\r\\nMessage-ID: <[0-9A-Z]+@${LOCAL_HOST.replace(/\./g, '\\.')}>\\r\\n`));
    assert.match(text, new RegExp(`\\r\\nFrom: \\S+@${LOCAL_HOST.replace(/\./g, '\\.')}\\r\\n`));
    const expectedBody = Buffer.concat([
      Buffer.from('line one\r\nbare\rcr\r\n', 'latin1'),
      Buffer.from([0x00, 0xff, 0x0d, 0x0a]),
      Buffer.alloc(1500, 0x6c),
      Buffer.from('\r\n..leading dot\r\n'),
    ]);
    assert.ok(stored.subarray(stored.length - expectedBody.length).equals(expectedBody), 'body stored exactly, LF normalised to CRLF');
    assert.match(text, /Subject: caf\xe9\r\nX-Test: 1\r\n/);

    const notice = jcRequests.find((q) => q.op === 'enqueued');
    assert.ok(notice, 'the job controller was told');
    assert.deepEqual((notice.refs as Array<{ id: string }>).map((x) => x.id).sort(), entries.map((e) => e.id).sort());
    const log = readFileSync(join(inst.root, 'log', 'mail.log'), 'utf8');
    assert.match(log, new RegExp(` E ${local.id} l l \\d+ sender@example\\.org alice@mail\\.example\\.test `));
  });

  test('-t takes To/Cc/Bcc, drops Bcc; a refused recipient is one stderr line and exit 1, the rest queued', async () => {
    const seen = new Set((await scanAll(store)).map((e) => e.id));
    const message = 'From: Alice <alice@mail.example.test>\nTo: Bob <bob@mail.example.test>, nobody@mail.example.test\nCc: remote2@far.example\nBcc: hidden@far.example\nSubject: t\n\nhello\n';
    const r = await submit(['-t', '-oi'], message);
    assert.equal(r.code, 1);
    assert.deepEqual(r.stderr.trim().split('\n'), ['imsimta submit: <nobody@mail.example.test>: 550 5.1.1 User unknown']);
    const entries = await newMessages(seen);
    const rcpts = new Map<string, string[]>();
    for (const e of entries) rcpts.set(e.channel, (await store.readEnvelope(e.path)).recipients.map((x) => x.address));
    assert.deepEqual(rcpts.get('l'), [`bob@${LOCAL_HOST}`]);
    assert.deepEqual(rcpts.get('tcp_local')?.sort(), ['hidden@far.example', 'remote2@far.example']);
    const text = (await store.readMessage(entries[0]!.path)).body.toString('latin1');
    assert.ok(!/^Bcc:/im.test(text), 'Bcc removed');
    assert.match(text, /\r\nFrom: Alice <alice@mail\.example\.test>\r\n/);
    assert.ok(!/\r\nFrom: \S+@mail\.example\.test\r\n/.test(text), 'an existing From is kept, not added');
  });

  test('no recipients is a usage error; nothing queued', async () => {
    const before = (await scanAll(store)).length;
    const r = await submit([], 'Subject: x\n\ny\n');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no recipients/);
    assert.equal((await scanAll(store)).length, before);
  });

  test('a queue that cannot be written: exit 75 with the reason, nothing queued', async () => {
    const before = (await scanAll(store)).length;
    const tmp = join(inst.root, 'queue', '.tmp');
    rmSync(tmp, { recursive: true, force: true });
    writeFileSync(tmp, 'a file where the temporary directory should be');
    try {
      const r = await submit(['alice', 'remote@far.example'], 'Subject: x\n\ny\n');
      assert.equal(r.code, 75);
      assert.match(r.stderr, /^imsimta: message not queued: .*(ENOTDIR|EEXIST)/);
      assert.equal(r.stderr.trim().split('\n').length, 1);
      assert.equal((await scanAll(store)).length, before);
    } finally {
      rmSync(tmp, { force: true });
    }
  });
});
