// The status page's history (src/metrics/history.ts): mail.log records counted per minute as
// messages (recipients for rejections), old records left out, the gauges per minute, gaps where
// nothing was sampled, deferrals and returns grouped by reason and destination with their
// records, all in rings of fixed size; the SVG charts drawn from it (escaped, a line per run of
// values, round axis steps); the page's chart and group sections and a group's page; and the
// mail.log follower: backfill from mid-file, lines only once whole, rotation and truncation.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TrafficHistory, GROUP_IDS } from '../../src/metrics/history.js';
import { renderChart, yAxis } from '../../src/metrics/charts.js';
import { renderGroupPage, renderStatusPage } from '../../src/metrics/status-page.js';
import { MailLogFollower } from '../../src/metrics/mail-log-follow.js';
import { parseLooseMailLogLine, type LooseMailLogRecord } from '../../src/common/mail-log-read.js';
import type { InstanceSnapshot } from '../../src/metrics/snapshot.js';

const NOW = Date.UTC(2026, 11, 7, 12, 0, 30);
const MIN = 60_000;

function rec(event: string, id: string, minutesAgo: number, more: Partial<LooseMailLogRecord> = {}): LooseMailLogRecord {
  return { time: new Date(NOW - minutesAgo * MIN).toISOString(), event, id, source: 'tcp_local', destination: 'tcp_defer', size: 10, from: 'a@x.test', recipient: 'b@y.test', status: 'queued', ...more };
}

test('per minute: messages received, delivered, deferred, returned (one per run of records), rejected recipients; too old left out', () => {
  const h = new TrafficHistory();
  // Minute -2: one message for two recipients, queued as two files for two channels (one message received).
  h.addRecord(rec('E', 'AAAAAAAAAA', 2), NOW);
  h.addRecord(rec('E', 'AAAAAAAAAA', 2, { recipient: 'c@y.test' }), NOW);
  h.addRecord(rec('E', 'AAAAAAAAAA01', 2, { recipient: 'joe@localhost' }), NOW);
  // Minute -1: delivered to two recipients (one message), one refused twice, one deferred, one unknown letter.
  h.addRecord(rec('D', 'AAAAAAAAAA', 1), NOW);
  h.addRecord(rec('D', 'AAAAAAAAAA', 1, { recipient: 'c@y.test' }), NOW);
  h.addRecord(rec('J', '', 1), NOW);
  h.addRecord(rec('J', '', 1), NOW);
  h.addRecord(rec('Q', 'BBBBBBBBBB', 1, { status: '451 4.4.1 down (mx.y.test[192.0.2.1])' }), NOW);
  h.addRecord(rec('Z', 'BBBBBBBBBB', 1), NOW);
  h.addRecord(rec('R', 'CCCCCCCCCC', 0, { status: '550 5.1.1 <b@y.test>: unknown (mx.y.test[192.0.2.1])' }), NOW);
  // Older than the history, and from the future: not counted.
  h.addRecord(rec('E', 'DDDDDDDDDD', 400), NOW);
  h.addRecord(rec('E', 'EEEEEEEEEE', -5), NOW);
  const v = h.view(NOW);
  assert.equal(v.minutes.length, 3);
  assert.equal(v.to, Math.floor(NOW / MIN) * MIN);
  assert.deepEqual(v.events, { received: [1, 0, 0], delivered: [0, 1, 0], deferred: [0, 1, 0], returned: [0, 0, 1], rejected: [0, 2, 0] });
  assert.deepEqual(v.connections, [null, null, null], 'nothing sampled');
});

test('gauges: the last sample of each minute per channel, the oldest age over the channels, gaps as null', () => {
  const h = new TrafficHistory();
  h.addSample(NOW - 3 * MIN, { queue: [{ channel: 'tcp_local', messages: 5, oldestMs: NOW - 3 * MIN - 90_000 }, { channel: 'l', messages: 1, oldestMs: NOW - 3 * MIN - 10_000 }], connections: 2 });
  h.addSample(NOW - 1 * MIN, { queue: [{ channel: 'tcp_local', messages: 7, oldestMs: null }], connections: 4 });
  h.addSample(NOW - 1 * MIN + 20_000, { queue: [{ channel: 'tcp_local', messages: 8, oldestMs: NOW - 2 * MIN }], connections: null });
  const v = h.view(NOW);
  assert.equal(v.minutes.length, 4);
  assert.deepEqual(v.queue, [
    { channel: 'tcp_local', values: [5, null, 8, null] },
    { channel: 'l', values: [1, null, 0, null] },
  ]);
  assert.deepEqual(v.oldestAge, [90, null, 80, null]);
  assert.deepEqual(v.connections, [2, null, null, null]);
});

