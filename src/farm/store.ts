// What a farm's nodes share to shape their traffic together: connection slots per key (a sorted
// set of holders, each with an expiry, so that a node that dies gives its share back) and rate
// limits as GCRA (one theoretical arrival time per key). Asynchronous: the shared counters
// (shared-counters.ts) call it in the background and decide from what they were granted.
// redis-store.ts is the implementation; the time is the store's own clock, so nodes whose clocks
// differ still agree.

export interface SlotGrant {
  /** Whether the slot was taken. */
  granted: boolean;
  /** Slots of the key held farm-wide now (the new one included). */
  held: number;
}

export interface TokenGrant {
  /** Units granted (0 … asked). */
  granted: number;
  /** With none granted: milliseconds until one would be. */
  waitMs: number;
}

/** The store's reachability, as the node sees it. */
export type StoreState = 'up' | 'down';

export interface FarmStore {
  /** Takes slot `member` of `key` when fewer than `limit` unexpired ones are held; the slot expires `ttlMs` after this unless renewed. */
  acquireSlot(key: string, member: string, limit: number, ttlMs: number): Promise<SlotGrant>;
  /** Renews (or registers again, after the store lost them) the slots `members` of `key`; answers how many are held farm-wide. */
  renewSlots(key: string, members: string[], ttlMs: number): Promise<number>;
  releaseSlot(key: string, member: string): Promise<void>;
  /** Takes up to `want` units of the rate of `key` (one per `intervalMs`, `burst` at once). */
  takeTokens(key: string, intervalMs: number, burst: number, want: number): Promise<TokenGrant>;
  /** Whether the store answers now. */
  readonly state: StoreState;
  /** Told each change of state. */
  onState(listener: (state: StoreState) => void): void;
  close(): Promise<void>;
}
