// The recipient bookkeeping of one batch of messages (what Postfix's smtp_rcpt.c keeps): one entry
// per distinct address of a message, where it may go, the hosts already tried for it and its last
// failure, and its outcome once decided. The first decision stands (and is reported, so that the
// fan-out knows when a batch is done); copies of an address within one message get the outcome of
// its first occurrence; what is never decided is deferred. Handles are unique across the books of
// a channel's fan-out when it hands out the ids.
import type { Target } from './mx.js';
import { noHostLeftStatus, skippedHostStatus } from './reply-policy.js';
import type { RcptDsn } from './smtp-client.js';
import { describeHost } from './status.js';
import type { StsPolicy } from './tls/mta-sts.js';
import type { DeliveryItem, MessageOutcome, RecipientOutcome, RecipientResult } from './types.js';

export interface RunRecipient {
  /** Its handle in the run (the planner's recipient id). */
  readonly id: number;
  /** Its message's index in the batch. */
  readonly message: number;
  /** The envelope To, as queued. */
  readonly address: string;
  /** What RCPT TO gives. */
  readonly rcptTo: string;
  readonly dsn: RcptDsn;
  /** Where it can go, best first (known once its destination is looked up). */
  targets: Target[];
  /** Its domain's MTA-STS policy (known with the targets), for the TLS decision (tls-gate.ts). */
  sts: StsPolicy | null;
  /** Targets (by key) already tried for it in this run. */
  readonly tried: Set<string>;
  lastFailure: string | null;
  lastHost: string | null;
  /** The `tls=` value of the session of its last failure (a TLS policy refusal), for mail.log. */
  lastTls: string | null;
  /** The earliest end of the host-retry window of a host skipped for it (null: none skipped). */
  skippedUntil: number | null;
  outcome: RecipientOutcome | null;
  /** Another recipient of the same message with the same address: it gets that one's outcome. */
  readonly sameAs: number | null;
  /** Times the recipient was put in a new transaction after a "too many recipients" 452. */
  overflows: number;
}

export interface RecipientBookOptions {
  /** Hands out recipient handles (default 0, 1, 2 … in this book). */
  nextId?: () => number;
  /** A recipient got its outcome (once per recipient). */
  onDecided?: (r: RunRecipient) => void;
}

export class RecipientBook {
  private readonly all: RunRecipient[] = [];
  private readonly byId = new Map<number, RunRecipient>();
  private readonly onDecided: (r: RunRecipient) => void;

  /** One RCPT per distinct address (case-blind) of a message; pending recipients only. */
  constructor(items: DeliveryItem[], opts: RecipientBookOptions = {}) {
    let own = 0;
    const nextId = opts.nextId ?? (() => own++);
    this.onDecided = opts.onDecided ?? (() => {});
    items.forEach((item, message) => {
      const seen = new Map<string, number>();
      for (const r of item.envelope.recipients) {
        if (r.state !== 'pending') continue;
        const key = r.address.trim().toLowerCase();
        const id = nextId();
        const entry: RunRecipient = {
          id,
          message,
          address: r.address,
          rcptTo: r.address.trim(),
          dsn: { notify: r.notify, orcpt: r.orcpt },
          targets: [],
          sts: null,
          tried: new Set(),
          lastFailure: null,
          lastHost: null,
          lastTls: null,
          skippedUntil: null,
          outcome: null,
          sameAs: seen.get(key) ?? null,
          overflows: 0,
        };
        this.all.push(entry);
        this.byId.set(id, entry);
        if (!seen.has(key)) seen.set(key, id);
      }
    });
  }

  get(id: number): RunRecipient {
    return this.byId.get(id)!;
  }

  /** The recipients to deliver (copies of another address of their message left out), in order. */
  distinct(): RunRecipient[] {
    return this.all.filter((r) => r.sameAs === null);
  }

  /** Decides a recipient's outcome, unless it has one already. */
  decide(r: RunRecipient, result: RecipientResult, status: string, remoteHost: string | null, tls?: string | null): void {
    if (r.outcome) return;
    r.outcome = { address: r.address, result, status, remoteHost, ...(tls ? { tls } : {}) };
    this.onDecided(r);
  }

  /**
   * Deferred without being tried until `until` (traffic shaping held it back, or the destination
   * asked to slow down): not a try, the message is due again then.
   */
  deferUntried(r: RunRecipient, status: string, until: number): void {
    if (r.outcome) return;
    r.outcome = { address: r.address, result: 'deferred', status, remoteHost: r.lastHost, notTriedUntil: until };
    this.onDecided(r);
  }

  /**
   * The host failed these recipients (no connection, it broke mid-transaction, or the TLS policy
   * refused its session, `tls` then saying what the session had): not to be tried again for them.
   */
  hostFailed(ids: readonly number[], target: Target, status: string, tls: string | null = null): void {
    for (const id of ids) {
      const r = this.byId.get(id)!;
      r.tried.add(target.key);
      r.lastFailure = status;
      r.lastHost = describeHost(target);
      r.lastTls = tls;
    }
  }

  /** The target was skipped for `r` because it is known down; that is its reason unless it has a failure of its own. */
  skippedDown(r: RunRecipient, target: Target, down: { reason: string; until: number }): void {
    r.skippedUntil = Math.min(r.skippedUntil ?? Infinity, down.until);
    if (r.lastFailure) return;
    r.lastFailure = skippedHostStatus(down.reason, down.until);
    r.lastHost = describeHost(target);
    r.lastTls = null;
  }

  /**
   * No target is left for `r`: deferred with its last failure. When no host was tried for it in
   * this attempt, only skipped as known down, it says until when: not a try (issue 13).
   */
  noHostLeft(r: RunRecipient): void {
    if (r.outcome) return;
    if (r.tried.size === 0 && r.skippedUntil !== null) {
      r.outcome = { address: r.address, result: 'deferred', status: noHostLeftStatus(r.lastFailure), remoteHost: r.lastHost, notTriedUntil: r.skippedUntil };
      this.onDecided(r);
    } else {
      this.decide(r, 'deferred', noHostLeftStatus(r.lastFailure), r.lastHost, r.lastTls);
    }
  }

  /** Every message's outcomes, its recipients in envelope order. */
  outcomes(items: DeliveryItem[]): MessageOutcome[] {
    return items.map((item, message) => ({
      ref: item.ref,
      recipients: this.all
        .filter((r) => r.message === message)
        .map((r) => {
          const source = r.sameAs !== null ? this.byId.get(r.sameAs)! : r;
          const o = source.outcome ?? { address: r.address, result: 'deferred' as const, status: '451 4.3.0 not attempted', remoteHost: null };
          return { ...o, address: r.address };
        }),
    }));
  }
}
