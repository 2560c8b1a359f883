// The job controller's schedule on a running instance: retries of a destination that is down
// follow the channel's backoff and reach it once it is up, without a flush; a backlog written
// while the job controller was stopped, forty times MAX_MESSAGES, is delivered through rescans
// while the index never holds more than MAX_MESSAGES.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { startSmtpPeer, type SmtpPeer } from '../helpers/sim-internet.js';
import { freePort } from '../helpers/instance.js';
import { instancePaths } from '../../src/common/instance.js';
import { loadInstanceConfigOrThrow } from '../../src/config/load.js';
import { queueStoreFor, type EnvelopeDraft } from '../../src/queue/index.js';
import { createJcInstance, startMta, jcStatus, mailLog, queueFiles, sendMessages, waitFor, LOCAL_HOST } from './job-controller-harness.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

const TOLERANCE_MS = 1500;

function assertNear(actualMs: number, expectedMs: number, what: string): void {
  assert.ok(Math.abs(actualMs - expectedMs) <= TOLERANCE_MS, `${what}: ${actualMs} ms, expected ${expectedMs} ± ${TOLERANCE_MS} ms`);
}

test('a destination that is down is retried after 2 s, then 4 s (backoff "PT2S" "PT4S"), and reached without a flush once up', { timeout: 60_000 }, async () => {
  const peerHost = '127.0.15.11';
  const peerPort = await freePort(peerHost); // nothing listens there until the peer starts below
  const mta = await createJcInstance({ address: '127.0.15.10', peer: { host: peerHost, port: peerPort }, channelKeywords: 'backoff "PT2S" "PT4S"' });
  cleanups.push(() => mta.cleanup());
  // Every attempt connects (no host reachability cache between attempts).
  mta.inst.write('etc/option.dat', `INTERNAL_IP=127.0.0.0/8\nLOCAL_HOST=${LOCAL_HOST}\nSMTP_HOST_RETRY=0\n`);
  await startMta(mta);
  await sendMessages('127.0.15.10', mta.port, [{ from: 'sched@client.test', to: ['down@remote.test'], subject: 'backoff-1' }]);

  const attempts = () => mailLog(mta).filter((r) => r.event === 'Q' && r.recipient === 'down@remote.test');
  const q = await waitFor(() => (attempts().length >= 3 ? attempts() : null), { timeoutMs: 20_000, intervalMs: 20, what: 'three failed attempts' });
  for (const r of q) assert.match(r.status, /refused|ECONNREFUSED/i, 'the destination refused the connection');
  assertNear(q[1]!.time.getTime() - q[0]!.time.getTime(), 2000, 'first retry');
  assertNear(q[2]!.time.getTime() - q[1]!.time.getTime(), 4000, 'second retry');

  const peer: SmtpPeer = await startSmtpPeer({ host: peerHost, port: peerPort });
  cleanups.push(() => peer.close());
  const d = await waitFor(() => mailLog(mta).find((r) => r.event === 'D' && r.recipient === 'down@remote.test'), { timeoutMs: 15_000, intervalMs: 20, what: 'delivery after the peer came up' });
  const lastQ = attempts().at(-1)!;
  // The last interval repeats: the next attempt, 4 s after the last failure, delivers.
  assertNear(d.time.getTime() - lastQ.time.getTime(), 4000, 'retry that delivered');
  assert.equal(peer.transactions.length, 1);
  assert.equal(peer.transactions[0]!.to[0], 'down@remote.test');
  await waitFor(() => queueFiles(mta).length === 0, { what: 'the queue file to go' });
  assert.ok(!readFileSync(join(mta.root, 'log', 'job_controller.log'), 'utf8').includes('"msg":"flush"'), 'no flush was asked for');
});

