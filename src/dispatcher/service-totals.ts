// Per-service totals for the metrics endpoint: sessions served and the enqueue latency histogram
// since the dispatcher started. A server process reports its own counts while it lives; what
// the processes that have exited (retired, killed) did is kept here so that the totals never
// go back. Plain data, no I/O.
import { addHistograms, emptyHistogram, ENQUEUE_LATENCY_BOUNDS, type HistogramSnapshot } from '../common/histogram.js';
import { addAuthCounts, type AuthCounts, type ServiceSummary } from './protocol.js';

export interface LiveProcessCounts {
  connections: number;
  served: number;
  enqueueLatency: HistogramSnapshot | null;
  auth?: AuthCounts | null;
}

export class ServiceTotals {
  private servedByExited = 0;
  private latencyOfExited: HistogramSnapshot = emptyHistogram(ENQUEUE_LATENCY_BOUNDS);
  private authOfExited: AuthCounts = addAuthCounts(null, null);

  /** A server process has exited: its last reported counts become part of the service's past. */
  processExited(served: number, enqueueLatency: HistogramSnapshot | null, auth: AuthCounts | null = null): void {
    this.servedByExited += Math.max(0, served);
    this.latencyOfExited = addHistograms(this.latencyOfExited, enqueueLatency);
    this.authOfExited = addAuthCounts(this.authOfExited, auth);
  }

  summary(service: string, live: readonly LiveProcessCounts[]): ServiceSummary {
    let latency = this.latencyOfExited;
    for (const p of live) latency = addHistograms(latency, p.enqueueLatency);
    return {
      service,
      processes: live.length,
      connections: live.reduce((n, p) => n + p.connections, 0),
      served: this.servedByExited + live.reduce((n, p) => n + p.served, 0),
      enqueueLatency: latency,
      auth: live.reduce((sum, p) => addAuthCounts(sum, p.auth), this.authOfExited),
    };
  }
}
