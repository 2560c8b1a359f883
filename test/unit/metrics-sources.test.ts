// The pieces a scrape is built from: the job controller's status read leniently, the metric
// families of a snapshot, the dispatcher's service totals, the delivery counters of the job
// threads, the queue depth from file names, and the end of mail.log.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readJobControllerStatus, type InstanceSnapshot } from '../../src/metrics/snapshot.js';
import { metricFamilies } from '../../src/metrics/metrics-text.js';
import { formatExposition } from '../../src/metrics/exposition.js';
import { emptyHistogram, observe } from '../../src/common/histogram.js';
import { ServiceTotals } from '../../src/dispatcher/service-totals.js';
import { DeliveryStatsBook, DeliveryStatsTracker } from '../../src/job-controller/delivery-stats.js';
import { readQueueDepth } from '../../src/queue/index.js';
import { queueIdTimeMs } from '../../src/queue/message-id.js';
import { readRecentDeferrals, readRecentMailLog } from '../../src/metrics/mail-log-tail.js';
import { formatMailLogRecord, type MailLogRecord } from '../../src/common/mail-log.js';
import { queueFileName } from '../../src/queue/file-name.js';
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'tsubame-metrics-'));
  dirs.push(d);
  return d;
}

test('the job controller status is read field by field; missing or odd fields read as nothing', () => {
  const view = readJobControllerStatus({
    ok: true,
    pid: 42,
    index: { size: 3, max: 10 },
    pools: [{ name: 'DEFAULT', job_limit: 4, running: 1, threads: 2 }, 'junk'],
    jobs: [{ job: 1, channel: 'tcp_local', pool: 'DEFAULT', started: '2026-01-01T00:00:00.000Z', batches: 2, messages: 5, in_hand: 1 }],
    channels: { tcp_local: { jobs: 1, stopped: false, counters: { enqueued: 5, delivered: 3, deferred: 1, returned: 0, recipients: { enqueued: 7 } } }, l: { counters: null } },
    delivery: { tcp_local: { dnsCacheHits: 4, dnsCacheMisses: 2, connectionsOpened: 1, connectionsReused: 'x' } },
  });
  assert.equal(view.pid, 42);
  assert.deepEqual(view.index, { size: 3, max: 10 });
  assert.deepEqual(view.pools[0], { name: 'DEFAULT', jobLimit: 4, running: 1, threads: 2 });
  assert.equal(view.pools[1]!.name, '?');
  assert.equal(view.jobs[0]!.inHand, 1);
  assert.deepEqual(view.channels.map((c) => c.name), ['l', 'tcp_local'], 'sorted');
  assert.deepEqual(view.channels[1]!.messages, { enqueued: 5, delivered: 3, deferred: 1, returned: 0 });
  assert.deepEqual(view.channels[1]!.recipients, { enqueued: 7, delivered: 0, deferred: 0, returned: 0 });
  assert.deepEqual(view.channels[0]!.messages, { enqueued: 0, delivered: 0, deferred: 0, returned: 0 });
  assert.deepEqual(view.delivery.tcp_local, { dnsCacheHits: 4, dnsCacheMisses: 2, connectionsOpened: 1, connectionsReused: 0 });
  assert.deepEqual(readJobControllerStatus({}).channels, []);
});

function baseSnapshot(): InstanceSnapshot {
  const latency = emptyHistogram([0.001, 0.01]);
  observe(latency, 0.002);
  return {
    takenAt: 1_000_000_000_000 + 90_000,
    root: '/r',
    watcher: { pid: 1, started: '2026-01-01T00:00:00.000Z' },
    parts: [
      { name: 'dispatcher', state: 'running', pid: 2, started: null, restarts: 1 },
      { name: 'job_controller', state: 'stopped', pid: null, started: null, restarts: 0 },
    ],
    listeners: [],
    processes: [],
    services: [{ service: 'SMTP "main"', processes: 2, connections: 3, served: 10, enqueueLatency: latency }],
    waitingConnections: 0,
    jobController: readJobControllerStatus({
      pools: [{ name: 'DEFAULT', job_limit: 4, running: 1, threads: 1 }],
      channels: { tcp_local: { jobs: 1, counters: { enqueued: 5, delivered: 3, deferred: 2, returned: 1, recipients: { enqueued: 6, delivered: 3, deferred: 2, returned: 1 } } } },
      delivery: { tcp_local: { dnsCacheHits: 4, dnsCacheMisses: 2, connectionsOpened: 1, connectionsReused: 3 } },
      index: { size: 2, max: 100 },
    }),
    queue: [
      { channel: 'tcp_local', messages: 2, held: 1, oldestMs: 1_000_000_000_000 },
      { channel: 'l', messages: 0, held: 0, oldestMs: null },
    ],
    deferrals: [],
    problems: [],
  };
}

