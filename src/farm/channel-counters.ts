// The counters of one SMTP channel's shaper on a farm's node (FARM_REDIS_URL): shared through
// Redis, each slot named by node, process and thread, each key by the channel, so that every
// node's fan-out for the channel counts against the same limits. Null on a node alone (the
// shaper's own in-memory counters then). Reachability changes are logged once each way.
import { threadId } from 'node:worker_threads';
import type { Logger } from '../common/logger.js';
import { redactedRedisUrl } from '../config/farm-options.js';
import type { FarmOptions } from '../config/types.js';
import { RedisFarmStore } from './redis-store.js';
import { SharedShapingCounters, logStoreState } from './shared-counters.js';

export function farmShapingCounters(farm: FarmOptions | undefined, channel: string, logger: Logger): SharedShapingCounters | null {
  if (!farm?.redisUrl) return null;
  const store = new RedisFarmStore(farm.redisUrl);
  logStoreState(store, logger, { store: redactedRedisUrl(farm.redisUrl), nodeCount: farm.nodeCount });
  return new SharedShapingCounters({
    store,
    holder: `${farm.nodeName}:${process.pid}:${threadId}`,
    scope: channel.toLowerCase(),
    nodeCount: farm.nodeCount,
    slotTtlMs: farm.leaseTtlMs,
  });
}
