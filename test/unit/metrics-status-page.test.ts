// The status page: relative times, escaping of everything that comes from mail, the tables.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { escapeHtml, formatDuration, relativeTime, renderStatusPage } from '../../src/metrics/status-page.js';
import { emptyHistogram, observe } from '../../src/common/histogram.js';
import type { InstanceSnapshot } from '../../src/metrics/snapshot.js';

const NOW = Date.parse('2026-12-01T12:00:00Z');
const HOSTILE = '"<script>alert(1)</script>"@evil.example';

function snapshot(over: Partial<InstanceSnapshot> = {}): InstanceSnapshot {
  const latency = emptyHistogram([0.001, 0.01]);
  observe(latency, 0.004);
  observe(latency, 0.006);
  return {
    takenAt: NOW,
    root: '/srv/<tsubame>',
    watcher: { pid: 100, started: '2026-12-01T11:00:00.000Z' },
    parts: [{ name: 'dispatcher', state: 'running', pid: 101, started: '2026-12-01T11:00:01.000Z', restarts: 0 }],
    listeners: [{ service: 'SMTP', address: '127.0.13.1', port: 2525 }],
    processes: [
      { role: 'watcher', pid: 100, service: null, connections: null, served: null, started: '2026-12-01T11:00:00.000Z', state: 'running' },
      { role: 'smtp_server', pid: 102, service: 'SMTP', connections: 3, served: 1234, started: '2026-12-01T11:57:00.000Z', state: 'ready' },
    ],
    services: [{ service: 'SMTP', processes: 1, connections: 3, served: 1234, enqueueLatency: latency }],
    waitingConnections: 0,
    jobController: {
      pid: 103,
      index: { size: 7, max: 100000 },
      pools: [{ name: 'SMTP_POOL', jobLimit: 10, running: 2, threads: 2 }],
      jobs: [{ job: 5, channel: 'tcp_local', pool: 'SMTP_POOL', started: '2026-12-01T11:59:30.000Z', batches: 3, messages: 40, inHand: 8 }],
      channels: [{ name: 'tcp_local', messages: { enqueued: 50, delivered: 40, deferred: 9, returned: 1 }, recipients: { enqueued: 60, delivered: 45, deferred: 12, returned: 3 }, jobs: 2, stopped: true }],
      delivery: {},
    },
    queue: [{ channel: 'tcp_local', messages: 9, held: 1, oldestMs: NOW - 3 * 3600_000 }],
    deferrals: [
      { time: new Date(NOW - 180_000), event: 'Q', id: '0MX4V6FCL00I7WL3ZDRMR', source: 'tcp_intranet', destination: 'tcp_local', size: 100, from: 'a@b', recipient: HOSTILE, status: '451 4.4.1 <b>try later</b> & "soon"', later: null },
    ],
    problems: [],
    ...over,
  };
}

test('relative times and durations read as an operator says them', () => {
  assert.equal(relativeTime(NOW - 2000, NOW), 'just now');
  assert.equal(relativeTime(NOW - 42_000, NOW), '42 s ago');
  assert.equal(relativeTime(NOW - 180_000, NOW), '3 min ago');
  assert.equal(relativeTime(NOW - 5 * 3600_000, NOW), '5 h ago');
  assert.equal(relativeTime(NOW - 3 * 86400_000, NOW), '3 d ago');
  assert.equal(relativeTime(NOW + 120_000, NOW), 'in 2 min');
  assert.equal(formatDuration(59_400), '59 s');
  assert.equal(formatDuration(47 * 3600_000), '47 h');
});

test('escapeHtml covers the five characters that matter', () => {
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
});

test('the page escapes addresses, reasons and every other text, and has no script at all', () => {
  const html = renderStatusPage(snapshot({ problems: ['job controller: <oops>'] }));
  assert.ok(!/<script/i.test(html), 'no script element, whatever the data');
  assert.ok(html.includes('&quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;@evil.example'), 'the hostile address, escaped');
  assert.ok(html.includes('451 4.4.1 &lt;b&gt;try later&lt;/b&gt; &amp; &quot;soon&quot;'), 'the remote reason, escaped');
  assert.ok(!html.includes('<b>try'), 'no markup from the reason');
  assert.ok(html.includes('/srv/&lt;tsubame&gt;'));
  assert.ok(html.includes('job controller: &lt;oops&gt;'));
});

test('the page: meta refresh, the sections, right-aligned numbers, relative times', () => {
  const html = renderStatusPage(snapshot());
  assert.match(html, /<meta http-equiv="refresh" content="5">/);
  for (const h of ['Processes', 'Services', 'Pools and jobs', 'Queue', 'Recent deferrals']) assert.ok(html.includes(`<h2>${h}</h2>`), h);
  assert.ok(html.includes('<td class="n">1234</td>'), 'served, right-aligned');
  assert.ok(html.includes('>3 min ago<'), 'the deferral 3 minutes ago');
  assert.ok(html.includes('>3 h<'), 'the oldest message, 3 hours');
  assert.ok(html.includes('127.0.13.1:2525'));
  assert.ok(html.includes('5.0 ms'), 'mean enqueue latency');
  assert.ok(html.includes('tcp_local (stopped)'));
  assert.match(html, /<style>[^<]*td\.n[^<]*text-align:right/);
});

test('recent deferrals say when the recipient was later delivered, returned or deleted', () => {
  const q = (id: string, later: InstanceSnapshot['deferrals'][number]['later']) => ({ time: new Date(NOW - 600_000), event: 'Q' as const, id, source: 'tcp_intranet', destination: 'tcp_local', size: 1, from: 'a@b', recipient: `${id.toLowerCase()}@x`, status: '451 4.4.1 refused', later });
  const html = renderStatusPage(
    snapshot({
      deferrals: [
        q('DELIVERED', { event: 'D', time: new Date(NOW - 120_000), status: '250 2.0.0 ok' }),
        q('DELETED', { event: 'X', time: new Date(NOW - 50_000), status: 'deleted by the operator (imsimta qm delete)' }),
        q('RETURNED', { event: 'R', time: new Date(NOW - 30_000), status: '5.4.7 expired' }),
        q('WAITING', null),
      ],
    }),
  );
  assert.ok(html.includes('<th>Since</th>'));
  const row = (id: string) => html.match(new RegExp(`<tr><td[^>]*>[^<]*</td><td>${id}</td>.*?</tr>`))?.[0] ?? '';
  assert.match(row('DELIVERED'), />delivered 2 min ago</);
  assert.match(row('DELETED'), />deleted by the operator 50 s ago</);
  assert.match(row('RETURNED'), />returned to the sender 30 s ago</);
  assert.match(row('WAITING'), /<td class="none">–<\/td><\/tr>$/);
});

test('parts that are down say so instead of showing empty tables', () => {
  const html = renderStatusPage(snapshot({ services: null, jobController: null, deferrals: [], queue: [] }));
  assert.ok(html.includes('The dispatcher is not running.'));
  assert.ok(html.includes('The job controller is not running.'));
  assert.ok(html.includes('No deferral in log/mail.log.'));
});
