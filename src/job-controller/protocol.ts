// Requests the job controller answers on run/job_controller.sock (newline-delimited JSON).
import type { QueueRef } from '../queue/types.js';

export type JobControllerRequest =
  /** A slave (SMTP server, submit) stored new messages: try them at once. */
  | { op: 'enqueued'; refs: QueueRef[] }
  /** Queue manager changes made on disk by `imsimta qm`. */
  | { op: 'qm'; action: 'hold' | 'release' | 'delete' | 'return'; ids: string[] }
  | { op: 'qm'; action: 'start' | 'stop'; channel: string }
  /**
   * Retry now: everything, `domain`, `@domain` (with subdomains) or `#channel`. ETRN uses it
   * too, with `origin: 'etrn'` and the client's address (rate limit, fast-flush domains only).
   */
  | { op: 'flush'; target: string | null; origin?: 'etrn' | 'operator'; client?: string }
  /** Running jobs, pools and counters (for `process`, `counters`, `qm jobs`). */
  | { op: 'status' }
  /** Per-channel counters (for `imsimta counters`). */
  | { op: 'counters' }
  /** Scan the queue directories now (as SYNCH_TIME does). */
  | { op: 'rescan' }
  | { op: 'reload' };

export interface FlushReply {
  ok: boolean;
  /** RFC 1985 reply code the SMTP server gives for ETRN: 250, 251, 252, 253, 458, 459. */
  code: number;
  /** Messages scheduled. */
  count: number;
  text: string;
  /** For 458/459: the short reason the client is given (`service unavailable`, `no such channel`, …). */
  reason?: string;
}
