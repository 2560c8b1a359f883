// The job controller's view of the configuration: loading it, and the per-channel settings it
// schedules by (pool, job life limits, backoff and notices, when a new message is first due).
import type { Channel, InstanceConfig, PoolConfig } from '../config/types.js';
import { channelJobSection, JOB_CONTROLLER_DEFAULTS } from '../config/job-controller-cnf.js';
import { loadInstanceConfigOrThrow } from '../config/load.js';
import { backoffSchedule } from './backoff.js';
import { noticesSchedule } from '../notices/schedule.js';
import type { OutcomePolicy } from './outcome.js';
import { nextPeriodicRunMs } from './periodic.js';
import type { Envelope } from '../queue/types.js';

/** The validated configuration; throws with `file:line: …` lines on error. */
export async function loadConfig(root: string): Promise<InstanceConfig> {
  return loadInstanceConfigOrThrow(root);
}

/** Without any [POOL=] section, one pool as Messaging Server ships it. */
const FALLBACK_POOL: PoolConfig = { name: 'DEFAULT', jobLimit: JOB_CONTROLLER_DEFAULTS.JOB_LIMIT };

/** A job that does not answer within this long is ended, unless MAX_LIFE_AGE says otherwise. */
const DEFAULT_JOB_TIMEOUT_SEC = 3600;

export function poolsOf(config: InstanceConfig): PoolConfig[] {
  const pools = config.jobController.pools;
  return pools.length > 0 ? pools : [FALLBACK_POOL];
}

/** The channel's pool: its `pool` keyword when the job controller knows that pool, else the first pool. */
export function poolFor(config: InstanceConfig, channel: Channel): PoolConfig {
  const pools = poolsOf(config);
  if (channel.pool) {
    const found = pools.find((p) => p.name.toLowerCase() === channel.pool!.toLowerCase());
    if (found) return found;
  }
  return pools[0]!;
}

export interface JobLimits {
  /** A job request (one batch) running longer than this is ended and its messages retried. */
  timeoutMs: number;
  /** Batches one job takes before it ends (0 = no limit). */
  maxBatches: number;
}

export function jobLimits(config: InstanceConfig, channel: string): JobLimits {
  const section = channelJobSection(config.jobController, channel);
  const age = section?.maxLifeAgeSec ?? config.jobController.maxLifeAgeSec;
  const conns = section?.maxLifeConns ?? config.jobController.maxLifeConns;
  return { timeoutMs: (age > 0 ? age : DEFAULT_JOB_TIMEOUT_SEC) * 1000, maxBatches: conns > 0 ? conns : 0 };
}

export function outcomePolicy(config: InstanceConfig, channel: Channel | undefined): OutcomePolicy {
  const local = config.imta.channelByName.get('l');
  return { backoffMs: backoffSchedule(channel?.backoffMs), noticesMs: noticesSchedule(channel?.noticesMs, local?.noticesMs) };
}

/** When a message is first due: its next attempt, else now, else (a `periodic` channel) the next periodic run. */
export function firstDueMs(config: InstanceConfig, envelope: Envelope, nowMs: number): number {
  const due = envelope.nextAttempt?.getTime() ?? 0;
  if (due > nowMs || channelByName(config, envelope.channel)?.immediate !== false) return due;
  return nextPeriodicRunMs(nowMs, config.jobController.periodicIntervalSec ?? JOB_CONTROLLER_DEFAULTS.PERIODIC_INTERVAL);
}

export function channelByName(config: InstanceConfig, name: string): Channel | undefined {
  return config.imta.channelByName.get(name.toLowerCase());
}
