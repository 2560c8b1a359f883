// The Prometheus text format written by src/metrics/exposition.ts, read back by a strict parser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { escapeHelp, escapeLabelValue, formatExposition, formatValue, type MetricFamily } from '../../src/metrics/exposition.js';
import { addHistograms, emptyHistogram, isHistogramSnapshot, LatencyHistogram, observe, cumulativeCounts } from '../../src/common/histogram.js';
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.js';

test('label values and help texts are escaped as the format says, and read back unchanged', () => {
  const hostile = 'a\\b"c\nd}{,=x';
  assert.equal(escapeLabelValue(hostile), 'a\\\\b\\"c\\nd}{,=x');
  assert.equal(escapeHelp('line one\nback\\slash "quotes" stay'), 'line one\\nback\\\\slash "quotes" stay');
  const text = formatExposition([
    { name: 'tsubame_test_total', help: 'Help with\na line feed and a \\ backslash.', type: 'counter', samples: [{ labels: { channel: hostile, other: '' }, value: 3 }] },
  ]);
  const parsed = parsePrometheusText(text);
  const f = parsed.get('tsubame_test_total')!;
  assert.equal(f.type, 'counter');
  assert.equal(f.help, 'Help with\na line feed and a \\ backslash.');
  assert.deepEqual(f.samples[0]!.labels, { channel: hostile, other: '' });
  assert.equal(f.samples[0]!.value, 3);
  assert.equal(text.split('\n').length, 4, 'HELP, TYPE, one sample, final line feed: a line feed in a value never splits a line');
});

test('values: integers, fractions, infinities and NaN in Go syntax', () => {
  assert.deepEqual([0, 42, 0.0025, 1e-7, Infinity, -Infinity, NaN].map(formatValue), ['0', '42', '0.0025', '1e-7', '+Inf', '-Inf', 'NaN']);
});

test('histograms: cumulative buckets with le, +Inf, _sum and _count that agree', () => {
  const h = new LatencyHistogram([0.001, 0.01, 0.1]);
  for (const v of [0.0005, 0.001, 0.002, 0.05, 0.5, 3]) h.observe(v);
  const snap = h.snapshot();
  assert.deepEqual(snap.counts, [2, 1, 1, 2], '≤ bound goes into that bucket');
  assert.deepEqual(cumulativeCounts(snap), [2, 3, 4, 6]);
  const text = formatExposition([{ name: 'tsubame_enqueue_latency_seconds', help: 'x', type: 'histogram', samples: [{ labels: { service: 'SMTP' }, histogram: snap }] }]);
  const parsed = parsePrometheusText(text);
  const f = parsed.get('tsubame_enqueue_latency_seconds')!;
  assert.equal(f.type, 'histogram');
  assert.equal(sampleValue(parsed, 'tsubame_enqueue_latency_seconds', { service: 'SMTP', le: '0.01' }, 'tsubame_enqueue_latency_seconds_bucket'), 3);
  assert.equal(sampleValue(parsed, 'tsubame_enqueue_latency_seconds', { service: 'SMTP', le: '+Inf' }, 'tsubame_enqueue_latency_seconds_bucket'), 6);
  assert.equal(sampleValue(parsed, 'tsubame_enqueue_latency_seconds', { service: 'SMTP' }, 'tsubame_enqueue_latency_seconds_count'), 6);
  assert.ok(Math.abs(sampleValue(parsed, 'tsubame_enqueue_latency_seconds', { service: 'SMTP' }, 'tsubame_enqueue_latency_seconds_sum')! - 3.5535) < 1e-9);
});

test('histograms add up when their bounds agree, and ignore one with other bounds', () => {
  const a = emptyHistogram([1, 2]);
  const b = emptyHistogram([1, 2]);
  observe(a, 0.5);
  observe(b, 1.5);
  observe(b, 9);
  const sum = addHistograms(a, b);
  assert.deepEqual([sum.counts, sum.count, sum.sum], [[1, 1, 1], 3, 11]);
  assert.deepEqual(addHistograms(a, emptyHistogram([5])).counts, a.counts);
  assert.deepEqual(a.counts, [1, 0, 0], 'the inputs are not changed');
  assert.ok(isHistogramSnapshot(sum));
  assert.ok(!isHistogramSnapshot({ bounds: [1], counts: [1], sum: 0, count: 1 }), 'counts must have one entry more than bounds');
  assert.ok(!isHistogramSnapshot(null));
});

test('families without samples are left out; bad names and a label "le" on a histogram are refused', () => {
  assert.equal(formatExposition([{ name: 'tsubame_empty', help: 'x', type: 'gauge', samples: [] }]), '');
  assert.throws(() => formatExposition([{ name: 'bad-name', help: 'x', type: 'gauge', samples: [{ labels: {}, value: 1 }] }]), /bad metric name/);
  assert.throws(() => formatExposition([{ name: 'ok', help: 'x', type: 'gauge', samples: [{ labels: { 'bad-label': 'v' }, value: 1 }] }]), /bad label name/);
  assert.throws(() => formatExposition([{ name: 'ok', help: 'x', type: 'gauge', samples: [{ labels: { __reserved: 'v' }, value: 1 }] }]), /bad label name/);
  const h: MetricFamily = { name: 'h', help: 'x', type: 'histogram', samples: [{ labels: { le: '1' }, histogram: emptyHistogram([1]) }] };
  assert.throws(() => formatExposition([h]), /le/);
  const twice: MetricFamily[] = [
    { name: 'same', help: 'x', type: 'gauge', samples: [{ labels: {}, value: 1 }] },
    { name: 'same', help: 'x', type: 'gauge', samples: [{ labels: {}, value: 2 }] },
  ];
  assert.throws(() => formatExposition(twice), /twice/);
});

test('the test parser is strict: it refuses what Prometheus would refuse', () => {
  const bad = [
    'no_line_feed 1',
    'x{a="unterminated} 1\n',
    'x{a="bad \\t escape"} 1\n',
    'x 1.2.3\n',
    '# TYPE x counter\nx -1\n',
    '# TYPE x gauge\nx 1\n# TYPE y gauge\ny 1\nx 2\n',
    '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',
    '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n',
  ];
  for (const text of bad) assert.throws(() => parsePrometheusText(text), Error, JSON.stringify(text));
});
