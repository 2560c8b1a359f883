// The Prometheus text exposition format, version 0.0.4, written by hand from plain data:
// one HELP and one TYPE line per family, then its samples; label values and help texts escaped
// as the format says. The numbers are gathered from several processes at each scrape, so a
// registry of live instruments (prom-client) would only be refilled and emptied again.
import { cumulativeCounts, type HistogramSnapshot } from '../common/histogram.js';

export const EXPOSITION_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export type Labels = Record<string, string>;

export interface Sample {
  labels: Labels;
  value: number;
}

export interface HistogramSample {
  labels: Labels;
  histogram: HistogramSnapshot;
}

export type MetricFamily =
  | { name: string; help: string; type: 'counter' | 'gauge'; samples: Sample[] }
  | { name: string; help: string; type: 'histogram'; samples: HistogramSample[] };

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** `\` → `\\`, `"` → `\"`, line feed → `\n`. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text: `\` → `\\`, line feed → `\n`. */
export function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** Go's float syntax as Prometheus parses it. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function formatLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  for (const [k] of entries) if (!LABEL_NAME.test(k) || k.startsWith('__')) throw new Error(`bad label name ${JSON.stringify(k)}`);
  return `{${entries.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}`;
}

/** The whole exposition; a family without samples is left out. Throws on a bad metric or label name (a bug, not data). */
export function formatExposition(families: readonly MetricFamily[]): string {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const f of families) {
    if (!METRIC_NAME.test(f.name)) throw new Error(`bad metric name ${JSON.stringify(f.name)}`);
    if (seen.has(f.name)) throw new Error(`metric ${f.name} given twice`);
    seen.add(f.name);
    if (f.samples.length === 0) continue;
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    if (f.type === 'histogram') {
      for (const s of f.samples) out.push(...histogramLines(f.name, s));
    } else {
      for (const s of f.samples) out.push(`${f.name}${formatLabels(s.labels)} ${formatValue(s.value)}`);
    }
  }
  return out.length ? out.join('\n') + '\n' : '';
}

function histogramLines(name: string, s: HistogramSample): string[] {
  if ('le' in s.labels) throw new Error(`histogram ${name} may not have a label "le"`);
  const cumulative = cumulativeCounts(s.histogram);
  const lines = s.histogram.bounds.map((bound, i) => `${name}_bucket${formatLabels({ ...s.labels, le: formatValue(bound) })} ${cumulative[i]}`);
  // +Inf and _count from the buckets themselves, so that they always agree.
  const total = cumulative[cumulative.length - 1] ?? 0;
  lines.push(`${name}_bucket${formatLabels({ ...s.labels, le: '+Inf' })} ${total}`);
  lines.push(`${name}_sum${formatLabels(s.labels)} ${formatValue(s.histogram.sum)}`);
  lines.push(`${name}_count${formatLabels(s.labels)} ${total}`);
  return lines;
}
