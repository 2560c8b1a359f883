// The job controller class in this process, with a scripted job runner: crashed jobs, corrupt and
// held files, stopped channels, a restart that keeps the retry schedule, and the bounded index
// refilled from disk. (The real process, pools and channels are covered by the other job-controller tests.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor, type TestInstance } from '../helpers/instance.js';
import { jcInstance, startController } from '../helpers/in-process-job-controller.js';
import { loadInstanceConfigOrThrow } from '../../src/config/load.js';
import { instancePaths } from '../../src/common/instance.js';
import { queueStoreFor, writeStoppedChannels, type EnvelopeDraft, type QueueRef } from '../../src/queue/index.js';
import { nextPeriodicRunMs } from '../../src/job-controller/periodic.js';
import type { JobRunner } from '../../src/job-controller/runner.js';
import { JobController } from '../../src/job-controller/controller.js';
import { pino } from 'pino';
import type { JobTask, JobTaskResult } from '../../src/job-controller/job-host.js';
import type { RecipientResult } from '../../src/channels/types.js';

const instance = jcInstance;

/** A runner whose jobs answer every pending recipient with `result` (or throw). */
class ScriptedRunner implements JobRunner {
  tasks: JobTask[] = [];
  constructor(public answer: RecipientResult | 'throw') {}
  configure(): void {}
  threads() {
    return [];
  }
  async close() {}
  async run(_pool: string, task: JobTask): Promise<JobTaskResult> {
    this.tasks.push(task);
    if (this.answer === 'throw') throw new Error('worker thread exited');
    const result = this.answer;
    return {
      threadId: 1,
      outcomes: task.items.map((i) => ({
        ref: i.ref,
        recipients: i.envelope.recipients.filter((r) => r.state === 'pending').map((r) => ({ address: r.address, result, status: result === 'delivered' ? '250 ok' : result === 'failed' ? '550 5.1.1 no' : '451 4.3.0 later', remoteHost: 'peer' })),
      })),
    };
  }
}

async function enqueue(inst: TestInstance, n: number, opts: { held?: boolean; from?: string } = {}): Promise<QueueRef[]> {
  const store = queueStoreFor(instancePaths(inst.root), null); // flat channels, as configured here
  const refs: QueueRef[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const draft: EnvelopeDraft = {
        channel: 'tcp_local',
        from: opts.from ?? 'a@example.org',
        mailParams: {},
        sourceChannel: 'l',
        clientAddress: null,
        clientHelo: null,
        arrival: new Date(),
        recipients: [{ address: `r${i}@remote.test`, original: `r${i}@remote.test`, orcpt: null, notify: null, state: 'pending', status: null }],
        held: opts.held,
      };
      refs.push(...(await store.enqueue([draft], Buffer.from(`Subject: ${i}\r\n\r\nbody\r\n`))));
    }
  } finally {
    await store.close();
  }
  return refs;
}

const controller = startController;

const files = (inst: TestInstance) => {
  const dir = join(inst.root, 'queue', 'tcp_local');
  return existsSync(dir) ? readdirSync(dir) : [];
};

test('a job that crashes: its messages are deferred with the reason, not lost', async () => {
  const inst = instance();
  await enqueue(inst, 3);
  const runner = new ScriptedRunner('throw');
  const c = await controller(inst, runner);
  await waitFor(() => files(inst).length === 3 && files(inst).every((f) => f.startsWith('ZY')), { what: 'three deferred files' });
  const status = c.status() as { channels: Record<string, { delayed: number }> };
  assert.equal(status.channels.tcp_local!.delayed, 3);
  const store = queueStoreFor(instancePaths(inst.root), null);
  const env = await store.readEnvelope(join(inst.root, 'queue', 'tcp_local', files(inst)[0]!));
  await store.close();
  assert.match(env.recipients[0]!.status ?? '', /delivery job failed: worker thread exited/);
  assert.ok(env.nextAttempt && env.nextAttempt.getTime() > Date.now() + 50 * 60_000, 'next attempt one hour away (backoff PT1H)');
  await c.stop();
});

test('after a restart the schedule in the files is kept: nothing is retried before it is due; flush retries now', async () => {
  const inst = instance();
  await enqueue(inst, 2);
  const first = await controller(inst, new ScriptedRunner('deferred'));
  await waitFor(() => files(inst).every((f) => f.startsWith('ZY')) && files(inst).length === 2);
  await first.stop();
  const runner = new ScriptedRunner('delivered');
  const second = await controller(inst, runner);
  assert.equal(runner.tasks.length, 0, 'not due yet');
  const reply = await second.flush(null);
  assert.equal(reply.count, 2);
  await waitFor(() => files(inst).length === 0, { what: 'delivery after the flush' });
  assert.equal(runner.tasks.flatMap((t) => t.items).length, 2);
  const counters = second.counterTable();
  assert.equal(counters.tcp_local!.delivered, 2);
  assert.equal(counters.tcp_local!.deferred, 2, 'counted by the first run, kept across the restart');
});

