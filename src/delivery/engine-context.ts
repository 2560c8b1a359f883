// What the delivery engine of a channel is given (the channel, its settings, the caches it shares
// with the process's other channels, the message reader) and the counts it adds to; and the reply
// for what a batch could not do before its time limit.
import type { Channel } from '../config/types.js';
import type { Target } from './mx.js';
import type { ReachabilityCache } from './reachability.js';
import type { DeliveryResolver } from './resolver.js';
import type { DeliverySettings } from './settings.js';
import type { ClientLogin, SessionLogger } from './smtp-client.js';
import type { TlsGate } from './tls-gate.js';

export interface EngineContext {
  channel: Channel;
  /** EHLO name (option.dat LOCAL_HOST). */
  localName: string;
  /** More Received: lines than this: the message is looping and is returned (option.dat MAX_RECEIVED_LINES). */
  hopLimit: number;
  /** The delimiters of VERP senders for a channel with `verp` (option.dat VERP_DELIMITERS; default "+="). */
  verpDelimiters?: string;
  settings: DeliverySettings;
  resolver: DeliveryResolver;
  reachability: ReachabilityCache;
  /** The outbound TLS policy (musttls, MTA-STS, DANE): the trust store and the decision before each transaction. */
  tls: TlsGate;
  /** SMTP AUTH to the servers of a channel with maysaslclient/mustsaslclient (etc/client_auth); absent: none. */
  clientLogin?: ClientLogin | null;
  /** The queued message's bytes: a buffer (small messages, read at once) or a stream. */
  readMessage(path: string): Promise<NodeJS.ReadableStream | Buffer>;
  /** master_debug transcript, per host. */
  transcriptFor?: ((target: Target) => SessionLogger) | null;
  stats: EngineStats;
  random?: () => number;
}

export interface EngineStats {
  transactions: number;
  /** Connection attempts that failed (refused, timeout, greeting, TLS). */
  connectFailures: number;
  /** Host attempts skipped because the reachability cache said the host is down. */
  skippedUnreachable: number;
  /** Destinations (domains, literals, smart hosts) looked up. */
  lookups: number;
}

export function newEngineStats(): EngineStats {
  return { transactions: 0, connectFailures: 0, skippedUnreachable: 0, lookups: 0 };
}

/** The reply for what a batch could not do before it was aborted. */
export function abortStatus(signal: AbortSignal): string {
  const reason = signal.reason instanceof Error ? signal.reason.message : typeof signal.reason === 'string' ? signal.reason : 'the delivery job was stopped';
  return /^\d{3} /.test(reason) ? reason : `451 4.3.0 ${reason}`;
}
