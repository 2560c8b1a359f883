// Keeps the master channel jobs of one thread, one per channel, between requests, so that a
// job's connections and caches serve the next batch too, and every batch of an SMTP channel joins
// its one fan-out. A new configuration generation makes the jobs again from the new configuration;
// the old ones finish the batches they have and close. Each SMTP channel's traffic shaper outlives
// its jobs (what it learnt of each destination stays across reloads, under the new limits). The
// thread publishes its fan-outs' status for the job controller (fanout-board.ts).
import type { InstanceConfig } from '../config/types.js';
import type { ChannelJob, DeliveryItem, MessageOutcome } from '../channels/types.js';
import type { Logger } from '../common/logger.js';
import { channelJobFactory } from '../channels/index.js';
import { queueStoreFor } from '../queue/instance-store.js';
import { instancePaths } from '../common/instance.js';
import type { QueueStore } from '../queue/store.js';
import { readMessageSync } from '../queue/index.js';
import { getSharedDnsCache } from '../dns/cache.js';
import { getSharedReachabilityCache } from '../delivery/reachability.js';
import { DeliveryStatsTracker, type DeliveryCounters } from './delivery-stats.js';
import { FanoutPublisher } from './fanout-board.js';
import { makeChannelShaper, reconfigureShaper, type Shaper } from '../shaping/index.js';
import { farmShapingCounters } from '../farm/index.js';
import { channelProgram } from '../channels/index.js';

export interface JobTask {
  channel: string;
  /** Configuration generation: a different one closes the jobs made from an older one. */
  generation: number;
  /**
   * The configuration of that generation. Left out when the thread is expected to have it (it is
   * copied into the thread with every request that carries it): a thread that does not answers
   * `needConfig` and the runner sends the request again with it.
   */
  config?: InstanceConfig;
  items: DeliveryItem[];
  /** Counts flushes (ETRN, imsimta flush): a different one empties the thread's host reachability cache first. */
  flushGeneration?: number;
  /**
   * The batch's time limit (MAX_LIFE_AGE): past it the job stops, closes the connections it
   * holds and reports the rest as deferred. The runner ends the whole thread only when a job
   * does not even do that (see runner.ts).
   */
  timeoutMs?: number;
}

export interface JobTaskResult {
  outcomes: MessageOutcome[];
  threadId: number;
  /** DNS cache and connection counts of this thread since its last report (metrics). */
  delivery?: DeliveryCounters;
  /** The request came without a configuration and the thread has not got that generation's: send it again with it. */
  needConfig?: boolean;
}

export class JobHost {
  private generation = -1;
  private config: InstanceConfig | null = null;
  private flushGeneration = 0;
  private store: QueueStore | null = null;
  private readonly jobs = new Map<string, Promise<ChannelJob>>();
  /** Jobs made, by channel (resolved ones only), for the fan-out status. */
  private readonly made = new Map<string, ChannelJob>();
  /** Old generations' jobs finishing their batches. */
  private retiring: Promise<void> = Promise.resolve();
  private readonly shapers = new Map<string, Shaper>();
  private publisher: FanoutPublisher | null = null;
  private readonly deliveryStats = new DeliveryStatsTracker(() => getSharedDnsCache().stats);

  constructor(private readonly logger: Logger, private readonly threadId: number) {}

