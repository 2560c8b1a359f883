// What the job controller hands a master channel job, and what the job reports back.
// Plain data, so it crosses worker-thread boundaries unchanged (structured clone). The items and
// outcomes of a delivery attempt are defined with delivery (src/delivery/types.ts, below the
// channels) and are part of what a channel job takes and gives.
import type { DeliveryItem, MessageOutcome } from '../delivery/types.js';

export type { DeliveryItem, MessageOutcome, RecipientOutcome, RecipientResult } from '../delivery/types.js';

export interface DeliverOptions {
  /**
   * Aborted when the batch has run out of time (the channel's MAX_LIFE_AGE): the job stops,
   * gives up its connections and reports what it has not done as deferred with the reason.
   */
  signal?: AbortSignal;
}

/** A running master channel job: delivers batches of messages, keeping its caches and connections between them. */
export interface ChannelJob {
  deliver(items: DeliveryItem[], opts?: DeliverOptions): Promise<MessageOutcome[]>;
  /** Close connections and timers; the job ends after this. */
  close(): Promise<void>;
  /** Its outbound connections so far (SMTP channels), read after each batch for the metrics. */
  stats?(): { connectionsOpened: number; connectionsReused: number };
  /** What its fan-out has in hand now (SMTP channels): connections, destinations and their shaping. */
  status?(): import('../delivery/fanout.js').FanoutStatus;
}

/** What a channel job gets from the job controller's worker when it is created. */
export interface ChannelJobContext {
  /** Instance root (IMTA_ROOT). */
  root: string;
  /** The whole validated configuration (channel keywords, option.dat DNS_SERVERS, aliases…). */
  config: import('../config/types.js').InstanceConfig;
  /** The channel this job delivers for. */
  channel: import('../config/types.js').Channel;
  logger: import('../common/logger.js').Logger;
  /** Reads a queued message's bytes (the body after the envelope), streamed. */
  openBody: (path: string) => Promise<NodeJS.ReadableStream>;
  /**
   * The message bytes in one buffer when the message is small (a single read, no stream), else
   * streamed as openBody does. Optional: channels fall back to openBody.
   */
  readMessage?: (path: string) => Promise<Buffer | NodeJS.ReadableStream>;
  /** The channel's traffic shaper, kept by the thread across reloads (SMTP channels; etc/shaping.cnf). */
  shaper?: import('../shaping/index.js').Shaper;
}

export type ChannelJobFactory = (ctx: ChannelJobContext) => Promise<ChannelJob>;
