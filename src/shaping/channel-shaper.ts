// The one place a channel's traffic shaper is made: the policy of etc/shaping.cnf and the store
// of per-destination connection leases and message and connection rates it counts with
// (ShapingCounters, counters.ts). The delivery thread makes one per SMTP channel and keeps it
// across reloads (reconfigureShaper); a channel job made without one (tests) makes its own here.
// The store is the thread's memory (LocalShapingCounters): the channel's jobs all run in one
// thread, so its limits hold for the whole channel. On a farm's node the delivery thread hands in
// the counters shared through Redis (src/farm), so that they hold for the whole farm.
import type { InstanceConfig } from '../config/types.js';
import { defaultShapingConfig } from '../config/shaping-cnf.js';
import { LocalShapingCounters, type ShapingCounters } from './counters.js';
import { Shaper } from './shaper.js';

/** What the shaper is made from: the configuration's etc/shaping.cnf (absent: the defaults). */
type ShapingSource = Pick<InstanceConfig, 'shaping'>;

/** A new shaper for `channel` under `config`, counting with `counters` (a farm's shared ones) or its own in memory. */
export function makeChannelShaper(config: ShapingSource, _channel: string, counters?: ShapingCounters): Shaper {
  return new Shaper(config.shaping ?? defaultShapingConfig(), { counters: counters ?? new LocalShapingCounters() });
}

/** A reload: the shaper keeps what it learnt of each destination and its store, under the new limits. */
export function reconfigureShaper(shaper: Shaper, config: ShapingSource): void {
  shaper.reconfigure(config.shaping ?? defaultShapingConfig());
}