  async run(task: JobTask): Promise<JobTaskResult> {
    // A request of an older generation (sent before a reload) runs with the newer configuration.
    if (task.generation > this.generation) {
      if (!task.config) return { outcomes: [], threadId: this.threadId, needConfig: true };
      // Switch at once (other jobs of this thread may be running): later requests see the new
      // generation; the old jobs finish the batches they have meanwhile, then close.
      const retired = this.detachAll();
      this.retiring = Promise.all([this.retiring, retired]).then(() => {});
      this.generation = task.generation;
      this.config = task.config;
      this.store = queueStoreFor(instancePaths(task.config.root), task.config, this.logger);
      for (const shaper of this.shapers.values()) reconfigureShaper(shaper, task.config);
      this.publisher ??= new FanoutPublisher(task.config.root, this.threadId, () => this.fanouts());
    }
    if (task.flushGeneration !== undefined && task.flushGeneration !== this.flushGeneration) {
      // Hosts found down before a flush are tried again, as Postfix flushes its dead-host cache.
      this.flushGeneration = task.flushGeneration;
      getSharedReachabilityCache().clear();
    }
    const job = await this.jobFor(task);
    const abort = new AbortController();
    const timer = task.timeoutMs ? setTimeout(() => abort.abort(new Error(timeLimitText(task.timeoutMs!))), task.timeoutMs) : null;
    try {
      const outcomes = await job.deliver(task.items, { signal: abort.signal });
      return { outcomes, threadId: this.threadId, delivery: this.deliveryStats.delta(job) };
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  private jobFor(task: JobTask): Promise<ChannelJob> {
    const key = task.channel.toLowerCase();
    let job = this.jobs.get(key);
    if (!job) {
      const config = this.config!;
      const channel = config.imta.channelByName.get(key);
      if (!channel) throw new Error(`channel ${task.channel} is not in imta.cnf`);
      const factory = channelJobFactory(channel);
      if (!factory) throw new Error(`channel ${task.channel} has no delivery program`);
      const store = this.store!;
      let shaper = this.shapers.get(key);
      if (!shaper && channelProgram(channel) === 'smtp') {
        // A farm's node counts the channel's limits with the other nodes (FARM_REDIS_URL), else alone.
        const counters = farmShapingCounters(config.options.farm, channel.name, this.logger.child({ channel: channel.name })) ?? undefined;
        this.shapers.set(key, (shaper = makeChannelShaper(config, channel.name, counters)));
      }
      job = factory({
        root: config.root,
        config,
        channel,
        logger: this.logger.child({ channel: channel.name }),
        openBody: (path) => store.openBody(path),
        readMessage: (path) => readMessage(store, path),
        shaper,
      });
      this.jobs.set(key, job);
      job.then(
        (made) => this.made.set(key, made),
        () => this.jobs.delete(key), // try again at the next request
      );
    }
    return job;
  }

  /** The fan-outs of the jobs made in this generation (SMTP channels). */
  private fanouts(): Array<{ channel: string; status: () => import('../delivery/fanout.js').FanoutStatus }> {
    const out: Array<{ channel: string; status: () => import('../delivery/fanout.js').FanoutStatus }> = [];
    for (const [key, job] of this.made) {
      const status = job.status?.bind(job);
      if (status) out.push({ channel: this.config?.imta.channelByName.get(key)?.name ?? key, status });
    }
    return out;
  }

  /** Detaches the jobs and the store at once; the promise tells when they have finished their batches and closed. */
  private async detachAll(): Promise<void> {
    const jobs = [...this.jobs.values()];
    this.jobs.clear();
    for (const key of this.made.keys()) this.publisher?.gone(this.config?.imta.channelByName.get(key)?.name ?? key);
    this.made.clear();
    const store = this.store;
    this.store = null;
    await Promise.all(jobs.map((j) => j.then((x) => x.close()).catch(() => {})));
    await store?.close();
  }

  /** Closes the jobs (after their batches) and the store, the old generations' too. */
  async closeAll(): Promise<void> {
    await this.detachAll();
    await this.retiring;
    this.publisher?.close();
    this.publisher = null;
  }
}

export function timeLimitText(timeoutMs: number): string {
  return `the job did not finish within ${Math.round(timeoutMs / 1000)} s and was ended`;
}

/** A small message in one synchronous read (this thread only runs jobs), a large one streamed. */
async function readMessage(store: QueueStore, path: string): Promise<Buffer | NodeJS.ReadableStream> {
  const body = readMessageSync(path);
  if (!body) throw Object.assign(new Error(`${path} is gone`), { code: 'ENOENT' });
  return body === 'stream' ? store.openBody(path) : body;
}
