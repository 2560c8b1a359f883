// The one place a channel's traffic shaper is made: the policy of etc/shaping.cnf and the store
// of per-destination connection leases and message and connection rates it counts with
// (ShapingCounters, counters.ts). The delivery thread makes one per SMTP channel and keeps it
// across reloads (reconfigureShaper); a channel job made without one (tests) makes its own here.
// The store is the thread's memory (LocalShapingCounters): the channel's jobs all run in one
// thread, so its limits hold for the whole channel. A farm-wide store (issue 22: Redis) is another
// ShapingCounters, chosen in shapingStoreFor; nothing else needs to change.
import type { InstanceConfig } from '../config/types.js';
import { defaultShapingConfig } from '../config/shaping-cnf.js';
import { LocalShapingCounters, type ShapingCounters } from './counters.js';
import { Shaper } from './shaper.js';

/** What the shaper is made from: the configuration's etc/shaping.cnf (absent: the defaults). */
type ShapingSource = Pick<InstanceConfig, 'shaping'>;

/** A new shaper for `channel` under `config`. */
export function makeChannelShaper(config: ShapingSource, channel: string): Shaper {
  return new Shaper(config.shaping ?? defaultShapingConfig(), { counters: shapingStoreFor(config, channel) });
}

/** A reload: the shaper keeps what it learnt of each destination and its store, under the new limits. */
export function reconfigureShaper(shaper: Shaper, config: ShapingSource): void {
  shaper.reconfigure(config.shaping ?? defaultShapingConfig());
}

/** The per-destination lease and rate store of a channel's shaper. */
function shapingStoreFor(_config: ShapingSource, _channel: string): ShapingCounters {
  return new LocalShapingCounters();
}
