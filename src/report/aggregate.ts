// The daily mail report as plain data, added up one mail.log line at a time (pflogsumm's
// summary for tsubame's log): totals by event, traffic per hour, the top senders, recipients
// and destination domains, deferral and bounce reasons grouped by reason and remote host,
// rejections by the rule that decided, and the slowest deliveries. Memory stays bounded whatever
// the log's length: the tables keep their largest entries (BoundedTally), the delay of a
// delivery comes from its queue id (which starts with the time the message was queued), not from
// remembering when it arrived. Pure: lines in, a MailReport out.
//
// A message is counted once per event: the records of one message's event (its recipients) are
// written together, so a run of records with the same letter and queue id is one message. E is
// counted in messages received (the files of one message for several channels, whose ids extend
// the first one's by two characters, are one message); D, Q, R and X in messages and in
// recipients; J (a refused recipient) in recipients. Letters this build does not know are
// counted as "other", never dropped.
import { parseLooseMailLogLine, addressDomain, detach, MessageRuns, type LooseMailLogRecord } from '../common/mail-log-read.js';
import { rejectionRule, statusReason, type StatusReason } from '../common/mail-log-reasons.js';
import { queueIdTimeMs } from '../queue/message-id.js';
import { BoundedTally } from './tally.js';

export interface ReportOptions {
  /** Only records at or after this time (ISO, UTC). */
  since?: string | null;
  /** Only records before this time (ISO, UTC). */
  until?: string | null;
  /** Rows of each top list (default 10). */
  top?: number;
  /** Keys each table keeps in memory (default 20,000). */
  capacity?: number;
}

export interface EventCount {
  messages: number;
  recipients: number;
}

export interface HourRow {
  /** `2026-12-07T13` (UTC). */
  hour: string;
  received: number;
  delivered: number;
  deferred: number;
  returned: number;
  rejected: number;
}

export interface DomainRow {
  domain: string;
  delivered: number;
  deferred: number;
  returned: number;
  /** Mean and longest time from enqueue to delivery (s) of its delivered recipients. */
  meanDelay: number | null;
  maxDelay: number | null;
}

export interface ReasonRow {
  reason: string;
  /** The remote host that answered, or the recipients' domain when no host did. */
  destination: string;
  recipients: number;
  messages: number;
}

export interface RuleRow {
  rule: string;
  recipients: number;
  /** The commonest reason texts of this rule. */
  reasons: Array<{ reason: string; recipients: number }>;
}

export interface SlowDelivery {
  id: string;
  recipient: string;
  /** ISO time of the delivery. */
  time: string;
  /** Seconds from enqueue to delivery. */
  delay: number;
}

/** Upper bounds (s) of the delivery-delay histogram; the last bucket is everything above. */
export const DELAY_BUCKETS: readonly number[] = [1, 10, 60, 600, 3600, 86400];

export interface MailReport {
  /** The period asked for (null: open) and the first and last record counted. */
  period: { since: string | null; until: string | null; first: string | null; last: string | null };
  lines: { read: number; counted: number; outside: number; unparsed: number };
  totals: {
    received: EventCount & { bytes: number };
    delivered: EventCount & { bytes: number };
    deferred: EventCount;
    returned: EventCount;
    rejected: { recipients: number };
    /** X: removed by the operator (`imsimta qm delete`). */
    removed: EventCount;
    /** Records of letters this build does not know, per letter. */
    other: { records: number; letters: Record<string, number> };
  };
  /** Messages received, delivered, deferred and returned, recipients rejected, per hour with traffic. */
  hourly: HourRow[];
  topSenders: Array<{ sender: string; messages: number; bytes: number }>;
  topRecipients: Array<{ recipient: string; deliveries: number }>;
  topDomains: DomainRow[];
  deferrals: ReasonRow[];
  bounces: ReasonRow[];
  rejections: RuleRow[];
  slowest: SlowDelivery[];
  /** Delivered recipients per DELAY_BUCKETS bucket (one more entry: above the last bound). */
  delays: { buckets: readonly number[]; counts: number[]; mean: number | null };
  /** Non-zero when a table outgrew its capacity: its counts are then lower bounds, short by at most this. */
  approximate: number;
}

interface DomainTally { delivered: number; deferred: number; returned: number; delaySum: number; delayCount: number; maxDelay: number }
interface ReasonTally { recipients: number; messages: number }