test('deferrals and returns grouped by event, destination and reason; a group lists its newest records; rings stay bounded', () => {
  const h = new TrafficHistory(360, 50);
  for (let i = 0; i < 30; i++) {
    const id = `M${String(i).padStart(9, '0')}`;
    // Each message for two recipients at two hosts; the reason names the recipient (taken out) and a time.
    for (const host of ['mx1.y.test', 'mx2.y.test']) {
      h.addRecord(rec('Q', id, 10, { recipient: `u${i}@y.test`, status: `421 4.7.0 <u${i}@y.test> rate limited until 2026-12-07T12:0${i % 10}:00Z (${host}[192.0.2.1]:25)` }), NOW);
    }
  }
  h.addRecord(rec('Q', 'N000000000', 5, { recipient: 'v@z.test', status: '451 4.4.1 connection refused' }), NOW);
  h.addRecord(rec('R', 'N000000000', 4, { recipient: 'v@z.test', status: '550 5.1.1 no such user (in reply to RCPT TO) (mx.z.test[192.0.2.9])' }), NOW);
  const groups = h.groups(NOW);
  // The ring holds 50 records: the last 24 of the 60 deferrals at mx1/mx2 (12 each), and the two others.
  assert.deepEqual(
    groups.map((g) => [g.event, g.destination, g.reason, g.messages, g.recipients]),
    [
      ['Q', 'mx1.y.test', '421 4.7.0 <…> rate limited until …', 24, 24],
      ['Q', 'mx2.y.test', '421 4.7.0 <…> rate limited until …', 24, 24],
      // Equal counts: the newest first.
      ['R', 'mx.z.test', '550 5.1.1 no such user (in reply to RCPT TO)', 1, 1],
      ['Q', 'z.test', '451 4.4.1 connection refused', 1, 1],
    ],
  );
  const records = h.groupRecords(NOW, groups[0]!);
  assert.equal(records.length, 24);
  assert.equal(records[0]!.id, 'M000000029', 'newest first');
  assert.equal(records[0]!.channel, 'tcp_defer');

  // A group's page keeps at most GROUP_IDS messages.
  const big = new TrafficHistory();
  for (let i = 0; i < GROUP_IDS + 50; i++) big.addRecord(rec('Q', `K${String(i).padStart(9, '0')}`, 1, { status: '451 4.4.1 down' }), NOW);
  assert.equal(big.groupRecords(NOW, { event: 'Q', destination: 'y.test', reason: '451 4.4.1 down' }).length, GROUP_IDS);
  assert.equal(big.groups(NOW)[0]!.messages, GROUP_IDS + 50);
});

test('charts: escaped texts, a line per run of values (a step per minute), round axis steps, nothing that runs', () => {
  const times = [0, 1, 2, 3, 4].map((m) => NOW - (4 - m) * MIN);
  const svg = renderChart({ id: 'x', title: 'A <b>title</b>', times, series: [{ name: '"><script>alert(1)</script>', color: '#0072b2', values: [1, 2, null, 4, 5] }] });
  assert.ok(svg.startsWith('<svg class="chart chart-x"'));
  assert.doesNotMatch(svg, /<script|<b>|\son[a-z]+=/i);
  assert.match(svg, /A &lt;b&gt;title&lt;\/b&gt;/);
  assert.equal(svg.match(/<polyline /g)?.length, 2, 'the gap splits the line');
  assert.match(svg, /data-sum="12" data-last="5"/);
  const first = /points="([^"]+)"/.exec(svg)![1]!.split(' ');
  assert.equal(first.length, 4, 'two minutes, two points each');
  assert.equal(first[0]!.split(',')[1], first[1]!.split(',')[1], 'flat within a minute');
  assert.deepEqual(yAxis(5, true), { step: 2, top: 6 });
  assert.deepEqual(yAxis(0, true), { step: 1, top: 1 });
  assert.deepEqual(yAxis(38, true), { step: 10, top: 40 });
  assert.deepEqual(yAxis(0.3, false), { step: 0.1, top: 0.3 });
  assert.deepEqual(yAxis(1200, true), { step: 500, top: 1500 });
});

const baseSnapshot: InstanceSnapshot = {
  takenAt: NOW,
  root: '/srv/tsubame',
  watcher: { pid: 1, started: new Date(NOW - 3600e3).toISOString() },
  parts: [],
  listeners: [],
  processes: [],
  services: null,
  waitingConnections: null,
  jobController: null,
  queue: null,
  deferrals: [],
  problems: [],
};

