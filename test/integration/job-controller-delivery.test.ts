// The job controller on a running instance: immediate delivery through a tcp channel to a
// simulated peer, deferral with the channel's backoff written into the queue file, retry,
// partial delivery that never re-sends a delivered recipient, flush, and the counters CLI.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { basename } from 'node:path';
import { startSmtpPeer, type PeerOptions, type SmtpPeer } from '../helpers/sim-internet.js';
import type { MtaInstance } from '../helpers/running-instance.js';
import { createJcInstance, startMta, jcRequest, jcStatus, mailLog, queueFiles, sendMessages, waitFor } from './job-controller-harness.js';
import { queueStoreFor } from '../../src/queue/index.js';
import { instancePaths } from '../../src/common/instance.js';

const ADDRESS = '127.0.7.1';
const PEER = '127.0.7.11';

let mta: MtaInstance;
let peer: SmtpPeer;
const peerOpts: PeerOptions & { rcptReplies: NonNullable<PeerOptions['rcptReplies']> } = { host: PEER, rcptReplies: {} };

before(async () => {
  peer = await startSmtpPeer(peerOpts);
  mta = await createJcInstance({ address: ADDRESS, peer: { host: PEER, port: peer.port }, channelKeywords: 'backoff "PT1S" "PT2S"' });
  // Fast-flush destinations, so that `flush DOMAIN` retries only that domain's mail (any other domain takes the slow way: everything).
  mta.inst.write('etc/option.dat', mta.inst.read('etc/option.dat') + 'FAST_FLUSH_DOMAINS=remote.test,elsewhere.test\n');
  await startMta(mta);
});
after(async () => {
  await mta?.cleanup();
  await peer?.close();
});

const send = (subject: string, to: string[], from = 'sender@client.test') => sendMessages(ADDRESS, mta.port, [{ from, to, subject }]);
const transactionsFor = (subject: string) => peer.transactions.filter((t) => t.data.toString('latin1').includes(`Subject: ${subject}\r\n`));
const queued = () => queueFiles(mta, 'tcp_remote');

test('a new message is delivered at once and its file removed; mail.log has E then D', async () => {
  const started = Date.now();
  await send('immediate-1', ['rcpt1@remote.test']);
  const [t] = await waitFor(() => (transactionsFor('immediate-1').length ? transactionsFor('immediate-1') : null), { timeoutMs: 10_000, what: 'delivery to the peer' });
  assert.deepEqual(t!.to, ['rcpt1@remote.test']);
  assert.equal(t!.from, 'sender@client.test');
  assert.ok(Date.now() - started < 5000, 'tried at once, not at the next scan');
  await waitFor(() => queued().length === 0, { what: 'the queue file to go' });
  const log = await waitFor(() => {
    const recs = mailLog(mta).filter((r) => r.recipient === 'rcpt1@remote.test');
    return recs.some((r) => r.event === 'D') ? recs : null;
  });
  assert.deepEqual(log.map((r) => r.event), ['E', 'D']);
  assert.equal(log[1]!.destination, 'tcp_remote');
});

test('451 → deferred: attempts and next attempt in the file, retried on the backoff, delivered once the peer accepts', async () => {
  peerOpts.rcptReplies['later@remote.test'] = { code: 451, message: '4.2.0 mailbox busy, retry' };
  await send('deferred-1', ['later@remote.test']);
  const store = queueStoreFor(instancePaths(mta.root), null);
  try {
    const file = await waitFor(() => queued().find((p) => basename(p).startsWith('ZY')), { timeoutMs: 10_000, what: 'a file with one failed attempt (ZY…)' });
    const env = await store.readEnvelope(file);
    assert.equal(env.attempts, 1);
    assert.ok(env.nextAttempt, 'next attempt written to the file');
    assert.equal(env.recipients[0]!.state, 'pending');
    assert.match(env.recipients[0]!.status ?? '', /451/);
    const q = mailLog(mta).find((r) => r.event === 'Q' && r.recipient === 'later@remote.test');
    assert.ok(q, 'a Q record');
    assert.match(q.status, /451/);
    // Second failure: the second backoff step, counted in the file name.
    await waitFor(() => queued().find((p) => basename(p).startsWith('ZX')), { timeoutMs: 10_000, what: 'a second failed attempt (ZX…)' });
    const second = await store.readEnvelope(queued()[0]!);
    assert.equal(second.attempts, 2);
    const firstTry = peer.rcptCommands.filter((r) => r === 'later@remote.test').length;
    assert.ok(firstTry >= 2);
  } finally {
    await store.close();
  }
  delete peerOpts.rcptReplies['later@remote.test'];
  await waitFor(() => transactionsFor('deferred-1').length > 0, { timeoutMs: 15_000, what: 'the retry to be delivered' });
  await waitFor(() => queued().length === 0, { what: 'the file to go after delivery' });
  assert.equal(transactionsFor('deferred-1').length, 1);
});