test('held files are never handed out; corrupt files are set aside; stopped channels wait', async () => {
  const inst = instance();
  await enqueue(inst, 1, { held: true });
  const [ok] = await enqueue(inst, 1);
  writeFileSync(join(inst.root, 'queue', 'tcp_local', 'ZZ0000000000BAD0.00'), 'not a queue file');
  await writeStoppedChannels(inst.root, ['tcp_local']);
  const runner = new ScriptedRunner('delivered');
  const c = await controller(inst, runner);
  assert.equal(runner.tasks.length, 0, 'channel stopped');
  assert.equal((c.status() as { index: { size: number } }).index.size, 1, 'only the good one is indexed: the held one never, the unreadable one is set aside by the scan');
  await writeStoppedChannels(inst.root, []);
  await c.handle({ op: 'qm', action: 'start', channel: 'tcp_local' });
  await waitFor(() => !files(inst).some((f) => f.includes(ok!.id)), { what: 'the good message delivered' });
  assert.deepEqual(runner.tasks.flatMap((t) => t.items.map((i) => i.ref.id)), [ok!.id]);
  assert.ok(files(inst).some((f) => f.endsWith('.HELD')), 'the held file stays');
  assert.ok(readdirSync(join(inst.root, 'corrupt')).includes('ZZ0000000000BAD0.00'), 'the corrupt file is in corrupt/');
});

test('a backlog bigger than MAX_MESSAGES is worked through by rescans, oldest first', async () => {
  const inst = instance('MAX_MESSAGES=10\n[POOL=DEFAULT]\nJOB_LIMIT=1\n');
  const refs = await enqueue(inst, 35);
  const runner = new ScriptedRunner('delivered');
  const c = await controller(inst, runner);
  await waitFor(() => files(inst).length === 0, { what: 'all delivered' });
  const status = c.status() as { index: { high_water: number; scans: number } };
  assert.equal(status.index.high_water, 10);
  assert.ok(status.index.scans >= 4, `${status.index.scans} scans`);
  const order = runner.tasks.flatMap((t) => t.items.map((i) => i.ref.id));
  assert.equal(order.length, 35);
  assert.deepEqual(order.slice(0, 10).sort(), refs.slice(0, 10).map((r) => r.id).sort(), 'the oldest ten first');
});

test('a failure from a null sender: settled without a notice; from a sender: a DSN is queued and indexed', async () => {
  const inst = instance();
  await enqueue(inst, 1, { from: '' });
  const runner = new ScriptedRunner('failed');
  const c = await controller(inst, runner);
  await waitFor(() => files(inst).length === 0);
  assert.equal(readdirSync(join(inst.root, 'queue')).filter((d) => !d.startsWith('.')).join(','), 'tcp_local');
  await enqueue(inst, 1, { from: 'sender@remote.test' });
  await c.handle({ op: 'rescan' });
  // The notice goes to tcp_local too (the sender is remote), from <>, and is then tried itself.
  const isNotice = (i: JobTask['items'][number]) => i.envelope.from === '' && i.envelope.recipients.some((r) => r.address === 'sender@remote.test');
  await waitFor(() => runner.tasks.some((t) => t.items.some(isNotice)), { what: 'the notice to be handed out' });
  const notice = runner.tasks.flatMap((t) => t.items).find(isNotice)!;
  assert.equal(notice.envelope.sourceChannel, 'tcp_local');
  // The notice fails too: from <> it gets no notice of its own, so the queue empties (no loop).
  await waitFor(() => files(inst).length === 0, { what: 'the queue to empty' });
  assert.equal(runner.tasks.flatMap((t) => t.items).filter((i) => i.envelope.from === '').length, 2);
});

test('reload: a broken configuration is refused with file:line and the last good one stays in force', async () => {
  const inst = instance();
  const runner = new ScriptedRunner('delivered');
  const c = await controller(inst, runner, { loadConfig: async () => loadInstanceConfigOrThrow(inst.root) });
  inst.write('etc/job_controller.cnf', '[POOL=DEFAULT]\nJOB_LIMIT=lots\n');
  const bad = await c.handle({ op: 'reload' });
  assert.equal(bad.ok, false);
  assert.match(String(bad.error), /job_controller\.cnf:2:/);
  await enqueue(inst, 1);
  await c.handle({ op: 'rescan' });
  await waitFor(() => files(inst).length === 0, { what: 'delivery with the last good configuration' });
  inst.write('etc/job_controller.cnf', '[POOL=DEFAULT]\nJOB_LIMIT=3\n');
  const good = await c.handle({ op: 'reload' });
  assert.equal(good.ok, true);
  assert.equal((c.status() as { pools: Array<{ job_limit: number }> }).pools[0]!.job_limit, 3);
});