export class ReportAggregator {
  private readonly since: string | null;
  private readonly until: string | null;
  private readonly top: number;
  private readonly lines = { read: 0, counted: 0, outside: 0, unparsed: 0 };
  private first: string | null = null;
  private last: string | null = null;
  private readonly totals: MailReport['totals'] = {
    received: { messages: 0, recipients: 0, bytes: 0 },
    delivered: { messages: 0, recipients: 0, bytes: 0 },
    deferred: { messages: 0, recipients: 0 },
    returned: { messages: 0, recipients: 0 },
    rejected: { recipients: 0 },
    removed: { messages: 0, recipients: 0 },
    other: { records: 0, letters: {} },
  };
  private readonly hours = new Map<string, HourRow>();
  private readonly senders: BoundedTally<{ messages: number; bytes: number }>;
  private readonly recipients: BoundedTally<{ deliveries: number }>;
  private readonly domains: BoundedTally<DomainTally>;
  private readonly deferralReasons: BoundedTally<ReasonTally>;
  private readonly bounceReasons: BoundedTally<ReasonTally>;
  private readonly rules = new Map<string, number>();
  private readonly ruleReasons: BoundedTally<{ recipients: number }>;
  private readonly slowest: SlowDelivery[] = [];
  private readonly delayCounts = new Array<number>(DELAY_BUCKETS.length + 1).fill(0);
  private delaySum = 0;
  private delayCount = 0;
  private readonly runs = new MessageRuns();
  private lastHour: HourRow | null = null;
  private msPrefix = '';
  private msBase = 0;
  private readonly reasons = new Map<string, StatusReason>();

  constructor(opts: ReportOptions = {}) {
    this.since = opts.since ?? null;
    this.until = opts.until ?? null;
    this.top = opts.top ?? 10;
    const cap = opts.capacity ?? 20_000;
    this.senders = new BoundedTally(cap, () => ({ messages: 0, bytes: 0 }), (v) => v.messages);
    this.recipients = new BoundedTally(cap, () => ({ deliveries: 0 }), (v) => v.deliveries);
    this.domains = new BoundedTally(cap, () => ({ delivered: 0, deferred: 0, returned: 0, delaySum: 0, delayCount: 0, maxDelay: 0 }), (v) => v.delivered + v.deferred + v.returned);
    this.deferralReasons = new BoundedTally(cap, () => ({ recipients: 0, messages: 0 }), (v) => v.recipients);
    this.bounceReasons = new BoundedTally(cap, () => ({ recipients: 0, messages: 0 }), (v) => v.recipients);
    this.ruleReasons = new BoundedTally(cap, () => ({ recipients: 0 }), (v) => v.recipients);
  }

  /** One line of mail.log (without its line feed). */
  addLine(line: string): void {
    this.lines.read++;
    const r = parseLooseMailLogLine(line);
    if (!r) {
      if (line.trim() !== '') this.lines.unparsed++;
      else this.lines.read--; // a blank line is no line
      return;
    }
    // ISO times in UTC compare as text.
    if ((this.since !== null && r.time < this.since) || (this.until !== null && r.time >= this.until)) {
      this.lines.outside++;
      return;
    }
    this.addRecord(r);
  }

  addRecord(r: LooseMailLogRecord): void {
    this.lines.counted++;
    if (this.first === null || r.time < this.first) this.first = detach(r.time);
    if (this.last === null || r.time > this.last) this.last = r.time;
    const run = this.runs.next(r);
    const messages = run.message ? 1 : 0;
    const t = this.totals;
    switch (r.event) {
      case 'E': {
        t.received.recipients++;
        if (run.received) {
          t.received.messages++;
          t.received.bytes += r.size;
          this.hour(r.time).received++;
          const s = this.senders.at(r.from === '' ? '<>' : r.from.toLowerCase());
          s.messages++;
          s.bytes += r.size;
        }
        break;
      }
      case 'D': {
        t.delivered.recipients++;
        t.delivered.messages += messages;
        if (messages) t.delivered.bytes += r.size;
        this.hour(r.time).delivered += messages;
        this.recipients.at(r.recipient.toLowerCase()).deliveries++;
        const d = this.domains.at(addressDomain(r.recipient) || '(local)');
        d.delivered++;
        const delay = this.deliveryDelay(r);
        if (delay !== null) {
          d.delaySum += delay;
          d.delayCount++;
          if (delay > d.maxDelay) d.maxDelay = delay;
          this.noteDelay(r, delay, messages === 1);
        }
        break;
      }
      case 'Q':
      case 'R': {
        const deferred = r.event === 'Q';
        const total = deferred ? t.deferred : t.returned;
        total.recipients++;
        total.messages += messages;
        const hour = this.hour(r.time);
        if (deferred) hour.deferred += messages;
        else hour.returned += messages;
        const domain = addressDomain(r.recipient) || '(local)';
        const d = this.domains.at(domain);
        if (deferred) d.deferred++;
        else d.returned++;
        const { reason, host } = this.reasonOf(r.status);
        const g = (deferred ? this.deferralReasons : this.bounceReasons).at(`${host || domain}\n${reason}`);
        g.recipients++;
        g.messages += messages;
        break;
      }
      case 'J': {
        t.rejected.recipients++;
        this.hour(r.time).rejected++;
        const rule = rejectionRule(r.status);
        this.rules.set(this.rules.has(rule) ? rule : detach(rule), (this.rules.get(rule) ?? 0) + 1);
        this.ruleReasons.at(`${rule}\n${this.reasonOf(r.status).reason}`).recipients++;
        break;
      }
      case 'X':
        t.removed.recipients++;
        t.removed.messages += messages;
        break;
      default:
        t.other.records++;
        t.other.letters[r.event] = (t.other.letters[r.event] ?? 0) + 1;
    }
  }

