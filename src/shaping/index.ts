// Per-destination traffic shaping of outbound SMTP (issue 17, item 3): what the delivery engine
// and the job controller call. See docs/CONFIGURATION.md "etc/shaping.cnf".
export { Shaper, IDLE_FORGET_MS, type ShaperOptions } from './shaper.js';
export { makeChannelShaper, reconfigureShaper } from './channel-shaper.js';
export { ShapingPolicy, type Destination, type DestinationClass } from './policy.js';
export { ShapingState, LEASE_TTL_MS, type ConnectionLease, type ShapingPhase, type ShapingSnapshot } from './state.js';
export { LocalShapingCounters, gcraWait, type LeaseId, type ShapingCounters } from './counters.js';
export { isThrottleReply, throttleRules, type ThrottleRules } from './throttle.js';
