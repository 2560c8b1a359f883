// The mail report as text for a person: sections in pflogsumm's order (grand totals, traffic per
// hour, top senders, recipients and domains, deferrals, bounces, rejections, slowest deliveries
// and the delay histogram), numbers right-aligned. Pure.
import { DELAY_BUCKETS, type MailReport, type ReasonRow } from './aggregate.js';

/** `1.5 MB`, `320 kB`, `12 B` (powers of 1000, as pflogsumm prints sizes). */
function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = -1;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[u]}`;
}

/** `0.4 s`, `42 s`, `3.5 min`, `2.1 h`, `1.2 d`. */
function formatSeconds(s: number): string {
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

const count = (n: number) => n.toLocaleString('en-US');

function table(headers: string[], rows: string[][], numeric: boolean[]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    '  ' + cells.map((c, i) => (i === cells.length - 1 && !numeric[i] ? c : numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)];
}

function section(title: string, body: string[], empty: string): string[] {
  return ['', title, '-'.repeat(title.length), ...(body.length ? body : [`  ${empty}`])];
}

function reasonTable(rows: ReasonRow[]): string[] {
  if (rows.length === 0) return [];
  return table(['RECIPIENTS', 'MESSAGES', 'DESTINATION', 'REASON'], rows.map((r) => [count(r.recipients), count(r.messages), r.destination, r.reason]), [true, true, false, false]);
}

const time = (iso: string | null) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, ' UTC').replace(/Z$/, ' UTC') : '–');

export function formatReport(r: MailReport, files: string[]): string {
  const t = r.totals;
  const out: string[] = [];
  out.push(`tsubame mail report: ${r.period.since ? `from ${time(r.period.since)}` : 'from the start of the logs'}${r.period.until ? ` until ${time(r.period.until)}` : ''}`);
  out.push(`records from ${time(r.period.first)} to ${time(r.period.last)}; ${count(r.lines.counted)} counted of ${count(r.lines.read)} lines read${r.lines.unparsed ? `, ${count(r.lines.unparsed)} not mail.log records` : ''}`);
  out.push(`files: ${files.length ? files.join(', ') : 'none'}`);
  if (r.approximate) out.push(`(the tables outgrew their memory: their counts may be short by up to ${count(r.approximate)})`);

  out.push(
    ...section(
      'Grand totals',
      table(
        ['', 'MESSAGES', 'RECIPIENTS', 'BYTES'],
        [
          ['received', count(t.received.messages), count(t.received.recipients), formatBytes(t.received.bytes)],
          ['delivered', count(t.delivered.messages), count(t.delivered.recipients), formatBytes(t.delivered.bytes)],
          ['deferred', count(t.deferred.messages), count(t.deferred.recipients), ''],
          ['returned', count(t.returned.messages), count(t.returned.recipients), ''],
          ['rejected', '', count(t.rejected.recipients), ''],
          ['removed (qm delete)', count(t.removed.messages), count(t.removed.recipients), ''],
          ['other records', '', count(t.other.records), Object.entries(t.other.letters).map(([l, n]) => `${l}: ${count(n)}`).join(', ')],
        ],
        [false, true, true, true],
      ),
      '',
    ),
  );

  const perDay = r.hourly.length > 48;
  const traffic = perDay ? byDay(r.hourly) : r.hourly.map((h) => ({ ...h, hour: `${h.hour.replace('T', ' ')}:00` }));
  out.push(
    ...section(
      perDay ? 'Traffic per day (messages; rejected: recipients)' : 'Traffic per hour (messages; rejected: recipients)',
      traffic.length
        ? table(
            [perDay ? 'DAY' : 'HOUR (UTC)', 'RECEIVED', 'DELIVERED', 'DEFERRED', 'RETURNED', 'REJECTED'],
            traffic.map((h) => [h.hour, count(h.received), count(h.delivered), count(h.deferred), count(h.returned), count(h.rejected)]),
            [false, true, true, true, true, true],
          )
        : [],
      'no traffic',
    ),
  );

  out.push(...section('Top senders (messages received)', r.topSenders.length ? table(['MESSAGES', 'BYTES', 'SENDER'], r.topSenders.map((s) => [count(s.messages), formatBytes(s.bytes), s.sender]), [true, true, false]) : [], 'none'));
  out.push(...section('Top recipients (deliveries)', r.topRecipients.length ? table(['DELIVERIES', 'RECIPIENT'], r.topRecipients.map((s) => [count(s.deliveries), s.recipient]), [true, false]) : [], 'none'));
  out.push(
    ...section(
      'Destination domains (recipients)',
      r.topDomains.length
        ? table(
            ['DELIVERED', 'DEFERRED', 'RETURNED', 'MEAN DELAY', 'MAX DELAY', 'DOMAIN'],
            r.topDomains.map((d) => [count(d.delivered), count(d.deferred), count(d.returned), d.meanDelay === null ? '–' : formatSeconds(d.meanDelay), d.maxDelay === null ? '–' : formatSeconds(d.maxDelay), d.domain]),
            [true, true, true, true, true, false],
          )
        : [],
      'none',
    ),
  );
  out.push(...section('Deferrals by reason', reasonTable(r.deferrals), 'none'));
  out.push(...section('Bounces by reason', reasonTable(r.bounces), 'none'));
  const rules: string[] = [];
  for (const rule of r.rejections) {
    rules.push(`  ${count(rule.recipients).padStart(8)}  ${rule.rule}`);
    for (const x of rule.reasons) rules.push(`  ${''.padStart(8)}  ${count(x.recipients).padStart(8)}  ${x.reason}`);
  }
  out.push(...section('Rejections by rule (recipients)', rules, 'none'));
  out.push(
    ...section(
      'Slowest deliveries',
      r.slowest.length ? table(['DELAY', 'DELIVERED AT', 'QUEUE ID', 'RECIPIENT'], r.slowest.map((s) => [formatSeconds(s.delay), time(s.time), s.id, s.recipient]), [true, false, false, false]) : [],
      'none',
    ),
  );
  const delivered = r.delays.counts.reduce((a, b) => a + b, 0);
  const bucketName = (i: number) => (i < DELAY_BUCKETS.length ? `≤ ${formatSeconds(DELAY_BUCKETS[i]!)}` : `> ${formatSeconds(DELAY_BUCKETS[DELAY_BUCKETS.length - 1]!)}`);
  out.push(
    ...section(
      `Delivery delays${r.delays.mean === null ? '' : ` (mean ${formatSeconds(r.delays.mean)})`}`,
      delivered ? table(['DELAY', 'RECIPIENTS', 'SHARE'], r.delays.counts.map((n, i) => [bucketName(i), count(n), `${((n / delivered) * 100).toFixed(1)} %`]), [false, true, true]) : [],
      'no delivery',
    ),
  );
  return out.join('\n') + '\n';
}

function byDay(hours: MailReport['hourly']): MailReport['hourly'] {
  const days = new Map<string, MailReport['hourly'][number]>();
  for (const h of hours) {
    const key = h.hour.slice(0, 10);
    const d = days.get(key) ?? { hour: key, received: 0, delivered: 0, deferred: 0, returned: 0, rejected: 0 };
    d.received += h.received;
    d.delivered += h.delivered;
    d.deferred += h.deferred;
    d.returned += h.returned;
    d.rejected += h.rejected;
    days.set(key, d);
  }
  return [...days.values()];
}
