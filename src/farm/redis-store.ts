// The farm's shared store in Redis (ioredis): connection slots as one sorted set per key (member:
// the holder's slot, score: its expiry), rates as one GCRA value per key. Each change is one Lua
// script, so that the check and the take are atomic across nodes, and uses Redis's clock (TIME).
// Commands are never queued while Redis is unreachable: they fail at once, the node falls back on
// its own share of the limits (shared-counters.ts), and ioredis reconnects in the background.
import { Redis } from 'ioredis';
import type { FarmStore, SlotGrant, StoreState, TokenGrant } from './store.js';

/** Redis's clock in ms (TIME answers seconds and microseconds). */
const NOW = `local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** KEYS[1] slots; ARGV member, limit, ttl → {granted 0|1, held}. */
const ACQUIRE = `${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local ttl = tonumber(ARGV[3])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  return {1, redis.call('ZCARD', KEYS[1])}
end
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[2]) then return {0, n} end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
return {1, n + 1}`;

/** KEYS[1] slots; ARGV ttl, members… → held. Members the store lost (expired, Redis restarted) are registered again: their connections exist. */
const RENEW = `${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now + ttl, ARGV[i]) end
if #ARGV > 1 then redis.call('PEXPIRE', KEYS[1], ttl) end
return redis.call('ZCARD', KEYS[1])`;

/**
 * KEYS[1] theoretical arrival time; ARGV interval, burst, want → {granted, waitMs}. GCRA: k units
 * may go now while max(tat, now) + (k - 1) interval ≤ now + (burst - 1) interval; see gcraGrant.
 */
const TAKE = `${NOW}
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local k = math.floor(burst - (tat - now) / interval + 1e-9)
if k > tonumber(ARGV[3]) then k = tonumber(ARGV[3]) end
if k <= 0 then return {0, math.ceil(tat - (burst - 1) * interval - now)} end
tat = tat + k * interval
redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
return {k, 0}`;

type Scripted = Redis & {
  tsubameAcquire(key: string, member: string, limit: number, ttl: number): Promise<[number, number]>;
  tsubameRenew(key: string, ttl: number, ...members: string[]): Promise<number>;
  tsubameTake(key: string, interval: number, burst: number, want: number): Promise<[number, number]>;
};

export class RedisFarmStore implements FarmStore {
  private readonly redis: Scripted;
  private current: StoreState = 'down';
  /** Whether the listeners heard a state yet (a first failure to connect is news too). */
  private told = false;
  private readonly listeners: Array<(state: StoreState) => void> = [];

  constructor(url: string, private readonly prefix = 'tsubame:') {
    const redis = new Redis(url, {
      lazyConnect: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 2000,
      // Reconnect for as long as the node runs: quickly at first, then once a second.
      retryStrategy: (times) => Math.min(times * 100, 1000),
    });
    redis.defineCommand('tsubameAcquire', { numberOfKeys: 1, lua: ACQUIRE });
    redis.defineCommand('tsubameRenew', { numberOfKeys: 1, lua: RENEW });
    redis.defineCommand('tsubameTake', { numberOfKeys: 1, lua: TAKE });
    redis.on('ready', () => this.set('up'));
    redis.on('close', () => this.set('down'));
    redis.on('end', () => this.set('down'));
    redis.on('error', () => this.set('down')); // reconnection is ioredis's; the state says the rest
    this.redis = redis as Scripted;
  }

  get state(): StoreState {
    return this.current;
  }

  onState(listener: (state: StoreState) => void): void {
    this.listeners.push(listener);
  }

  async acquireSlot(key: string, member: string, limit: number, ttlMs: number): Promise<SlotGrant> {
    const [granted, held] = await this.redis.tsubameAcquire(this.prefix + key, member, limit, Math.ceil(ttlMs));
    return { granted: granted === 1, held };
  }

  async renewSlots(key: string, members: string[], ttlMs: number): Promise<number> {
    return this.redis.tsubameRenew(this.prefix + key, Math.ceil(ttlMs), ...members);
  }

  async releaseSlot(key: string, member: string): Promise<void> {
    await this.redis.zrem(this.prefix + key, member);
  }

  async takeTokens(key: string, intervalMs: number, burst: number, want: number): Promise<TokenGrant> {
    const [granted, waitMs] = await this.redis.tsubameTake(this.prefix + key, intervalMs, Math.max(1, burst), Math.max(1, want));
    return { granted, waitMs: Math.max(0, waitMs) };
  }

  async close(): Promise<void> {
    this.listeners.length = 0;
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }

  private set(state: StoreState): void {
    if (state === this.current && this.told) return;
    this.current = state;
    this.told = true;
    for (const l of this.listeners) l(state);
  }
}