/** An instance whose tcp_local is `periodic`, runs every `interval`. */
function periodicInstance(interval: string): TestInstance {
  const inst = instance(`PERIODIC_INTERVAL=${interval}\n[POOL=DEFAULT]\nJOB_LIMIT=2\n`);
  const imta = inst.read('etc/imta.cnf');
  const periodic = imta.replace('tcp_local smtp nomx backoff "PT1H"', 'tcp_local smtp nomx periodic backoff "PT1H"');
  assert.notEqual(periodic, imta, 'the harness imta.cnf has the tcp_local line this test changes');
  inst.write('etc/imta.cnf', periodic);
  return inst;
}

test('a periodic channel: new mail waits for the next periodic run, then goes out together', async () => {
  const inst = periodicInstance('2');
  const runner = new ScriptedRunner('delivered');
  const c = await controller(inst, runner);
  await enqueue(inst, 3);
  const enqueuedAt = Date.now();
  await c.handle({ op: 'rescan' });
  const run = nextPeriodicRunMs(enqueuedAt, 2);
  await waitFor(() => files(inst).length === 0, { timeoutMs: 6_000, what: 'the periodic run' });
  const deliveredAt = Date.now();
  assert.ok(deliveredAt >= run - 50, `not before the periodic run (${deliveredAt - run} ms after it)`);
  assert.equal(runner.tasks.reduce((n, t) => n + t.items.length, 0), 3);
});

test('a periodic channel with a long interval: a flush sends its mail at once', async () => {
  const inst = periodicInstance('P1D');
  const runner = new ScriptedRunner('delivered');
  const c = await controller(inst, runner);
  await enqueue(inst, 2);
  await c.handle({ op: 'rescan' });
  assert.equal(runner.tasks.length, 0, 'nothing is tried on demand');
  assert.ok(nextPeriodicRunMs(Date.now(), 86400) - Date.now() > 5_000, 'the next daily run is not about to start');
  await c.handle({ op: 'flush', target: null });
  await waitFor(() => files(inst).length === 0, { timeoutMs: 5_000, what: 'the flushed messages' });
  assert.equal(runner.tasks.reduce((n, t) => n + t.items.length, 0), 2);
});

test('a periodic channel with a long interval: a released message is sent at once', async () => {
  const inst = periodicInstance('P1D');
  const runner = new ScriptedRunner('delivered');
  const c = await controller(inst, runner);
  const [held] = await enqueue(inst, 1, { held: true });
  await c.handle({ op: 'rescan' });
  assert.ok(nextPeriodicRunMs(Date.now(), 86400) - Date.now() > 5_000, 'the next daily run is not about to start');
  const store = queueStoreFor(instancePaths(inst.root), null);
  try {
    await store.release(held!);
  } finally {
    await store.close();
  }
  await c.handle({ op: 'qm', action: 'release', ids: [held!.id] });
  await waitFor(() => files(inst).length === 0, { timeoutMs: 5_000, what: 'the released message' });
  assert.equal(runner.tasks.reduce((n, t) => n + t.items.length, 0), 1);
});

test('periodic runs are aligned to the clock', () => {
  assert.equal(nextPeriodicRunMs(0, 2), 2000);
  assert.equal(nextPeriodicRunMs(1999, 2), 2000);
  assert.equal(nextPeriodicRunMs(2000, 2), 4000);
  assert.equal(nextPeriodicRunMs(5_000, 1800), 1_800_000);
});

test('a long queue scan says how far it has got: progress lines in its log, the scan in its status meanwhile, none after', { timeout: 120_000 }, async () => {
  const inst = instance();
  await enqueue(inst, 1300);
  // A clock that moves 10 s each time the controller looks: every progress check is due.
  let clock = Date.now();
  const now = () => (clock += 10_000);
  const progress: Array<Record<string, unknown>> = [];
  const seenInStatus: unknown[] = [];
  let c: JobController | null = null;
  const logger = pino({ level: 'info' }, {
    write(line: string) {
      const o = JSON.parse(line) as Record<string, unknown>;
      if (o.msg !== 'queue scan in progress') return;
      progress.push(o);
      seenInStatus.push(c?.status().scan); // what imsimta process and the status page get now
    },
  });
  c = new JobController({ config: loadInstanceConfigOrThrow(inst.root), runner: new ScriptedRunner('deferred'), logger, now });
  try {
    const { scanned } = await c.start();
    await scanned;
    // 1,300 files: a line after 1,024 listed, then every 256 read.
    assert.ok(progress.length >= 5, JSON.stringify(progress));
    assert.deepEqual(
      progress.map((p) => [p.reason, p.phase, p.listed, p.read]),
      [['start', 'listing', 1024, 0], ...[256, 512, 768, 1024, 1280].map((read) => ['start', 'reading', 1300, read])],
    );
    for (const p of progress.slice(1)) assert.equal(p.toRead, 1300);
    assert.deepEqual(seenInStatus.map((s) => (s as { phase: string; listed: number; read: number }).read), [0, 256, 512, 768, 1024, 1280]);
    assert.equal(c.status().scan, null, 'no scan under way once it is done');
  } finally {
    await c.stop();
  }
});
