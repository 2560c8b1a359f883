// Time-series charts for the status page as inline SVG, drawn on the server: no script, no
// charting library, nothing fetched from elsewhere (the page's Content-Security-Policy allows
// neither). A chart has a title, a y axis with round steps, hour or minute marks in UTC, one
// line per series, a step per minute (a gap where a value is missing), with a dot on its last
// value, and a legend with each series' last value. Every text is escaped. Pure.
import { escapeHtml } from './html.js';

export interface ChartSeries {
  name: string;
  color: string;
  values: Array<number | null>;
}

export interface ChartSpec {
  /** `class` and the anchor of the chart: `[a-z-]+`. */
  id: string;
  title: string;
  /** Said after the numbers of the axis and legend: `/min`, ` s`, … */
  unit?: string;
  /** Start of each point's minute (ms); as long as every series. */
  times: number[];
  series: ChartSeries[];
  width?: number;
  height?: number;
}

/** Colors distinguishable on white and by most color-blind readers (Okabe–Ito). */
export const PALETTE = ['#0072b2', '#009e73', '#e69f00', '#d55e00', '#cc79a7', '#56b4e9', '#8a6d00', '#4d4d4d'];

const PAD = { left: 44, right: 20, top: 26, bottom: 22 };
const MINUTE = 60_000;
/** The shortest time axis: a chart of the first minutes is not stretched over the whole width. */
const MIN_SPAN = 30 * MINUTE;

/** The smallest 1, 2 or 5 × 10^k at or above `x`. */
function niceStep(x: number): number {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 5, 10]) if (m * p >= x - 1e-9 * p) return m * p;
  return 10 * p;
}

/** The y axis for values up to `max`: about four round steps (whole ones for counts), and its top. */
export function yAxis(max: number, whole: boolean): { step: number; top: number } {
  const step = Math.max(whole ? 1 : 0, niceStep(max / 4));
  // Rounded: 3 × 0.1 is 0.30000000000000004 in binary.
  return { step, top: Math.max(step, Math.round(Math.ceil(max / step - 1e-9) * step * 1e9) / 1e9) };
}

