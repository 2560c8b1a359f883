// Refusals per rule for tsubame_rejections_total and the status page (src/metrics/rejections.ts):
// J records only, since the start, grouped as imsimta report groups them, bounded in reasons.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RejectionCounts, REJECTION_REASONS } from '../../src/metrics/rejections.js';
import { metricFamilies } from '../../src/metrics/metrics-text.js';
import { renderStatusPage } from '../../src/metrics/status-page.js';
import type { InstanceSnapshot } from '../../src/metrics/snapshot.js';

const at = (iso: string, event: string, status: string) => ({ time: iso, event, status });

test('J records since the start, by the rule that decided; other events and older records not counted', () => {
  const c = new RejectionCounts('2026-06-01T10:00:00.000Z');
  c.add(at('2026-06-01T09:59:59.999Z', 'J', 'PORT_ACCESS: 554 5.7.1 go away (mappings:3)'));
  c.add(at('2026-06-01T10:00:01.000Z', 'J', 'PORT_ACCESS: 554 5.7.1 go away (mappings:3)'));
  c.add(at('2026-06-01T10:00:02.000Z', 'J', 'rbl:bl.test: 554 5.7.1 access_control: host 192.0.2.1 found on DNS list bl.test: listed'));
  c.add(at('2026-06-01T10:00:03.000Z', 'J', 'milter:rspamd: 554 5.7.1 Gtube pattern'));
  c.add(at('2026-06-01T10:00:04.000Z', 'J', 'milter:rspamd: 451 4.7.1 Service unavailable - try again later (default action: connect failed)'));
  c.add(at('2026-06-01T10:00:05.000Z', 'J', '550 5.7.1 <a@b.test>: Relaying denied'));
  c.add(at('2026-06-01T10:00:06.000Z', 'E', 'queued'));
  assert.deepEqual(c.snapshot(), [
    { reason: 'milter:rspamd', count: 2 },
    { reason: 'PORT_ACCESS', count: 1 },
    { reason: 'rbl:bl.test', count: 1 },
    { reason: 'relay', count: 1 },
  ]);
});

test('past REJECTION_REASONS distinct rules the rest count as other', () => {
  const c = new RejectionCounts('');
  for (let i = 0; i < REJECTION_REASONS + 5; i++) c.add(at('2026-06-01T10:00:00Z', 'J', `rbl:bl${i}.test: 554 5.7.1 listed`));
  const s = c.snapshot();
  assert.equal(s.length, REJECTION_REASONS + 1);
  assert.deepEqual(s.find((r) => r.reason === 'other'), { reason: 'other', count: 5 });
});

test('the counter family and the status page table', () => {
  const snapshot = {
    takenAt: Date.parse('2026-06-01T10:00:00Z'),
    root: '/srv/mta',
    watcher: { pid: 1, started: '2026-06-01T09:00:00Z' },
    parts: [],
    listeners: [],
    processes: [],
    services: null,
    waitingConnections: null,
    jobController: null,
    queue: null,
    deferrals: [],
    problems: [],
    rejections: [{ reason: 'milter:rspamd', count: 2 }, { reason: 'DMARC', count: 1 }],
  } as InstanceSnapshot;
  const family = metricFamilies(snapshot).find((f) => f.name === 'tsubame_rejections_total');
  assert.equal(family?.type, 'counter');
  assert.deepEqual(family?.samples, [{ labels: { reason: 'milter:rspamd' }, value: 2 }, { labels: { reason: 'DMARC' }, value: 1 }]);
  const page = renderStatusPage(snapshot);
  assert.match(page, /<h2>Refusals by rule<\/h2>/);
  assert.match(page, /<td class="reason">milter:rspamd<\/td><td class="n">2<\/td>/);
});
