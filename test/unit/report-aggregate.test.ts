// The mail report's aggregation (src/report/aggregate.ts) on a mail.log of a known mix
// (test/helpers/mail-log-mix.ts): every total, every hour, every top list, reason group and rule
// exact; unknown letters counted as other, trailing tokens kept out of the reasons, lines that
// are no records counted apart; the period cuts by time; the lenient line reader and the reason
// reduction on their own; the bounded tally keeps the largest keys and says what it dropped.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReportAggregator, DELAY_BUCKETS, type MailReport } from '../../src/report/aggregate.js';
import { readLines } from '../../src/report/read-logs.js';
import { BoundedTally } from '../../src/report/tally.js';
import { parseLooseMailLogLine } from '../../src/common/mail-log-read.js';
import { rejectionRule, statusReason } from '../../src/common/mail-log-reasons.js';
import { formatReport } from '../../src/report/format.js';
import { writeMailLogMix, type MixExpectation } from '../helpers/mail-log-mix.js';

const START = Date.UTC(2026, 11, 6, 22, 0, 0);
let dir: string;
let log: string;
let mix: MixExpectation;
let report: MailReport;

async function aggregate(opts: ConstructorParameters<typeof ReportAggregator>[0]): Promise<MailReport> {
  const a = new ReportAggregator(opts);
  await readLines(log, (line) => a.addLine(line));
  return a.result();
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'report-aggregate-'));
  log = join(dir, 'mail.log');
  // 3,000 messages 7 s apart: almost six hours, so several hours of traffic.
  mix = await writeMailLogMix(log, { messages: 3000, startMs: START, stepMs: 7000 });
  report = await aggregate({ top: 10_000 });
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('totals: messages and recipients received, delivered, deferred, returned, removed; rejected recipients; other letters; bytes', () => {
  const t = report.totals;
  assert.deepEqual(t.received, mix.received);
  assert.deepEqual(t.delivered, mix.delivered);
  assert.deepEqual(t.deferred, mix.deferred);
  assert.deepEqual(t.returned, mix.returned);
  assert.deepEqual(t.removed, mix.removed);
  assert.equal(t.rejected.recipients, mix.rejected);
  assert.deepEqual(t.other, { records: mix.other.Z, letters: { Z: mix.other.Z } });
  assert.deepEqual(report.lines, { read: mix.lines, counted: mix.lines - mix.unparsed, outside: 0, unparsed: mix.unparsed });
  assert.equal(report.approximate, 0, 'nothing dropped: every count exact');
  // The mix has each kind in numbers (a wrong branch could not hide behind a zero).
  for (const n of [t.deferred.messages, t.returned.messages, t.removed.messages, t.other.records, mix.unparsed]) assert.ok(n > 0);
});

test('per hour: received, delivered, deferred, returned messages and rejected recipients, every hour with traffic', () => {
  const expected = [...mix.hourly].sort(([a], [b]) => (a < b ? -1 : 1)).map(([hour, c]) => ({ hour, ...c }));
  assert.ok(expected.length >= 6, `${expected.length} hours`);
  assert.deepEqual(report.hourly, expected);
});

test('top senders (the null sender as <>), recipients and destination domains', () => {
  const senders = [...report.topSenders].map((s) => [s.sender, { messages: s.messages, bytes: s.bytes }] as const);
  assert.deepEqual(new Map(senders), mix.senders);
  assert.ok(report.topSenders.some((s) => s.sender === '<>'));
  for (let i = 1; i < report.topSenders.length; i++) assert.ok(report.topSenders[i - 1]!.messages >= report.topSenders[i]!.messages, 'largest first');
  assert.deepEqual(new Map(report.topRecipients.map((r) => [r.recipient, r.deliveries])), mix.recipients);
  assert.deepEqual(new Map(report.topDomains.map((d) => [d.domain, { delivered: d.delivered, deferred: d.deferred, returned: d.returned, maxDelay: d.maxDelay }])), mix.domains);
});

