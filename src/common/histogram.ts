// Histograms as plain data: fixed bucket bounds, a count per bucket, the sum and the count.
// An SMTP server process keeps one for its enqueue latency and reports it whole; the dispatcher
// adds up those of its processes (the live ones and the ones that have exited); the metrics
// endpoint turns the result into Prometheus buckets. No I/O.

export interface HistogramSnapshot {
  /** Upper bounds of the buckets, ascending (seconds for latencies). */
  bounds: number[];
  /** Observations per bucket, not cumulative: counts[i] ≤ bounds[i] (and > bounds[i-1]); the last entry is above every bound. */
  counts: number[];
  sum: number;
  count: number;
}

/** Enqueue latency buckets: 1 ms … 1 s (seconds). */
export const ENQUEUE_LATENCY_BOUNDS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

export function emptyHistogram(bounds: readonly number[]): HistogramSnapshot {
  return { bounds: [...bounds], counts: new Array<number>(bounds.length + 1).fill(0), sum: 0, count: 0 };
}

/** Adds one observation (in place). */
export function observe(h: HistogramSnapshot, value: number): void {
  if (!Number.isFinite(value)) return;
  const v = Math.max(0, value);
  let i = 0;
  while (i < h.bounds.length && v > h.bounds[i]!) i++;
  h.counts[i]!++;
  h.sum += v;
  h.count++;
}

/** The sum of two histograms with the same bounds; `b` is ignored when its bounds differ. */
export function addHistograms(a: HistogramSnapshot, b: HistogramSnapshot | null | undefined): HistogramSnapshot {
  const out: HistogramSnapshot = { bounds: [...a.bounds], counts: [...a.counts], sum: a.sum, count: a.count };
  if (!b || !sameBounds(a.bounds, b.bounds)) return out;
  for (let i = 0; i < out.counts.length; i++) out.counts[i]! += b.counts[i] ?? 0;
  out.sum += b.sum;
  out.count += b.count;
  return out;
}

/** Cumulative counts for the Prometheus `le` buckets, the last one being `+Inf`. */
export function cumulativeCounts(h: HistogramSnapshot): number[] {
  const out: number[] = [];
  let running = 0;
  for (const c of h.counts) out.push((running += c));
  return out;
}

/** Data from another process is checked before it is added up. */
export function isHistogramSnapshot(x: unknown): x is HistogramSnapshot {
  if (!x || typeof x !== 'object') return false;
  const h = x as Partial<HistogramSnapshot>;
  return (
    Array.isArray(h.bounds) &&
    Array.isArray(h.counts) &&
    h.counts.length === h.bounds.length + 1 &&
    h.bounds.every((b) => typeof b === 'number' && Number.isFinite(b)) &&
    h.counts.every((c) => typeof c === 'number' && c >= 0) &&
    typeof h.sum === 'number' &&
    typeof h.count === 'number'
  );
}

function sameBounds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** One process's histogram: observe, and hand out copies. */
export class LatencyHistogram {
  private readonly h: HistogramSnapshot;
  constructor(bounds: readonly number[]) {
    this.h = emptyHistogram(bounds);
  }
  observe(seconds: number): void {
    observe(this.h, seconds);
  }
  snapshot(): HistogramSnapshot {
    return { bounds: [...this.h.bounds], counts: [...this.h.counts], sum: this.h.sum, count: this.h.count };
  }
}
