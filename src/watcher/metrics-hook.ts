// The watcher's side of METRICS_PORT: runs the metrics and status endpoint (src/metrics) inside
// the watcher process, started with the instance, moved or stopped when a reload changes the
// port, closed when the watcher stops. A port that cannot be bound is logged and leaves mail
// alone: the instance runs on without its endpoint, and a later reload tries again.
// While the endpoint is on, the watcher also keeps the status page's history (metrics/history.ts):
// every HISTORY_SAMPLE_MS, and at each request, it reads the new lines of mail.log and samples
// the queue depth and the open sessions.
import type { Logger } from '../common/logger.js';
import { instancePaths } from '../common/instance.js';
import type { InstanceConfig } from '../config/types.js';
import type { FromChild, ListenerInfo } from '../dispatcher/protocol.js';
import { gatherSnapshot, type PartStatusLike } from '../metrics/gather.js';
import type { ReloadView } from '../metrics/snapshot.js';
import { startMetricsServer, METRICS_HOST, type MetricsServer } from '../metrics/server.js';
import type { InstanceSnapshot } from '../metrics/snapshot.js';
import { TrafficHistory, type OutcomeGroup } from '../metrics/history.js';
import { MailLogFollower } from '../metrics/mail-log-follow.js';
import { RejectionCounts } from '../metrics/rejections.js';
import { lookupQueued } from '../queue/index.js';
import type { GroupPage } from '../metrics/status-page.js';
import { parseLooseMailLogLine } from '../common/mail-log-read.js';

/** How often the history samples the instance when nobody looks at the page. */
const HISTORY_SAMPLE_MS = 15_000;

export interface WatcherMetricsOptions {
  root: string;
  logger: Logger;
  parts: () => PartStatusLike[];
  listeners: () => ListenerInfo[];
  /** The dispatcher's `processes` answer (its processes and service totals). */
  dispatcher: (timeoutMs: number) => Promise<FromChild | null>;
  /** The outcome of the last configuration change. */
  reload: () => ReloadView;
}

export class WatcherMetrics {
  private server: MetricsServer | null = null;
  private config: InstanceConfig | null = null;
  private queue: Promise<void> = Promise.resolve();
  private readonly started = new Date(Date.now() - process.uptime() * 1000).toISOString();
  private history: TrafficHistory | null = null;
  private rejections: RejectionCounts | null = null;
  private follower: MailLogFollower | null = null;
  private sampler: NodeJS.Timeout | null = null;
  private sampling: Promise<unknown> | null = null;

  constructor(private readonly opts: WatcherMetricsOptions) {}

  /**
   * Follows the configuration's METRICS_PORT (null: nothing listens). Never throws: a port that
   * cannot be bound resolves to the one-line reason (start-msg shows it), else null.
   */
  apply(config: InstanceConfig): Promise<string | null> {
    return this.serially(async () => {
      this.config = config;
      const wanted = config.options.metricsPort;
      if (this.server?.port === wanted) return null;
      await this.stopServer();
      if (wanted === null) return null;
      try {
        this.server = await startMetricsServer({ port: wanted, logger: this.opts.logger, gather: (deferrals) => this.gather(deferrals), groupPage: (group) => this.groupPage(group) });
        this.startHistory();
        this.opts.logger.info({ address: METRICS_HOST, port: wanted }, `metrics and status page on http://${METRICS_HOST}:${wanted}/`);
        return null;
      } catch (err) {
        const reason = `${(err as Error).message}; the metrics endpoint is off until the next reload`;
        this.opts.logger.error({ port: wanted }, reason);
        return reason;
      }
    });
  }

  close(): Promise<void> {
    return this.serially(() => this.stopServer()).then(() => {});
  }

  private startHistory(): void {
    this.history ??= new TrafficHistory();
    this.rejections ??= new RejectionCounts(new Date().toISOString());
    this.follower ??= new MailLogFollower(instancePaths(this.opts.root).mailLog);
    if (this.sampler) return;
    this.sampler = setInterval(() => void this.sample().catch((err: Error) => this.opts.logger.warn({ err: err.message }, 'status history sample failed')), HISTORY_SAMPLE_MS);
    this.sampler.unref();
    void this.sample().catch(() => {});
  }

  private async stopHistory(): Promise<void> {
    if (this.sampler) clearInterval(this.sampler);
    this.sampler = null;
    await this.sampling?.catch(() => {});
    await this.follower?.close();
    this.follower = null;
    this.history = null;
    this.rejections = null;
  }

  /** The new lines of mail.log into the history. */
  private async readMailLog(): Promise<void> {
    const history = this.history;
    const rejections = this.rejections;
    if (!this.follower || !history) return;
    const now = Date.now();
    await this.follower.poll((line) => {
      const r = parseLooseMailLogLine(line);
      if (!r) return;
      history.addRecord(r, now);
      rejections?.add(r);
    });
  }

  /** A sample of the timer: shares a request's gathering when one is under way. */
  private sample(): Promise<unknown> {
    this.sampling ??= this.gather(0).finally(() => (this.sampling = null));
    return this.sampling;
  }

  private recordSample(s: InstanceSnapshot): void {
    this.history?.addSample(s.takenAt, { queue: s.queue, connections: s.services ? s.services.reduce((n, x) => n + x.connections, 0) : null });
  }

  /** A snapshot; the history takes its sample, and the status page's (deferrals > 0) carries the charts. */
  private async gather(deferrals: number): Promise<InstanceSnapshot> {
    await this.readMailLog().catch((err: Error) => this.opts.logger.warn({ err: err.message }, 'cannot read mail.log for the status history'));
    const snapshot = await this.snapshot(deferrals);
    this.recordSample(snapshot);
    if (this.rejections) snapshot.rejections = this.rejections.snapshot();
    if (deferrals > 0 && this.history) {
      snapshot.history = this.history.view(snapshot.takenAt);
      snapshot.outcomeGroups = this.history.groups(snapshot.takenAt);
    }
    return snapshot;
  }

  private async groupPage(group: Pick<OutcomeGroup, 'event' | 'destination' | 'reason'>): Promise<GroupPage> {
    await this.readMailLog().catch(() => {});
    const now = Date.now();
    const records = this.history?.groupRecords(now, group) ?? [];
    const queued = await lookupQueued(instancePaths(this.opts.root).queue, records.filter((r) => r.id !== '').map((r) => ({ id: r.id, channel: r.channel })));
    return { takenAt: now, group, records, queued };
  }

  private snapshot(deferrals: number) {
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
    await this.stopHistory();
    await server?.close();
  }

  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.then(
      () => {},
      () => {},
    );
    return run;
  }
}
