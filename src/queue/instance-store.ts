// The queue store of an instance, with `subdirs N` taken from the channel blocks of imta.cnf, and
// DKIM signing of what is queued to channels with `dkimsign` (the keys of etc/dkim/keys).
import type { InstancePaths } from '../common/instance.js';
import type { InstanceConfig } from '../config/types.js';
import type { Logger } from '../common/logger.js';
import { QueueStore } from './store.js';
import { dkimPrefixesFor } from '../dkim/plan.js';

/** Without a config (not loadable), channels are flat — files already in subdirectories are still found by scans. */
export function queueStoreFor(paths: InstancePaths, config: InstanceConfig | null, logger?: Logger): QueueStore {
  return new QueueStore({
    queueDir: paths.queue,
    corruptDir: paths.corrupt,
    subdirs: (channel) => config?.imta.channelByName.get(channel.toLowerCase())?.subdirs ?? 0,
    prefixesFor: (drafts) => dkimPrefixesFor(config, drafts),
    logger,
  });
}