test('a snapshot becomes valid metric families with the expected values', () => {
  const parsed = parsePrometheusText(formatExposition(metricFamilies(baseSnapshot())));
  const v = (family: string, labels: Record<string, string>, sample?: string) => sampleValue(parsed, family, labels, sample);
  assert.equal(v('tsubame_part_up', { part: 'dispatcher' }), 1);
  assert.equal(v('tsubame_part_up', { part: 'job_controller' }), 0);
  assert.equal(v('tsubame_part_restarts_total', { part: 'dispatcher' }), 1);
  assert.equal(v('tsubame_connections_open', { service: 'SMTP "main"' }), 3, 'a quoted label value survives');
  assert.equal(v('tsubame_sessions_served_total', { service: 'SMTP "main"' }), 10);
  assert.equal(v('tsubame_enqueue_latency_seconds', { service: 'SMTP "main"' }, 'tsubame_enqueue_latency_seconds_count'), 1);
  assert.equal(v('tsubame_messages_enqueued_total', { channel: 'tcp_local' }), 5);
  assert.equal(v('tsubame_recipients_deferred_total', { channel: 'tcp_local' }), 2);
  assert.equal(v('tsubame_queue_messages', { channel: 'tcp_local' }), 2);
  assert.equal(v('tsubame_queue_held_messages', { channel: 'tcp_local' }), 1);
  assert.equal(v('tsubame_queue_oldest_message_age_seconds', { channel: 'tcp_local' }), 90);
  assert.equal(v('tsubame_queue_oldest_message_age_seconds', { channel: 'l' }), 0, 'an empty queue has age 0');
  assert.equal(v('tsubame_jobs_running', { pool: 'DEFAULT' }), 1);
  assert.equal(v('tsubame_pool_job_limit', { pool: 'DEFAULT' }), 4);
  assert.equal(v('tsubame_dns_cache_hits_total', { channel: 'tcp_local' }), 4);
  assert.equal(v('tsubame_dns_cache_misses_total', { channel: 'tcp_local' }), 2);
  assert.equal(v('tsubame_outbound_connections_opened_total', { channel: 'tcp_local' }), 1);
  assert.equal(v('tsubame_outbound_connections_reused_total', { channel: 'tcp_local' }), 3);
  assert.equal(v('tsubame_metrics_source_up', { source: 'job_controller' }), 1);
  for (const f of parsed.values()) assert.ok(f.name.startsWith('tsubame_') && f.help, f.name);
});

test('sources that could not be read: their families are missing and source_up says 0', () => {
  const s = { ...baseSnapshot(), services: null, jobController: null, queue: null, waitingConnections: null };
  const parsed = parsePrometheusText(formatExposition(metricFamilies(s)));
  assert.equal(sampleValue(parsed, 'tsubame_metrics_source_up', { source: 'dispatcher' }), 0);
  assert.equal(sampleValue(parsed, 'tsubame_metrics_source_up', { source: 'queue' }), 0);
  assert.ok(!parsed.has('tsubame_messages_enqueued_total'));
  assert.ok(!parsed.has('tsubame_enqueue_latency_seconds'));
});

test('service totals keep what exited processes served, so the counter never goes back', () => {
  const t = new ServiceTotals();
  const h = emptyHistogram([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]);
  observe(h, 0.003);
  const before = t.summary('SMTP', [{ connections: 2, served: 7, enqueueLatency: h }]);
  t.processExited(7, h);
  const after = t.summary('SMTP', [{ connections: 0, served: 1, enqueueLatency: null }]);
  assert.deepEqual([before.served, after.served], [7, 8]);
  assert.deepEqual([before.connections, after.connections, after.processes], [2, 0, 1]);
  assert.equal(after.enqueueLatency.count, 1);
});

