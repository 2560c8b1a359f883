// A farm of tsubame nodes behind one load balancer: traffic shaping shared through Redis
// (shared-counters.ts over redis-store.ts) and the operator's flushes sent to every node
// (flush-relay.ts). See docs/OPERATIONS.md "Running a farm".
export { RedisFarmStore } from './redis-store.js';
export { SharedShapingCounters, logStoreState, shareOf } from './shared-counters.js';
export { farmShapingCounters } from './channel-counters.js';
export { FlushRelay, parseFlushNotice, type FlushNotice } from './flush-relay.js';