test('the status page: the charts and the groups, each group linking to its queue entries; a group\'s page', () => {
  const h = new TrafficHistory();
  h.addRecord(rec('E', 'AAAAAAAAAA', 1), NOW);
  h.addRecord(rec('Q', 'AAAAAAAAAA', 0, { recipient: '"<svg/onload=x>"@y.test', status: '421 4.7.0 <v@y.test> slow & steady (mx.y.test[192.0.2.1])' }), NOW);
  const page = renderStatusPage({ ...baseSnapshot, history: h.view(NOW), outcomeGroups: h.groups(NOW) });
  assert.equal(page.match(/<svg class="chart /g)?.length, 4);
  assert.match(page, /<h2>The last hours<\/h2>/);
  assert.match(page, /<h2>Deferrals and returns by reason<\/h2>/);
  assert.match(page, /href="queue\?event=Q&amp;destination=mx\.y\.test&amp;reason=421\+4\.7\.0\+%3C%E2%80%A6%3E\+slow\+%26\+steady"/);
  assert.match(page, /<td class="reason">421 4\.7\.0 &lt;…&gt; slow &amp; steady<\/td>/);
  assert.doesNotMatch(page, /<svg\/onload/);
  // Without a history (no METRICS side keeping one), the page is as before.
  assert.doesNotMatch(renderStatusPage(baseSnapshot), /<svg|The last hours|by reason|scanning/);
  // A queue scan under way is said above the pools.
  const scanning = renderStatusPage({
    ...baseSnapshot,
    jobController: { pid: 2, index: { size: 0, max: 100 }, pools: [], jobs: [], channels: [], delivery: {}, scan: { reason: 'start', started: new Date(NOW - 12_000).toISOString(), phase: 'listing', listed: 45_000, toRead: 0, read: 0 } },
  });
  assert.match(scanning, /<p class="warn scan">The job controller is scanning the queue \(start, 12 s\): 45,000 files listed\.<\/p>/);

  const records = h.groupRecords(NOW, h.groups(NOW)[0]!);
  const group = renderGroupPage({ takenAt: NOW, group: h.groups(NOW)[0]!, records, queued: new Map([['AAAAAAAAAA', { id: 'AAAAAAAAAA', channel: 'tcp_defer', held: false, attempts: 2, nextAttempt: new Date(NOW + 600_000).toISOString(), pending: [] }]]) });
  assert.match(group, /<title>tsubame: Deferred: 421 4\.7\.0 &lt;…&gt; slow &amp; steady<\/title>/);
  assert.match(group, /<td class="id">AAAAAAAAAA<\/td><td>tcp_defer<\/td><td class="addr">&quot;&lt;svg\/onload=x&gt;&quot;@y\.test<\/td>/);
  assert.match(group, /next attempt in 10 min, 2 attempts/);
  const gone = renderGroupPage({ takenAt: NOW, group: h.groups(NOW)[0]!, records, queued: new Map() });
  assert.match(gone, /no longer queued/);
});

const dir = mkdtempSync(join(tmpdir(), 'follow-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('the follower: backfill from mid-file without the cut line, whole lines only, rotation and truncation', async () => {
  const log = join(dir, 'mail.log');
  const line = (n: number) => `2026-12-07T12:00:00.000Z E ID${String(n).padStart(8, '0')} a b 1 x@y z@w queued`;
  writeFileSync(log, Array.from({ length: 100 }, (_, i) => line(i) + '\n').join(''));
  const follower = new MailLogFollower(log, { backfillBytes: 10 * (line(0).length + 1) + 5 });
  const seen: string[] = [];
  const poll = () => follower.poll((l) => seen.push(l));
  await poll();
  // 10 whole lines and a piece of the eleventh from the end: the piece is dropped.
  assert.deepEqual(seen, Array.from({ length: 10 }, (_, i) => line(90 + i)));
  seen.length = 0;
  appendFileSync(log, `${line(100)}\n${line(101).slice(0, 20)}`);
  await poll();
  assert.deepEqual(seen, [line(100)], 'a line without its line feed waits');
  appendFileSync(log, `${line(101).slice(20)}\n${line(102)}\n`);
  // Rotated: the rest of the old file, then the new one from its start.
  renameSync(log, `${log}.1`);
  appendFileSync(`${log}.1`, `${line(103)}\n`);
  writeFileSync(log, `${line(200)}\n`);
  seen.length = 0;
  await poll();
  assert.deepEqual(seen, [line(101), line(102), line(103), line(200)]);
  // Truncated in place (copytruncate): read again from the start.
  truncateSync(log, 0);
  seen.length = 0;
  await poll();
  appendFileSync(log, `${line(300)}\n`);
  await poll();
  assert.deepEqual(seen, [line(300)]);
  assert.ok(parseLooseMailLogLine(seen[0]!));
  await follower.close();
});
