// The watcher's side of METRICS_PORT: runs the metrics and status endpoint (src/metrics) inside
// the watcher process, started with the instance, moved or stopped when a reload changes the
// port, closed when the watcher stops. A port that cannot be bound is logged and leaves mail
// alone: the instance runs on without its endpoint, and a later reload tries again.
import type { Logger } from '../common/logger.js';
import { instancePaths } from '../common/instance.js';
import type { InstanceConfig } from '../config/types.js';
import type { FromChild, ListenerInfo } from '../dispatcher/protocol.js';
import { gatherSnapshot, type PartStatusLike } from '../metrics/gather.js';
import type { ReloadView } from '../metrics/snapshot.js';
import { startMetricsServer, METRICS_HOST, type MetricsServer } from '../metrics/server.js';

export interface WatcherMetricsOptions {
  root: string;
  logger: Logger;
  parts(): PartStatusLike[];
  listeners(): ListenerInfo[];
  /** The dispatcher's `processes` answer (its processes and service totals). */
  dispatcher(timeoutMs: number): Promise<FromChild | null>;
  /** The outcome of the last configuration change. */
  reload(): ReloadView;
}

export class WatcherMetrics {
  private server: MetricsServer | null = null;
  private config: InstanceConfig | null = null;
  private queue: Promise<void> = Promise.resolve();
  private readonly started = new Date(Date.now() - process.uptime() * 1000).toISOString();

  constructor(private readonly opts: WatcherMetricsOptions) {}

  /** Follows the configuration's METRICS_PORT (null: nothing listens). Never throws. */
  apply(config: InstanceConfig): Promise<void> {
    return this.serially(async () => {
      this.config = config;
      const wanted = config.options.metricsPort;
      if (this.server && this.server.port === wanted) return;
      await this.stopServer();
      if (wanted === null) return;
      try {
        this.server = await startMetricsServer({ port: wanted, logger: this.opts.logger, gather: (deferrals) => this.gather(deferrals) });
        this.opts.logger.info({ address: METRICS_HOST, port: wanted }, `metrics and status page on http://${METRICS_HOST}:${wanted}/`);
      } catch (err) {
        this.opts.logger.error({ port: wanted }, `${(err as Error).message}; the metrics endpoint is off until the next reload`);
      }
    });
  }

  close(): Promise<void> {
    return this.serially(() => this.stopServer());
  }

  private gather(deferrals: number) {
    const paths = instancePaths(this.opts.root);
    return gatherSnapshot(
      {
        root: paths.root,
        watcher: { pid: process.pid, started: this.started },
        parts: this.opts.parts,
        listeners: this.opts.listeners,
        dispatcher: this.opts.dispatcher,
        jobControllerSocket: paths.jobControllerSocket,
        queueDir: paths.queue,
        mailLog: paths.mailLog,
        channelNames: () => this.config?.imta.channels.map((c) => c.name) ?? [],
        reload: this.opts.reload,
      },
      { deferrals },
    );
  }

  private async stopServer(): Promise<void> {
    const server = this.server;
    this.server = null;
    await server?.close();
  }

  private serially(fn: () => Promise<void>): Promise<void> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => {});
    return run;
  }
}
