// The job controller under load on a running instance: a backlog ten times MAX_MESSAGES is all
// delivered while the index never holds more than MAX_MESSAGES; JOB_LIMIT and maxjobs bound the
// running jobs; a hung job is ended and its message retried; kill -9 of the job controller in
// the middle of a backlog loses nothing.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSmtpPeer, type SmtpPeer } from '../helpers/sim-internet.js';
import { isAlive, type MtaInstance } from '../helpers/running-instance.js';
import { createJcInstance, startMta, jcRequest, jcStatus, mailLog, queueFiles, sendMany, sendMessages, waitFor, type JcInstanceOptions } from './job-controller-harness.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

async function setup(address: string, peerHost: string, o: Partial<JcInstanceOptions> = {}, peerOpts: { greetingDelayMs?: number } = {}): Promise<{ mta: MtaInstance; peer: SmtpPeer }> {
  const peer = await startSmtpPeer({ host: peerHost, ...peerOpts });
  cleanups.push(() => peer.close());
  const mta = await createJcInstance({ address, peer: { host: peerHost, port: peer.port }, ...o });
  cleanups.push(() => mta.cleanup());
  await startMta(mta);
  return { mta, peer };
}

const subjectOf = (data: Buffer) => /^Subject: (.*)$/m.exec(data.toString('latin1'))?.[1]?.trim() ?? '';
const deliveredSubjects = (peer: SmtpPeer, prefix: string) => new Set(peer.transactions.map((t) => subjectOf(t.data)).filter((s) => s.startsWith(prefix)));

test('MAX_MESSAGES=50 with 500 queued messages: all delivered, the index never above 50', { timeout: 60_000 }, async () => {
  const { mta, peer } = await setup('127.0.7.21', '127.0.7.31', { jobControllerCnf: 'MAX_MESSAGES=50\n[POOL=DEFAULT]\nJOB_LIMIT=4\n' });
  const stop = await mta.imsimta(['qm', 'stop', 'tcp_remote']);
  assert.equal(stop.code, 0, stop.stderr);
  await sendMany('127.0.7.21', mta.port, 500, 10, (i) => ({ from: 'bulk@client.test', to: [`r${i % 7}@remote.test`], subject: `bulk-${i}` }));
  assert.equal(queueFiles(mta, 'tcp_remote').length, 500);
  const held = await jcStatus(mta);
  assert.ok(held.index.size <= 50, `index ${held.index.size}`);
  assert.equal(held.index.overflowed, true, 'it knows the disk holds more');
  assert.equal(peer.transactions.length, 0, 'a stopped channel is not scheduled');

  let biggest = 0;
  const start = await mta.imsimta(['qm', 'start', 'tcp_remote']);
  assert.equal(start.code, 0, start.stderr);
  await waitFor(
    async () => {
      const s = await jcStatus(mta);
      biggest = Math.max(biggest, s.index.size);
      return deliveredSubjects(peer, 'bulk-').size === 500 && queueFiles(mta, 'tcp_remote').length === 0;
    },
    { timeoutMs: 50_000, intervalMs: 100, what: 'all 500 messages delivered' },
  );
  const s = await jcStatus(mta);
  assert.ok(biggest <= 50, `index seen at ${biggest}`);
  assert.ok(s.index.high_water <= 50, `index high water ${s.index.high_water}`);
  assert.equal(s.index.high_water, 50, 'the index was used to its limit');
  assert.ok(s.index.scans >= 5, `rescans as room freed (${s.index.scans} scans)`);
  assert.equal(s.index.size, 0);
  assert.equal(mailLog(mta).filter((r) => r.event === 'D').length, 500);
});