test('MAX_MESSAGES=50 and 2,000 messages queued while the job controller was stopped: all delivered through rescans', { timeout: 90_000 }, async () => {
  const peer = await startSmtpPeer({ host: '127.0.15.13' });
  cleanups.push(() => peer.close());
  const mta = await createJcInstance({ address: '127.0.15.12', peer: { host: '127.0.15.13', port: peer.port }, jobControllerCnf: 'MAX_MESSAGES=50\n[POOL=DEFAULT]\nJOB_LIMIT=4\n' });
  cleanups.push(() => mta.cleanup());
  await startMta(mta);
  const stop = await mta.cli('stop-msg', ['job_controller']);
  assert.equal(stop.code, 0, stop.stderr);

  const total = 2000;
  const store = queueStoreFor(instancePaths(mta.root), loadInstanceConfigOrThrow(mta.root));
  try {
    let next = 0;
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        while (next < total) {
          const i = next++;
          const draft: EnvelopeDraft = {
            channel: 'tcp_remote',
            from: 'bulk@client.test',
            mailParams: {},
            sourceChannel: 'tcp_local',
            clientAddress: '127.0.15.14',
            clientHelo: 'client.test',
            arrival: new Date(),
            recipients: [{ address: `r${i % 11}@remote.test`, original: `r${i % 11}@remote.test`, orcpt: null, notify: null, state: 'pending', status: null }],
          };
          await store.enqueue([draft], Buffer.from(`Subject: backlog-${i}\r\n\r\nbody ${i}\r\n`));
        }
      }),
    );
  } finally {
    await store.close();
  }
  assert.equal(queueFiles(mta, 'tcp_remote').length, total);
  assert.equal(peer.transactions.length, 0, 'nothing is delivered while the job controller is stopped');

  const start = await mta.cli('start-msg', ['job_controller']);
  assert.equal(start.code, 0, start.stderr);
  let biggest = 0;
  const subjects = new Set<string>();
  await waitFor(
    async () => {
      const s = await jcStatus(mta);
      mta.pids.add(s.pid);
      biggest = Math.max(biggest, s.index.size);
      for (const t of peer.transactions.slice(subjects.size)) subjects.add(/^Subject: (.*)$/m.exec(t.data.toString('latin1'))?.[1]?.trim() ?? '');
      return peer.transactions.length >= total && queueFiles(mta, 'tcp_remote').length === 0;
    },
    { timeoutMs: 75_000, intervalMs: 100, what: `all ${total} messages delivered` },
  );
  for (const t of peer.transactions) subjects.add(/^Subject: (.*)$/m.exec(t.data.toString('latin1'))?.[1]?.trim() ?? '');
  assert.equal(subjects.size, total, 'every message reached the peer');
  assert.ok(peer.transactions.length <= total + 10, `${peer.transactions.length} transactions for ${total} messages`);

  const s = await jcStatus(mta);
  assert.ok(biggest <= 50, `index seen at ${biggest}`);
  assert.ok(s.index.high_water <= 50, `index high water ${s.index.high_water}`);
  assert.equal(s.index.high_water, 50, 'the index was used to its limit');
  assert.ok(s.index.scans > 1, `rescans after the start-up scan (${s.index.scans} scans)`);
  assert.equal(s.index.size, 0);

  const logPath = join(mta.root, 'log', 'job_controller.log');
  assert.ok(existsSync(logPath));
  const scans = readFileSync(logPath, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"queue scanned"'))
    .map((l) => JSON.parse(l) as { pid: number; reason: string; admitted: number; left_on_disk: number })
    .filter((r) => r.pid === s.pid); // the restarted job controller's
  const start1 = scans.find((r) => r.reason === 'start');
  assert.ok(start1, 'the start-up scan is logged');
  assert.equal(start1.admitted, 50, 'the start-up scan took what fits');
  assert.equal(start1.left_on_disk, total - 50);
  const rescans = scans.filter((r) => r.reason === 'room');
  assert.ok(rescans.length > 0, 'rescans for room are logged');
  assert.equal(rescans.length, s.index.scans - 1, 'every rescan is logged');
  assert.equal(mailLog(mta).filter((r) => r.event === 'D').length, total);
});