test('deferrals and bounces grouped by reason (addresses and the host taken out) and remote host, else the recipients\' domain', () => {
  const key = (g: { destination: string; reason: string }) => `${g.destination}\n${g.reason}`;
  assert.deepEqual(new Map(report.deferrals.map((g) => [key(g), g])), mix.deferrals);
  assert.deepEqual(new Map(report.bounces.map((g) => [key(g), g])), mix.bounces);
  assert.ok(report.deferrals.some((g) => g.destination === 'mx.dest0.test' && /^421 4\.7\.0 rate limited/.test(g.reason)));
  assert.ok(report.deferrals.some((g) => g.destination === 'dest0.test' && /Connection refused$/.test(g.reason)));
});

test('rejections by rule: the leading rule name, the SMTP server\'s own refusals by name, else the enhanced code', () => {
  assert.deepEqual(new Map(report.rejections.map((r) => [r.rule, r.recipients])), mix.rules);
  const relay = report.rejections.find((r) => r.rule === 'relay');
  assert.deepEqual(relay?.reasons, [{ reason: '550 5.7.1 <…>: Relaying denied', recipients: mix.rules.get('relay') }]);
  assert.equal(report.rejections.find((r) => r.rule === 'ORIG_SEND_ACCESS')?.reasons[0]?.reason, 'ORIG_SEND_ACCESS: 550 5.7.1 your address is blocked');
});

test('rejections by rule: the DNS blocklist, SPF, DMARC and milter refusals as the SMTP server writes them, each counted under its rule with its reasons', () => {
  const byRule = new Map(report.rejections.map((r) => [r.rule, r]));
  for (const rule of ['rbl:bl.test', 'SPF', 'DMARC', 'milter:rspamd']) {
    const expected = mix.rules.get(rule) ?? 0;
    assert.ok(expected > 0, `the mix has ${rule} refusals`);
    assert.equal(byRule.get(rule)?.recipients, expected, rule);
    assert.deepEqual(new Map(byRule.get(rule)!.reasons.map((x) => [x.reason, x.recipients])), mix.ruleReasons.get(rule), rule);
  }
  // A refusal at connect (no sender, no recipient) counts as much as one at RCPT; DMARC counts each recipient of the refused message.
  assert.equal(mix.ruleReasons.get('rbl:bl.test')!.size, 3, 'three listed clients');
  assert.equal(mix.rules.get('DMARC'), 2 * Math.ceil((3000 - 17) / 64));
  // Every rule's reasons, the older ones too.
  assert.deepEqual(new Map(report.rejections.map((r) => [r.rule, new Map(r.reasons.map((x) => [x.reason, x.recipients]))])), mix.ruleReasons);
});

test('delivery delays from the queue id: histogram, mean and the slowest messages', () => {
  const counts = new Array<number>(DELAY_BUCKETS.length + 1).fill(0);
  let sum = 0;
  let n = 0;
  for (const [delay, k] of mix.delays) {
    let i = 0;
    while (i < DELAY_BUCKETS.length && delay > DELAY_BUCKETS[i]!) i++;
    counts[i]! += k;
    sum += delay * k;
    n += k;
  }
  assert.deepEqual(report.delays.counts, counts);
  assert.equal(report.delays.mean, Math.round((sum / n) * 1000) / 1000);
  const slowest = [...mix.deliveries].sort((a, b) => b.delay - a.delay).slice(0, 10_000);
  assert.deepEqual(report.slowest.map((s) => ({ id: s.id, delay: s.delay })), slowest.slice(0, report.slowest.length));
  assert.equal(report.slowest.length, Math.min(10_000, mix.deliveries.length));
});

test('a period keeps the records inside it and counts the others as outside', async () => {
  const since = new Date(START + 2 * 3600e3).toISOString();
  const until = new Date(START + 3 * 3600e3).toISOString();
  const r = await aggregate({ since, until });
  const hours = r.hourly.map((h) => h.hour);
  assert.deepEqual(hours, [since.slice(0, 13)]);
  assert.deepEqual(r.hourly[0], { hour: since.slice(0, 13), ...mix.hourly.get(since.slice(0, 13))! });
  assert.equal(r.lines.counted + r.lines.outside + r.lines.unparsed, mix.lines);
  assert.ok(r.period.first! >= since && r.period.last! < until);
});