/** `1.2k`, `35`, `0.5` for the axis. */
function shortNumber(n: number): string {
  if (n >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${Math.round(n / 1e3)}k`;
  if (n >= 1e3) return `${+(n / 1e3).toFixed(1)}k`;
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

function hhmm(ms: number): string {
  return new Date(ms).toISOString().slice(11, 16);
}

/** Marks along the time axis: every 5, 10, 15, 30 minutes or 1, 2 hours, whichever gives at most 7. */
function timeMarks(from: number, to: number): number[] {
  const span = Math.max(60_000, to - from);
  const step = [5, 10, 15, 30, 60, 120].map((m) => m * 60_000).find((s) => span / s <= 6) ?? 120 * 60_000;
  const marks: number[] = [];
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) marks.push(t);
  return marks;
}

const f = (x: number) => (Math.round(x * 10) / 10).toString();

export function renderChart(c: ChartSpec): string {
  const width = c.width ?? 540;
  const height = c.height ?? 190;
  const legendRows = Math.ceil(c.series.length / 3);
  const legendHeight = legendRows * 16 + 4;
  const plotW = width - PAD.left - PAD.right;
  const plotH = height - PAD.top - PAD.bottom;
  const unit = c.unit ?? '';
  // Each value holds for its minute: the axis runs to the end of the last one, over at least MIN_SPAN.
  const to = (c.times[c.times.length - 1] ?? 0) + MINUTE;
  const from = Math.min(c.times[0] ?? to, to - MIN_SPAN);
  const values = c.series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  const { step, top: max } = yAxis(Math.max(0, ...values), values.every((v) => Number.isInteger(v)));
  const x = (t: number) => PAD.left + ((t - from) / (to - from)) * plotW;
  const y = (v: number) => PAD.top + plotH - (v / max) * plotH;

  const parts: string[] = [];
  parts.push(`<text class="chart-title" x="${PAD.left}" y="16">${escapeHtml(c.title)}</text>`);
  // Grid and y labels at each step.
  for (let i = 0; i * step <= max + 1e-9; i++) {
    const v = i * step;
    const yy = f(y(v));
    parts.push(`<line class="grid" x1="${PAD.left}" x2="${PAD.left + plotW}" y1="${yy}" y2="${yy}"/>`);
    parts.push(`<text class="axis" x="${PAD.left - 5}" y="${f(y(v) + 4)}" text-anchor="end">${escapeHtml(shortNumber(v))}</text>`);
  }
  for (const t of timeMarks(from, to)) {
    const xx = f(x(t));
    parts.push(`<line class="tick" x1="${xx}" x2="${xx}" y1="${PAD.top + plotH}" y2="${PAD.top + plotH + 4}"/>`);
    parts.push(`<text class="axis" x="${xx}" y="${PAD.top + plotH + 16}" text-anchor="middle">${hhmm(t)}</text>`);
  }
  parts.push(`<line class="axis-line" x1="${PAD.left}" x2="${PAD.left + plotW}" y1="${PAD.top + plotH}" y2="${PAD.top + plotH}"/>`);

  for (const s of c.series) {
    // One polyline per run of values without a gap, a step per minute.
    let run: string[] = [];
    const lines: string[] = [];
    s.values.forEach((v, i) => {
      if (v === null) {
        if (run.length) lines.push(run.join(' '));
        run = [];
        return;
      }
      const t = c.times[i]!;
      run.push(`${f(x(t))},${f(y(v))}`, `${f(x(t + MINUTE))},${f(y(v))}`);
    });
    if (run.length) lines.push(run.join(' '));
    const color = escapeHtml(s.color);
    const lastIndex = findLastIndex(s.values, (v) => v !== null);
    // The numbers behind the line, for a reader that cannot see it (and for tests).
    const sum = s.values.reduce<number>((n, v) => n + (v ?? 0), 0);
    const last = lastIndex >= 0 ? s.values[lastIndex]! : null;
    parts.push(`<g class="series" data-series="${escapeHtml(s.name)}" data-sum="${f(sum)}" data-last="${last === null ? '' : f(last)}">`);
    for (const points of lines) parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" stroke-linejoin="round" points="${points}"/>`);
    if (lastIndex >= 0) parts.push(`<circle cx="${f(x(c.times[lastIndex]! + MINUTE))}" cy="${f(y(last!))}" r="3" fill="${color}"><title>${escapeHtml(`${s.name}: ${last}${unit} at ${hhmm(c.times[lastIndex]!)} UTC`)}</title></circle>`);
    parts.push('</g>');
  }

  // Legend under the plot: three per row, each with its last value.
  const colW = plotW / 3;
  c.series.forEach((s, i) => {
    const lx = PAD.left + (i % 3) * colW;
    const ly = height + Math.floor(i / 3) * 16 + 10;
    const last = [...s.values].reverse().find((v) => v !== null);
    parts.push(`<rect x="${f(lx)}" y="${ly - 8}" width="10" height="10" fill="${escapeHtml(s.color)}"/>`);
    parts.push(`<text class="legend" x="${f(lx + 14)}" y="${ly + 1}">${escapeHtml(`${s.name}${last === undefined || last === null ? '' : `: ${shortNumber(last)}${unit}`}`)}</text>`);
  });

  const label = `${c.title}, ${hhmm(from)} to ${hhmm(to)} UTC`;
  return `<svg class="chart chart-${escapeHtml(c.id)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height + legendHeight}" width="${width}" height="${height + legendHeight}" role="img" aria-label="${escapeHtml(label)}"><title>${escapeHtml(label)}</title>${parts.join('')}</svg>`;
}

function findLastIndex<T>(xs: T[], p: (x: T) => boolean): number {
  for (let i = xs.length - 1; i >= 0; i--) if (p(xs[i]!)) return i;
  return -1;
}