test('partial delivery: the accepted recipient is never sent again while the other is retried', async () => {
  peerOpts.rcptReplies['part-b@remote.test'] = { code: 451, message: '4.2.1 mailbox busy' };
  await send('partial-1', ['part-a@remote.test', 'part-b@remote.test']);
  await waitFor(() => transactionsFor('partial-1').length === 1, { timeoutMs: 10_000, what: 'the first transaction' });
  // Let it be retried (and deferred) at least twice more.
  await waitFor(() => peer.rcptCommands.filter((r) => r === 'part-b@remote.test').length >= 3, { timeoutMs: 15_000, what: 'retries of the deferred recipient' });
  delete peerOpts.rcptReplies['part-b@remote.test'];
  await waitFor(() => transactionsFor('partial-1').length === 2, { timeoutMs: 15_000, what: 'the deferred recipient delivered' });
  await waitFor(() => queued().length === 0, { what: 'the file to go' });
  const txs = transactionsFor('partial-1');
  assert.deepEqual(txs.map((t) => t.to), [['part-a@remote.test'], ['part-b@remote.test']]);
  assert.equal(peer.rcptCommands.filter((r) => r === 'part-a@remote.test').length, 1, 'part-a was given to the peer once');
  // The D record is written once the peer's reply is in; poll rather than race the log write.
  const d = await waitFor(() => {
    const records = mailLog(mta).filter((r) => r.event === 'D' && r.recipient.startsWith('part-'));
    return records.length >= 2 ? records : null;
  }, { what: 'D records for both recipients' });
  assert.deepEqual(d.map((r) => r.recipient).sort(), ['part-a@remote.test', 'part-b@remote.test']);
});

test('flush: a message waiting for a long backoff is tried now', async () => {
  // A long backoff on the channel: reload the configuration of the running job controller.
  mta.inst.write('etc/imta.cnf', mta.inst.read('etc/imta.cnf').replace('backoff "PT1S" "PT2S"', 'backoff "PT1H"'));
  const reply = await jcRequest(mta, { op: 'reload' });
  assert.equal(reply?.ok, true, JSON.stringify(reply));
  peerOpts.rcptReplies['flush@remote.test'] = { code: 451, message: '4.3.0 not now' };
  await send('flush-1', ['flush@remote.test']);
  await waitFor(() => queued().some((p) => basename(p).startsWith('ZY')), { timeoutMs: 10_000, what: 'the deferral' });
  const tries = () => peer.rcptCommands.filter((r) => r === 'flush@remote.test').length;
  assert.equal(tries(), 1);
  delete peerOpts.rcptReplies['flush@remote.test'];
  const bad = await mta.imsimta(['flush', 'bad target!']);
  assert.notEqual(bad.code, 0);
  const other = await mta.imsimta(['flush', '--json', 'elsewhere.test']);
  assert.equal(other.code, 0, other.stderr);
  assert.equal(JSON.parse(other.stdout).count, 0);
  assert.equal(tries(), 1, 'a flush of another domain leaves it waiting');
  const r = await mta.imsimta(['flush', 'remote.test']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /1 message for remote\.test being tried now/);
  await waitFor(() => transactionsFor('flush-1').length === 1, { timeoutMs: 10_000, what: 'delivery after the flush' });
});

test('counters: per channel, persisted across a job controller restart; queue depth only while it is down', async () => {
  await waitFor(() => queued().length === 0);
  const get = async () => {
    const r = await mta.imsimta(['counters', '--json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Record<string, Record<string, unknown>>;
  };
  const c = await waitFor(async () => {
    const x = await get();
    return (x.tcp_remote?.delivered as number) >= 4 ? x : null;
  }, { what: 'delivered counters' });
  const remote = c.tcp_remote!;
  assert.ok((remote.enqueued as number) >= 4, JSON.stringify(remote));
  assert.ok((remote.deferred as number) >= 3, JSON.stringify(remote));
  assert.equal(remote.returned, 0);
  assert.equal(remote.queued, 0);
  assert.ok('l' in c, 'every configured channel is listed');
  const table = await mta.imsimta(['counters']);
  assert.match(table.stdout, /^CHANNEL\s+ENQUEUED/);
  assert.match(table.stdout, /\ntcp_remote\s+\d+ \(\d+\)/);

  const status = await jcStatus(mta);
  const stop = await mta.cli('stop-msg', ['job_controller'], 60_000);
  assert.equal(stop.code, 0, stop.stderr);
  peerOpts.rcptReplies['held@remote.test'] = { code: 451, message: 'x' };
  await send('while-down', ['held@remote.test']);
  const down = await mta.imsimta(['counters', '--json']);
  assert.equal(down.code, 0, down.stderr);
  assert.match(down.stderr, /not running.*queue depth/);
  const downTable = JSON.parse(down.stdout) as Record<string, Record<string, unknown>>;
  assert.equal(downTable.tcp_remote!.queued, 1);
  assert.equal(downTable.tcp_remote!.delivered, null);

  const start = await mta.cli('start-msg', ['job_controller'], 60_000);
  assert.equal(start.code, 0, start.stderr);
  const after = await get();
  assert.ok((after.tcp_remote!.delivered as number) >= (remote.delivered as number), 'not zeroed by the restart');
  assert.notEqual((await jcStatus(mta)).pid, status.pid);
  // Found by the start-up scan and tried.
  await waitFor(() => peer.rcptCommands.includes('held@remote.test'), { timeoutMs: 10_000, what: 'the start-up scan to pick up the message' });
});
