// What the policy checks remember of one SMTP session (beside InboundSession's facts): the milter
// session opened at connect, the HELO name the filters and SPF last heard, and for the
// transaction under way what the checks decided without refusing: the SPF check started at MAIL,
// a hold or a discard of the whole message (an access table's $H or $B, a filter's discard), and
// the $D delay that every later command of the transaction waits. Plain data; reset at MAIL.
import type { MilterSession } from '../milter/index.js';
import type { SpfOutcome } from '../policy/index.js';

export interface TransactionPolicy {
  /** SPF of MAIL FROM, started at MAIL (null when not checked). */
  spf: Promise<SpfOutcome> | null;
  /** Why the message is to be held (queue files written `.HELD`); null = not held. */
  hold: string | null;
  /** Why the whole message is to be discarded (accepted, not queued); null = kept. */
  discard: string | null;
  /** `$D` positive: milliseconds every later command of the transaction waits before its answer. */
  delayMs: number;
}

export interface SessionPolicy {
  /** The session's filters (sourcespamfilterN of its channel); null when it has none. */
  milter: MilterSession | null;
  /** The HELO/EHLO name the filters were told last (they hear it at the next MAIL). */
  milterHelo: string | null;
  /** SPF of the HELO name (spfhelo), and the name it was checked for. */
  heloSpf: { name: string; outcome: SpfOutcome } | null;
  tx: TransactionPolicy;
  /** The SMTP session is over: a milter session that finishes opening now is closed at once. */
  ended: boolean;
}

export function newTransactionPolicy(): TransactionPolicy {
  return { spf: null, hold: null, discard: null, delayMs: 0 };
}

export function newSessionPolicy(): SessionPolicy {
  return { milter: null, milterHelo: null, heloSpf: null, tx: newTransactionPolicy(), ended: false };
}

/** Waits `ms` on a timer (other sessions go on meanwhile). */
export function pause(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}