test('delivery counters: each report carries what changed; a new job or cache counts from zero', () => {
  const dns = { hits: 0, misses: 0, coalesced: 0 };
  const tracker = new DeliveryStatsTracker(() => dns);
  const conns = { connectionsOpened: 0, connectionsReused: 0 };
  const job = { stats: () => conns };
  dns.misses = 2;
  dns.hits = 1;
  conns.connectionsOpened = 1;
  assert.deepEqual(tracker.delta(job), { dnsCacheHits: 1, dnsCacheMisses: 2, connectionsOpened: 1, connectionsReused: 0 });
  dns.hits = 4;
  dns.coalesced = 1;
  conns.connectionsReused = 2;
  assert.deepEqual(tracker.delta(job), { dnsCacheHits: 4, dnsCacheMisses: 0, connectionsOpened: 0, connectionsReused: 2 });
  const fresh = { stats: () => ({ connectionsOpened: 1, connectionsReused: 0 }) };
  assert.equal(tracker.delta(fresh).connectionsOpened, 1, 'a job made anew');
  assert.deepEqual(tracker.delta({}), { dnsCacheHits: 0, dnsCacheMisses: 0, connectionsOpened: 0, connectionsReused: 0 }, 'a job without stats (local channel)');

  const book = new DeliveryStatsBook();
  book.add('l', { dnsCacheHits: 0, dnsCacheMisses: 0, connectionsOpened: 0, connectionsReused: 0 });
  book.add('tcp_local', { dnsCacheMisses: 2, connectionsOpened: 1 });
  book.add('tcp_local', { dnsCacheMisses: 1, connectionsReused: -5 });
  book.add('tcp_local', undefined);
  assert.deepEqual(book.snapshot(), { tcp_local: { dnsCacheHits: 0, dnsCacheMisses: 3, connectionsOpened: 1, connectionsReused: 0 } });
  // The SMTP channels of the configuration are there from the start, at zero.
  const zero = { dnsCacheHits: 0, dnsCacheMisses: 0, connectionsOpened: 0, connectionsReused: 0 };
  assert.deepEqual(book.snapshot(['tcp_local', 'tcp_intranet']), { tcp_intranet: zero, tcp_local: { dnsCacheHits: 0, dnsCacheMisses: 3, connectionsOpened: 1, connectionsReused: 0 } });
});

test('queue depth and oldest message from the file names, subdirectories and held files included', async () => {
  const q = tempDir();
  const t0 = Date.parse('2026-11-30T10:00:00Z');
  const id = (ms: number, tail: string) => ms.toString(36).toUpperCase().padStart(9, '0') + tail;
  mkdirSync(join(q, 'tcp_local', '003'), { recursive: true });
  mkdirSync(join(q, 'l'), { recursive: true });
  mkdirSync(join(q, 'empty'), { recursive: true });
  writeFileSync(join(q, 'tcp_local', queueFileName(id(t0 + 5000, '00ABC0001XYZ'), 0, false)), 'x');
  writeFileSync(join(q, 'tcp_local', '003', queueFileName(id(t0, '00ABC0002XYZ'), 3, false)), 'x');
  writeFileSync(join(q, 'tcp_local', queueFileName(id(t0 + 9000, '00ABC0003XYZ'), 1, true)), 'x');
  writeFileSync(join(q, 'tcp_local', '.tmp-being-written'), 'x');
  writeFileSync(join(q, 'tcp_local', 'not-a-queue-file'), 'x');
  // An id without a time in it: its file time counts.
  const odd = join(q, 'l', queueFileName('ZZZZZZZZZZZZ', 0, false));
  writeFileSync(odd, 'x');
  utimesSync(odd, new Date(t0 - 60_000), new Date(t0 - 60_000));
  const depth = await readQueueDepth(q, ['bitbucket', 'l']);
  assert.deepEqual(depth, [
    { channel: 'bitbucket', messages: 0, held: 0, oldestMs: null },
    { channel: 'empty', messages: 0, held: 0, oldestMs: null },
    { channel: 'l', messages: 1, held: 0, oldestMs: t0 - 60_000 },
    { channel: 'tcp_local', messages: 3, held: 1, oldestMs: t0 },
  ]);
  assert.equal(queueIdTimeMs(id(t0, 'ABCDEF')), t0);
  assert.equal(queueIdTimeMs('HELLO'), null);
  assert.deepEqual(await readQueueDepth(join(q, 'missing')), []);
});

