// ETRN and `imsimta flush` for the whole farm: each node's queue holds the mail it accepted, so a
// retry asked of one node (a client's ETRN through the balancer reaches one of them; the operator
// runs imsimta flush on one) is published on a Redis channel, and every other node's job
// controller carries it out on its own queue. At most once per node and best effort: a node that
// is down or cut off from Redis misses it (its own backoff retries the mail later), as a message
// on a pub/sub channel is not kept. The node's reachability of Redis is this relay's connection's.
// A node knows its own notices by a random id of its relay, not by its name: two nodes left with
// the same FARM_NODE_NAME (the default, LOCAL_HOST, is the host name: two nodes on one machine
// share it) would otherwise drop each other's notices as their own, and a flush would silently
// stay on one node. Such a clash is logged once.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from '../common/logger.js';
import type { StoreState } from './store.js';

/** The channel every node listens on. */
const FLUSH_CHANNEL = 'tsubame:flush';

export interface FlushNotice {
  /** The node that was asked. */
  node: string;
  /** The domain, `#channel`, or null for everything (imsimta flush without argument). */
  target: string | null;
  origin: 'etrn' | 'operator';
  /** The publishing relay's random id (absent from notices of older nodes: then the name decides). */
  sender?: string;
}

export interface FlushRelayOptions {
  url: string;
  node: string;
  /** Carries out a flush another node was asked for. */
  onFlush(notice: FlushNotice): void;
  logger: Logger;
}

export class FlushRelay {
  private readonly publisher: Redis;
  private readonly subscriber: Redis;
  private current: StoreState = 'down';
  private readonly sender = randomBytes(8).toString('hex');
  private clashLogged = false;

  constructor(private readonly opts: FlushRelayOptions) {
    const options = { enableOfflineQueue: false, maxRetriesPerRequest: 0, connectTimeout: 2000, retryStrategy: (times: number) => Math.min(times * 100, 1000) };
    this.publisher = new Redis(opts.url, options);
    // The subscriber queues its SUBSCRIBE until connected and subscribes again after each reconnect.
    this.subscriber = new Redis(opts.url, { ...options, enableOfflineQueue: true, autoResubscribe: true });
    this.publisher.on('error', () => {});
    this.subscriber.on('error', () => {});
    this.subscriber.on('ready', () => (this.current = 'up'));
    this.subscriber.on('close', () => (this.current = 'down'));
    this.subscriber.on('message', (_channel: string, text: string) => this.received(text));
    this.subscriber.subscribe(FLUSH_CHANNEL).catch(() => {});
  }

  /** Whether this node reaches Redis now. */
  get state(): StoreState {
    return this.current;
  }

  /** Tells the other nodes; false when Redis could not be told (the flush was this node's only). */
  async publish(target: string | null, origin: 'etrn' | 'operator'): Promise<boolean> {
    const notice: FlushNotice = { node: this.opts.node, target, origin, sender: this.sender };
    try {
      await this.publisher.publish(FLUSH_CHANNEL, JSON.stringify(notice));
      return true;
    } catch (err) {
      this.opts.logger.warn({ target, err: (err as Error).message }, 'farm: the flush could not be sent to the other nodes (Redis unreachable)');
      return false;
    }
  }

  async close(): Promise<void> {
    for (const r of [this.subscriber, this.publisher]) {
      try {
        await r.quit();
      } catch {
        r.disconnect();
      }
    }
  }

  private received(text: string): void {
    const notice = parseFlushNotice(text);
    if (!notice) return void this.opts.logger.warn({ text: text.slice(0, 200) }, 'farm: a flush notice that is not one, ignored');
    if (notice.sender === undefined ? notice.node === this.opts.node : notice.sender === this.sender) return;
    if (notice.node === this.opts.node && !this.clashLogged) {
      this.clashLogged = true;
      this.opts.logger.warn({ node: notice.node }, `farm: another node is also named "${notice.node}": give each node its own FARM_NODE_NAME in etc/option.dat`);
    }
    this.opts.logger.info({ from: notice.node, target: notice.target, origin: notice.origin }, 'farm: flush asked of another node');
    this.opts.onFlush(notice);
  }
}

/** A notice as published, or null when `text` is not one. */
export function parseFlushNotice(text: string): FlushNotice | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  if (typeof o.node !== 'string' || (o.target !== null && typeof o.target !== 'string') || (o.origin !== 'etrn' && o.origin !== 'operator')) return null;
  if (typeof o.target === 'string' && (o.target.length > 255 || !/^[#@A-Za-z0-9._-]+$/.test(o.target))) return null;
  if (o.sender !== undefined && (typeof o.sender !== 'string' || !/^[0-9a-f]{1,64}$/.test(o.sender))) return null;
  const notice: FlushNotice = { node: o.node, target: o.target, origin: o.origin };
  if (typeof o.sender === 'string') notice.sender = o.sender;
  return notice;
}