  result(): MailReport {
    const top = this.top;
    const reasonRows = (tally: BoundedTally<ReasonTally>): ReasonRow[] =>
      tally.top(top).map(([key, v]) => {
        const nl = key.indexOf('\n');
        return { destination: key.slice(0, nl), reason: key.slice(nl + 1), recipients: v.recipients, messages: v.messages };
      });
    const ruleReasons = this.ruleReasons.top(Number.MAX_SAFE_INTEGER);
    const rejections: RuleRow[] = [...this.rules]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .map(([rule, recipients]) => ({
        rule,
        recipients,
        reasons: ruleReasons
          .filter(([key]) => key.slice(0, key.indexOf('\n')) === rule)
          .slice(0, 3)
          .map(([key, v]) => ({ reason: key.slice(key.indexOf('\n') + 1), recipients: v.recipients })),
      }));
    const tallies = [this.senders, this.recipients, this.domains, this.deferralReasons, this.bounceReasons, this.ruleReasons];
    return {
      period: { since: this.since, until: this.until, first: this.first, last: this.last },
      lines: { ...this.lines },
      totals: structuredClone(this.totals),
      hourly: [...this.hours.values()].sort((a, b) => (a.hour < b.hour ? -1 : 1)),
      topSenders: this.senders.top(top).map(([sender, v]) => ({ sender, messages: v.messages, bytes: v.bytes })),
      topRecipients: this.recipients.top(top).map(([recipient, v]) => ({ recipient, deliveries: v.deliveries })),
      topDomains: this.domains.top(top).map(([domain, v]) => ({
        domain,
        delivered: v.delivered,
        deferred: v.deferred,
        returned: v.returned,
        meanDelay: v.delayCount ? round(v.delaySum / v.delayCount) : null,
        maxDelay: v.delayCount ? round(v.maxDelay) : null,
      })),
      deferrals: reasonRows(this.deferralReasons),
      bounces: reasonRows(this.bounceReasons),
      rejections,
      slowest: [...this.slowest],
      delays: { buckets: DELAY_BUCKETS, counts: [...this.delayCounts], mean: this.delayCount ? round(this.delaySum / this.delayCount) : null },
      approximate: Math.max(0, ...tallies.map((t) => t.droppedScore)),
    };
  }

  /** The row of the hour `time` falls in; the last one is kept at hand (a log goes hour by hour). */
  private hour(time: string): HourRow {
    if (this.lastHour !== null && time.startsWith(this.lastHour.hour)) return this.lastHour;
    const key = time.slice(0, 13);
    let row = this.hours.get(key);
    if (!row) {
      row = { hour: detach(key), received: 0, delivered: 0, deferred: 0, returned: 0, rejected: 0 };
      this.hours.set(row.hour, row);
    }
    this.lastHour = row;
    return row;
  }

  /** ms since the epoch of an ISO time as toISOString writes it, without a Date.parse per line. */
  private timeMs(time: string): number {
    if (time.length !== 24 || time.charCodeAt(23) !== 90 /* Z */) return Date.parse(time);
    const prefix = time.slice(0, 13);
    if (prefix !== this.msPrefix) {
      this.msPrefix = prefix;
      this.msBase = Date.parse(`${prefix}:00:00.000Z`);
    }
    return this.msBase + Number(time.slice(14, 16)) * 60_000 + Number(time.slice(17, 19)) * 1000 + Number(time.slice(20, 23));
  }

  /** Seconds from enqueue (the time the queue id starts with) to this record; null when the id carries no time. */
  private deliveryDelay(r: LooseMailLogRecord): number | null {
    const queued = queueIdTimeMs(r.id);
    if (queued === null) return null;
    const at = this.timeMs(r.time);
    return Number.isFinite(at) ? Math.max(0, (at - queued) / 1000) : null;
  }

  /** statusReason, remembered: the same status text comes back again and again. */
  private reasonOf(status: string): StatusReason {
    let r = this.reasons.get(status);
    if (r === undefined) {
      if (this.reasons.size >= 10_000) this.reasons.clear();
      const found = statusReason(status);
      r = { reason: detach(found.reason), host: detach(found.host) };
      this.reasons.set(detach(status), r);
    }
    return r;
  }

  /** Every delivered recipient goes into the histogram; a message's first into the slowest list (once per message). */
  private noteDelay(r: LooseMailLogRecord, delay: number, firstOfMessage: boolean): void {
    this.delaySum += delay;
    this.delayCount++;
    let i = 0;
    while (i < DELAY_BUCKETS.length && delay > DELAY_BUCKETS[i]!) i++;
    this.delayCounts[i]!++;
    const n = this.top;
    if (!firstOfMessage) return;
    if (this.slowest.length >= n && delay <= this.slowest[this.slowest.length - 1]!.delay) return;
    const row: SlowDelivery = { id: detach(r.id), recipient: detach(r.recipient), time: detach(r.time), delay: round(delay) };
    let at = this.slowest.findIndex((s) => s.delay < row.delay);
    if (at < 0) at = this.slowest.length;
    this.slowest.splice(at, 0, row);
    if (this.slowest.length > n) this.slowest.pop();
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
