// Per-destination traffic shaping of outbound SMTP (issue 17, item 3): what the delivery engine
// and the job controller call. See docs/CONFIGURATION.md "etc/shaping.cnf".
export { Shaper } from './shaper.js';
export { makeChannelShaper, reconfigureShaper } from './channel-shaper.js';
export { ShapingPolicy } from './policy.js';
export { ShapingState, type ConnectionLease, type ShapingPhase, type ShapingSnapshot } from './state.js';
export { LocalShapingCounters, type LeaseId, type ShapingCounters } from './counters.js';
export { isThrottleReply, throttleRules } from './throttle.js';
