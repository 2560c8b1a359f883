// Keeps the master channel jobs of one thread, one per channel, between requests, so that a
// job's connections and caches serve the next batch too. A new configuration generation closes
// them all (they are made again from the new configuration).
import type { InstanceConfig } from '../config/types.js';
import type { ChannelJob, DeliveryItem, MessageOutcome } from '../channels/types.js';
import type { Logger } from '../common/logger.js';
import { channelJobFactory } from '../channels/index.js';
import { queueStoreFor } from '../queue/instance-store.js';
import { instancePaths } from '../common/instance.js';
import type { QueueStore } from '../queue/store.js';

export interface JobTask {
  channel: string;
  /** Configuration generation: a different one closes the jobs made from an older one. */
  generation: number;
  config: InstanceConfig;
  items: DeliveryItem[];
}

export interface JobTaskResult {
  outcomes: MessageOutcome[];
  threadId: number;
}

export class JobHost {
  private generation = -1;
  private store: QueueStore | null = null;
  private readonly jobs = new Map<string, Promise<ChannelJob>>();

  constructor(private readonly logger: Logger, private readonly threadId: number) {}

  async run(task: JobTask): Promise<JobTaskResult> {
    if (task.generation !== this.generation) {
      await this.closeAll();
      this.generation = task.generation;
      this.store = queueStoreFor(instancePaths(task.config.root), task.config, this.logger);
    }
    const job = await this.jobFor(task);
    const outcomes = await job.deliver(task.items);
    return { outcomes, threadId: this.threadId };
  }

  private jobFor(task: JobTask): Promise<ChannelJob> {
    const key = task.channel.toLowerCase();
    let job = this.jobs.get(key);
    if (!job) {
      const channel = task.config.imta.channelByName.get(key);
      if (!channel) throw new Error(`channel ${task.channel} is not in imta.cnf`);
      const factory = channelJobFactory(channel);
      if (!factory) throw new Error(`channel ${task.channel} has no delivery program`);
      const store = this.store!;
      job = factory({ root: task.config.root, config: task.config, channel, logger: this.logger.child({ channel: channel.name }), openBody: (path) => store.openBody(path) });
      this.jobs.set(key, job);
      job.catch(() => this.jobs.delete(key)); // try again at the next request
    }
    return job;
  }

  async closeAll(): Promise<void> {
    const jobs = [...this.jobs.values()];
    this.jobs.clear();
    await Promise.all(jobs.map((j) => j.then((x) => x.close()).catch(() => {})));
    await this.store?.close();
    this.store = null;
  }
}
