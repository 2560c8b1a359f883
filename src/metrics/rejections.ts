// Refusals counted per rule, for tsubame_rejections_total{reason} and the status page: every J
// record of mail.log written since the metrics side started, by the rule that decided, as
// `imsimta report` groups them (common/mail-log-reasons.ts rejectionRule: `PORT_ACCESS`,
// `rbl:zen.example`, `SPF`, `DMARC`, `milter:rspamd`, `relay`, `unknown user`, …). The number of
// distinct reasons is bounded: past REJECTION_REASONS the rest count as `other`. Pure.
import type { LooseMailLogRecord } from '../common/mail-log-read.js';
import { detach } from '../common/mail-log-read.js';
import { rejectionRule } from '../common/mail-log-reasons.js';

export const REJECTION_REASONS = 100;

export interface RejectionCount {
  reason: string;
  count: number;
}

export class RejectionCounts {
  private readonly counts = new Map<string, number>();

  /** `sinceIso`: records older than this (a backlog read at start) are not counted. */
  constructor(private readonly sinceIso: string) {}

  add(r: Pick<LooseMailLogRecord, 'event' | 'time' | 'status'>): void {
    if (r.event !== 'J' || r.time < this.sinceIso) return;
    let reason = rejectionRule(r.status);
    if (!this.counts.has(reason)) {
      if (this.counts.size >= REJECTION_REASONS) reason = 'other';
      else reason = detach(reason);
    }
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
  }

  /** The counts, the largest first (ties by name). */
  snapshot(): RejectionCount[] {
    return [...this.counts].map(([reason, count]) => ({ reason, count })).sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));
  }
}