test('the end of mail.log: the last Q records, newest first, across block boundaries', async () => {
  const d = tempDir();
  const path = join(d, 'mail.log');
  const records: MailLogRecord[] = [];
  for (let i = 0; i < 60; i++) {
    records.push({ event: i % 3 === 0 ? 'Q' : 'E', id: `ID${i}`, source: 'tcp_intranet', destination: 'tcp_local', size: 100 + i, from: 'a@b', recipient: `r${i}@x.example`, status: `451 4.4.1 reason number ${i} ${'ü'.repeat(i % 7)}`, time: new Date(1_800_000_000_000 + i * 1000) });
  }
  writeFileSync(path, records.map(formatMailLogRecord).join('\n') + '\n' + '2026-12-01T00:00:00.000Z Q partial line being writ');
  const got = await readRecentMailLog(path, { events: ['Q'], limit: 5, blockSize: 97 });
  assert.deepEqual(got.map((r) => r.id), ['ID57', 'ID54', 'ID51', 'ID48', 'ID45']);
  assert.equal(got[0]!.status, `451 4.4.1 reason number 57 ${'ü'.repeat(57 % 7)}`, 'multi-byte characters split across blocks come out whole');
  const all = await readRecentMailLog(path, { events: ['Q'], limit: 100, blockSize: 64 });
  assert.equal(all.length, 20);
  assert.equal(all[19]!.id, 'ID0', 'the first line of the file is read too');
  const bounded = await readRecentMailLog(path, { events: ['Q'], limit: 100, blockSize: 100, maxBytes: 300 });
  assert.ok(bounded.length < 20, 'maxBytes bounds the reading');
  assert.deepEqual(await readRecentMailLog(join(d, 'none.log'), { events: ['Q'], limit: 5 }), []);
});

test('recent deferrals say what became of each recipient afterwards: delivered, returned, deleted, or nothing yet', async () => {
  const d = tempDir();
  const path = join(d, 'mail.log');
  const at = (s: number) => new Date(1_800_000_000_000 + s * 1000);
  const rec = (event: MailLogRecord['event'], id: string, recipient: string, s: number, status = 'x'): MailLogRecord => ({ event, id, source: 'tcp_intranet', destination: 'tcp_local', size: 1, from: 'a@b', recipient, status, time: at(s) });
  const lines = [
    rec('Q', 'A', 'one@x', 1, '451 4.4.1 refused'),
    rec('Q', 'A', 'two@x', 1, '451 4.4.1 refused'),
    rec('Q', 'B', 'b@x', 2, '451 4.4.1 refused'),
    rec('Q', 'A', 'one@x', 3, '451 4.4.1 refused again'),
    rec('D', 'A', 'One@x', 4, '250 2.0.0 ok'),
    rec('X', 'B', 'b@x', 5, 'deleted by the operator (imsimta qm delete)'),
    rec('Q', 'C', 'c@x', 6, '451 4.4.1 refused'),
    rec('D', 'Z', 'c@x', 7, 'another message for the same address'),
    rec('R', 'A', 'two@x', 8, '5.4.7 expired'),
  ];
  writeFileSync(path, lines.map(formatMailLogRecord).join('\n') + '\n');
  const got = await readRecentDeferrals(path, { limit: 10, blockSize: 80 });
  assert.deepEqual(
    got.map((g) => [g.id, g.recipient, g.time.getTime() - at(0).getTime(), g.later ? [g.later.event, g.later.time.getTime() - at(0).getTime()] : null]),
    [
      ['C', 'c@x', 6000, null],
      ['A', 'one@x', 3000, ['D', 4000]],
      ['B', 'b@x', 2000, ['X', 5000]],
      ['A', 'two@x', 1000, ['R', 8000]],
      ['A', 'one@x', 1000, ['D', 4000]],
    ],
  );
  assert.equal((await readRecentDeferrals(path, { limit: 2 })).length, 2);
});