test('top N and a bounded memory: the largest keys stay, the counts of what was dropped are reported', async () => {
  const r = await aggregate({ top: 3, capacity: 5 });
  assert.equal(r.topSenders.length, 3);
  assert.equal(r.topRecipients.length, 3);
  // 13 recipients do not fit in 2 × 5 entries: some were dropped, and the report says so.
  assert.ok(r.approximate > 0);
  const tally = new BoundedTally<{ n: number }>(2, () => ({ n: 0 }), (v) => v.n);
  for (const [key, n] of [['a', 5], ['b', 1], ['c', 3], ['d', 2], ['e', 4]] as const) for (let i = 0; i < n; i++) tally.at(key).n++;
  assert.deepEqual(tally.top(2).map(([k, v]) => [k, v.n]), [['a', 5], ['e', 4]]);
  assert.ok(tally.size <= 4);
  assert.equal(tally.droppedScore, 2, 'b (1) and d (2) were dropped when e came');
});

test('the lenient reader: any letter, trailing key=value tokens off the status, a token inside the reason kept, torn lines refused', () => {
  const r = parseLooseMailLogLine('2026-12-07T10:00:00.000Z D ID1 tcp_local tcp_local 12 <> b@x.test 250 2.0.0 Ok (mx.x.test[192.0.2.1]) tls=TLSv1.3/X/Verified auth=alice');
  assert.equal(r?.from, '');
  assert.equal(r?.status, '250 2.0.0 Ok (mx.x.test[192.0.2.1])');
  assert.deepEqual(r?.tokens, { tls: 'TLSv1.3/X/Verified', auth: 'alice' });
  assert.equal(parseLooseMailLogLine('2026-12-07T10:00:00.000Z W ID1 a b 1 x@y z@w something new')?.event, 'W');
  assert.equal(parseLooseMailLogLine('2026-12-07T10:00:00.000Z J - tcp_local - 0 a@b c@d 550 5.7.1 tls=required by policy')?.status, '550 5.7.1 tls=required by policy');
  assert.equal(parseLooseMailLogLine('2026-12-07T10:00:00.000Z D ID1 tcp_local'), null);
  assert.equal(parseLooseMailLogLine('2026-12-07T10:00:00.000Z DD ID1 a b 1 x y z'), null);
});

test('reasons: the trailing host apart, addresses hidden, long texts cut; rules', () => {
  assert.deepEqual(statusReason('451 4.7.1 <a@b.test>: try later (in reply to RCPT TO) (mx1.b.test[192.0.2.7]:2525)'), { reason: '451 4.7.1 <…>: try later (in reply to RCPT TO)', host: 'mx1.b.test' });
  assert.deepEqual(statusReason('451 4.4.1 no reachable host'), { reason: '451 4.4.1 no reachable host', host: '' });
  assert.equal(statusReason('451 4.4.1 connect to 192.0.2.9[192.0.2.9]:25: Connection refused (host not tried again until 2026-12-07T03:32:43.855Z)').reason, '451 4.4.1 connect to 192.0.2.9[192.0.2.9]:25: Connection refused (host not tried again until …)');
  assert.equal(statusReason('x'.repeat(500)).reason.length, 160);
  assert.equal(rejectionRule('rbl:zen.example.org: 554 5.7.1 listed'), 'rbl:zen.example.org');
  assert.equal(rejectionRule('550 5.7.1 <a@b>: Relaying denied'), 'relay');
  assert.equal(rejectionRule('554 5.7.1 Spam message rejected'), '5.7.1');
  assert.equal(rejectionRule('garbage'), 'other');
});

test('the text report has every section and the totals of the mix', () => {
  const text = formatReport(report, [log]);
  for (const title of ['Grand totals', 'Traffic per hour', 'Top senders', 'Top recipients', 'Destination domains', 'Deferrals by reason', 'Bounces by reason', 'Rejections by rule', 'Slowest deliveries', 'Delivery delays']) {
    assert.ok(text.includes(`\n${title}`), title);
  }
  assert.match(text, new RegExp(`\\n  received +${mix.received.messages.toLocaleString('en-US')} +${mix.received.recipients.toLocaleString('en-US')} `));
  assert.match(text, /other records +\d+ +Z: \d+/);
});