test('JOB_LIMIT and maxjobs bound the running jobs and connections', { timeout: 60_000 }, async () => {
  const { mta, peer } = await setup(
    '127.0.7.22',
    '127.0.7.32',
    { channelKeywords: 'threaddepth 1 maxjobs 3', jobControllerCnf: '[POOL=DEFAULT]\nJOB_LIMIT=2\n' },
    { greetingDelayMs: 400 },
  );
  const stop = await mta.imsimta(['qm', 'stop', 'tcp_remote']);
  assert.equal(stop.code, 0, stop.stderr);
  await sendMany('127.0.7.22', mta.port, 40, 4, (i) => ({ from: 'lim@client.test', to: [`r${i}@remote.test`], subject: `limit-${i}` }));
  await mta.imsimta(['qm', 'start', 'tcp_remote']);
  let most = 0;
  let mostPool = 0;
  await waitFor(
    async () => {
      const s = await jcStatus(mta);
      most = Math.max(most, s.jobs.filter((j) => j.channel === 'tcp_remote').length);
      mostPool = Math.max(mostPool, s.pools[0]!.running);
      return deliveredSubjects(peer, 'limit-').size === 40;
    },
    { timeoutMs: 40_000, intervalMs: 25, what: 'the first 40 messages' },
  );
  assert.equal(most, 2, 'two jobs ran at once (JOB_LIMIT=2 below maxjobs 3)');
  assert.ok(mostPool <= 2);
  assert.ok(peer.maxConcurrent <= 2, `peer saw ${peer.maxConcurrent} connections at once`);
  const rows = await mta.processes();
  assert.ok(rows.some((r) => r.role === 'job_controller'));

  // maxjobs 1 on the channel now binds (pool limit raised).
  mta.inst.write('etc/imta.cnf', mta.inst.read('etc/imta.cnf').replace('maxjobs 3', 'maxjobs 1'));
  mta.inst.write('etc/job_controller.cnf', '[POOL=DEFAULT]\nJOB_LIMIT=5\n');
  assert.equal((await jcRequest(mta, { op: 'reload' }))?.ok, true);
  await mta.imsimta(['qm', 'stop', 'tcp_remote']);
  await sendMany('127.0.7.22', mta.port, 20, 4, (i) => ({ from: 'lim@client.test', to: [`s${i}@remote.test`], subject: `single-${i}` }));
  await mta.imsimta(['qm', 'start', 'tcp_remote']);
  let mostSingle = 0;
  await waitFor(
    async () => {
      const s = await jcStatus(mta);
      mostSingle = Math.max(mostSingle, s.jobs.filter((j) => j.channel === 'tcp_remote').length);
      return deliveredSubjects(peer, 'single-').size === 20;
    },
    { timeoutMs: 40_000, intervalMs: 25, what: 'the 20 messages with maxjobs 1' },
  );
  assert.equal(mostSingle, 1);
});

test('a hung job is ended after MAX_LIFE_AGE and its message retried', { timeout: 60_000 }, async () => {
  const hung = await startSmtpPeer({ host: '127.0.7.33', mode: 'blackhole' });
  cleanups.push(() => hung.close());
  const mta = await createJcInstance({
    address: '127.0.7.23',
    peer: { host: '127.0.7.33', port: hung.port },
    channelKeywords: 'backoff "PT1S"',
    jobControllerCnf: '[POOL=DEFAULT]\nJOB_LIMIT=2\n[CHANNEL=tcp_remote]\nMAX_LIFE_AGE=2\n',
  });
  cleanups.push(() => mta.cleanup());
  await startMta(mta);
  await sendMessages('127.0.7.23', mta.port, [{ from: 'h@client.test', to: ['hung@remote.test'], subject: 'hung-1' }]);
  const q = await waitFor(() => mailLog(mta).find((r) => r.event === 'Q' && r.recipient === 'hung@remote.test'), { timeoutMs: 15_000, what: 'the hung job to be ended' });
  assert.match(q.status, /did not finish within 2 s/);
  assert.ok(hung.connections.length >= 1, 'the job did connect');
  await hung.close();
  const good = await startSmtpPeer({ host: '127.0.7.33', port: hung.port });
  cleanups.push(() => good.close());
  await waitFor(() => good.transactions.length === 1, { timeoutMs: 20_000, what: 'the retry to reach the answering peer' });
  await waitFor(() => queueFiles(mta).length === 0);
});

test('kill -9 of the job controller in the middle of a backlog: restarted, everything delivered', { timeout: 60_000 }, async () => {
  const { mta, peer } = await setup('127.0.7.24', '127.0.7.34', { channelKeywords: 'threaddepth 1 maxjobs 1' });
  await mta.imsimta(['qm', 'stop', 'tcp_remote']);
  await sendMany('127.0.7.24', mta.port, 300, 6, (i) => ({ from: 'k@client.test', to: [`k${i % 5}@remote.test`], subject: `kill-${i}` }));
  const before = await jcStatus(mta);
  await mta.imsimta(['qm', 'start', 'tcp_remote']);
  await waitFor(() => peer.transactions.length >= 20, { timeoutMs: 20_000, what: 'deliveries to begin' });
  process.kill(before.pid, 'SIGKILL');
  const left = queueFiles(mta, 'tcp_remote').length;
  assert.ok(left > 0, 'messages were still queued when it was killed');
  await waitFor(() => !isAlive(before.pid), { what: 'the old job controller to die' });
  const after = await waitFor(async () => {
    const s = await jcStatus(mta).catch(() => null);
    return s && s.pid !== before.pid ? s : null;
  }, { timeoutMs: 15_000, what: 'the watcher to restart the job controller' });
  mta.pids.add(after.pid);
  await waitFor(() => deliveredSubjects(peer, 'kill-').size === 300 && queueFiles(mta, 'tcp_remote').length === 0, { timeoutMs: 40_000, what: 'all 300 delivered' });
  // At least once: a message in hand at the kill may have gone twice, nothing more.
  assert.ok(peer.transactions.length <= 300 + 10, `${peer.transactions.length} transactions`);
});
