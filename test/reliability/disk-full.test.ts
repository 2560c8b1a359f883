// Disk full and an unwritable queue, on a running instance whose queue/ is a small tmpfs:
// clients get a 4xx (and keep their message), no partial file appears in the queue, the
// messages queued before are unharmed to the byte, and once the space is back (or the file
// system writable again) the service takes mail again without a restart and the queued
// messages are delivered. Mounting needs root: run as root (CI does); any other user fails.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { waitFor } from '../helpers/instance.js';
import { fillFileSystem } from '../helpers/fill-disk.js';
import { MtaInstance, type ProcessRow } from '../helpers/running-instance.js';
import { startSmtpPeer, type SmtpPeer } from '../helpers/sim-internet.js';
import { SmtpLineClient, keepInstancePids, messageText } from './load-driver.js';

const MTA_ADDRESS = '127.0.14.10';
const PEER_ADDRESS = '127.0.14.11';
const CLIENT_ADDRESS = '127.0.14.12';
const TMPFS_SIZE = '8m';

let mta: MtaInstance;
let peer: SmtpPeer;
let queueDir = '';
let mounted = false;

before(async () => {
  assert.equal(process.getuid?.(), 0, 'the disk-full tests mount a tmpfs as the queue: run them as root (CI does)');
  peer = await startSmtpPeer({ host: PEER_ADDRESS });
  mta = await MtaInstance.create({ address: MTA_ADDRESS, service: 'MIN_PROCS=1\nMAX_PROCS=2' });
  mta.inst.write(
    'etc/imta.cnf',
    `! disk full
localhost            $U%localhost@localhost
.                    $U%$H@tcp-daemon
[]                   $U%[$L]@tcp-daemon

l
localhost

tcp_local smtp nomx daemon ${PEER_ADDRESS} port ${peer.port} backoff "PT1S"
tcp-daemon
`,
  );
  queueDir = join(mta.root, 'queue');
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE},mode=0755`, 'tmpfs', queueDir]);
  mounted = true;
  // Queued mail stays put until the test lets it go.
  const stop = await mta.imsimta(['qm', 'stop', 'tcp_local']);
  assert.equal(stop.code, 0, stop.stderr);
  const r = await mta.cli('start-msg', [], 60_000);
  assert.equal(r.code, 0, r.stderr);
  await mta.processes();
});

after(async () => {
  if (mta) await mta.cli('stop-msg', [], 60_000).catch(() => {});
  if (mounted) {
    try {
      execFileSync('umount', [queueDir]);
    } catch {
      execFileSync('umount', ['-l', queueDir]);
    }
  }
  if (mta) keepInstancePids(mta.pids, mta.root);
  await mta?.cleanup();
  await peer?.close();
});

// ----------------------------------------------------------------------------------- helpers

interface SendResult {
  /** Where the session ended: the command that got a non-2xx/3xx reply, or 'end of DATA'. */
  stage: string;
  code: number | null;
  reply: string;
  text: string;
  messageId: string;
}

let counter = 0;

/** One message in one session; `bodyLines` × ~70 bytes of body. */
async function sendOne(bodyLines: number): Promise<SendResult> {
  const messageId = `disk-${process.pid}-${++counter}@full.test`;
  const text = messageText({ messageId, from: 'full@client.test', to: 'someone@remote.test', n: counter, bodyLines });
  const client = await SmtpLineClient.connect(MTA_ADDRESS, mta.port, CLIENT_ADDRESS, 5000);
  try {
    const steps: Array<[string, number]> = [['greeting', 220], ['EHLO disk.full.test', 250], ['MAIL FROM:<full@client.test>', 250], ['RCPT TO:<someone@remote.test>', 250], ['DATA', 354]];
    for (const [line, want] of steps) {
      const r = line === 'greeting' ? await client.reply(10_000) : await client.command(line, 10_000);
      if (r?.code !== want) return { stage: line, code: r?.code ?? null, reply: r?.text ?? 'connection closed', text, messageId };
    }
    client.write(`${text}.\r\n`);
    const r = await client.reply(30_000);
    await client.command('QUIT', 5000);
    return { stage: 'end of DATA', code: r?.code ?? null, reply: r?.text ?? 'connection closed', text, messageId };
  } finally {
    client.close();
  }
}

/** Every queued file under queue/ (the filler and the stopped-channels list aside), relative path → contents. */
function queueContents(): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      // queue/.spare holds files of delivered mail kept for reuse, not mail
      if (e.isDirectory()) {
        if (e.name !== '.spare') walk(p);
      } else if (e.name !== FILLER_NAME && e.name !== '.stopped-channels') out.set(relative(queueDir, p), readFileSync(p));
    }
  };
  walk(queueDir);
  return out;
}

const FILLER_NAME = '.filler';

/** Fills the tmpfs with one file until ENOSPC (its last pages too). */
function fillQueueFileSystem(): string {
  const path = join(queueDir, FILLER_NAME);
  fillFileSystem(path);
  return path;
}

async function partPids(): Promise<Record<string, number | undefined>> {
  const rows: ProcessRow[] = await mta.processes();
  const of = (role: string) => rows.find((r) => r.role === role)?.pid;
  return { watcher: of('watcher'), dispatcher: of('dispatcher'), job_controller: of('job_controller') };
}

async function queuedCount(): Promise<number> {
  const r = await mta.imsimta(['qm', 'summarize', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { messages: number }).messages;
}

/** Sends a few small (buffered) and large (streamed, > 64 KB) messages at once. */
function mixedBurst(): Promise<SendResult[]> {
  return Promise.all([...Array.from({ length: 4 }, () => sendOne(10)), ...Array.from({ length: 2 }, () => sendOne(4000))]);
}

/** Lets the queued mail go, and waits until the peer has each of `ids` with its text intact and the queue is empty. */
async function deliverAndCheck(sent: SendResult[]): Promise<void> {
  const start = await mta.imsimta(['qm', 'start', 'tcp_local']);
  assert.equal(start.code, 0, start.stderr);
  await waitFor(async () => sent.every((s) => peer.transactions.some((x) => x.messageId === `<${s.messageId}>`)) && (await queuedCount()) === 0, {
    timeoutMs: 30_000,
    what: 'the queued messages to be delivered',
  });
  for (const s of sent) {
    const got = peer.transactions.filter((x) => x.messageId === `<${s.messageId}>`);
    assert.equal(got.length, 1, `${s.messageId} delivered once`);
    assert.ok(got[0]!.data.toString('latin1').endsWith(s.text), `${s.messageId} arrived intact`);
  }
  const stop = await mta.imsimta(['qm', 'stop', 'tcp_local']);
  assert.equal(stop.code, 0, stop.stderr);
}

// ------------------------------------------------------------------------------------- tests

test('disk full: 4xx at the end of DATA, nothing partial in the queue, queued mail intact, service back once space is freed', { timeout: 60_000 }, async (t) => {
  const queuedBefore = await mixedBurst();
  for (const s of queuedBefore) assert.equal(s.code, 250, `before the fill: ${s.stage} ${s.reply}`);
  const pidsBefore = await partPids();
  const snapshot = queueContents();
  assert.equal([...snapshot.keys()].filter((k) => !k.startsWith('.tmp/')).length, queuedBefore.length);

  const filler = fillQueueFileSystem();
  const refused = await mixedBurst();
  for (const s of refused) {
    assert.ok(s.code !== null && s.code >= 400 && s.code < 500, `a full disk gives a 4xx, got ${s.stage}: ${s.reply}`);
  }
  t.diagnostic(`disk full: ${refused.map((s) => `${s.stage} → ${s.reply.split('\n').pop()}`).join('; ')}`);
  assert.ok(refused.every((s) => s.stage === 'end of DATA' && /^452 4\.3\.1 /m.test(s.reply)), `452 4.3.1 at the end of DATA: ${refused.map((s) => `${s.stage}: ${s.reply}`).join(' | ')}`);

  // Nothing partial: the queue holds exactly what it held, byte for byte.
  assert.deepEqual(queueContents(), snapshot, 'the queue is unchanged by the refused messages');
  assert.equal(await queuedCount(), queuedBefore.length);

  rmSync(filler);
  const after = await mixedBurst();
  for (const s of after) assert.equal(s.code, 250, `after freeing space: ${s.stage} ${s.reply}`);
  assert.deepEqual(await partPids(), pidsBefore, 'no part was restarted');
  for (const [path, bytes] of snapshot) assert.deepEqual(queueContents().get(path), bytes, `${path} intact`);

  await deliverAndCheck([...queuedBefore, ...after]);
  assert.ok(!peer.transactions.some((x) => refused.some((s) => x.messageId === `<${s.messageId}>`)), 'no refused message was delivered');
  assert.deepEqual(existsSync(join(queueDir, '.tmp')) ? readdirSync(join(queueDir, '.tmp')) : [], [], 'nothing left in queue/.tmp');
});

test('read-only queue file system: 4xx, queued mail intact, service back after remount rw', { timeout: 60_000 }, async (t) => {
  const queuedBefore = await mixedBurst();
  for (const s of queuedBefore) assert.equal(s.code, 250, `before: ${s.stage} ${s.reply}`);
  const pidsBefore = await partPids();
  const snapshot = queueContents();

  execFileSync('mount', ['-o', 'remount,ro', queueDir]);
  let refused: SendResult[];
  try {
    refused = await mixedBurst();
    assert.deepEqual(queueContents(), snapshot, 'the queue is unchanged');
  } finally {
    execFileSync('mount', ['-o', 'remount,rw', queueDir]);
  }
  t.diagnostic(`read-only: ${refused.map((s) => `${s.stage} → ${s.reply.split('\n').pop()}`).join('; ')}`);
  for (const s of refused) {
    assert.ok(s.code !== null && s.code >= 400 && s.code < 500, `a read-only queue gives a 4xx, got ${s.stage}: ${s.reply}`);
  }

  const after = await mixedBurst();
  for (const s of after) assert.equal(s.code, 250, `after remount rw: ${s.stage} ${s.reply}`);
  assert.deepEqual(await partPids(), pidsBefore, 'no part was restarted');
  for (const [path, bytes] of snapshot) assert.deepEqual(queueContents().get(path), bytes, `${path} intact`);

  await deliverAndCheck([...queuedBefore, ...after]);
  assert.ok(!peer.transactions.some((x) => refused.some((s) => x.messageId === `<${s.messageId}>`)), 'no refused message was delivered');
  assert.deepEqual(readdirSync(join(queueDir, '.tmp')), [], 'nothing left in queue/.tmp');
});
