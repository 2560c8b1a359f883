// What one delivery attempt of queued messages is given and what it yields, per recipient: the
// plain data the delivery engine, the channel jobs and the job controller share (it crosses
// worker-thread boundaries unchanged, by structured clone).
import type { Envelope, QueueRef } from '../queue/types.js';

export interface DeliveryItem {
  ref: QueueRef;
  /** The envelope as read from the queue file; only recipients in state 'pending' are to be delivered. */
  envelope: Envelope;
}

export type RecipientResult = 'delivered' | 'deferred' | 'failed';

export interface RecipientOutcome {
  /** Envelope To address, as in the envelope. */
  address: string;
  result: RecipientResult;
  /** Reply or reason, with the enhanced status code (e.g. `550 5.1.1 <x@y>: user unknown`). */
  status: string;
  /** The host that gave the reply (MX name [ip]), or null for local decisions. */
  remoteHost: string | null;
  /** The TLS of the session that gave the reply (`TLSv1.3/cipher/Verified`), when there was one. */
  tls?: string | null;
  /**
   * Deferred without being tried: every host for it is inside the host-retry window (the
   * reachability cache, SMTP_HOST_RETRY) until this time (epoch ms). Not a delivery attempt: it
   * neither counts as a try nor advances the backoff.
   */
  notTriedUntil?: number;
}

export interface MessageOutcome {
  ref: QueueRef;
  recipients: RecipientOutcome[];
  /**
   * Queue files the job wrote for this message (the local channel's list and forwarding copies,
   * notices to a list's owner), on disk already: the job controller admits them.
   */
  enqueued?: QueueRef[];
}
