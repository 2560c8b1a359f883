// `imsimta report` as an operator runs it, on an instance's log/ holding mail.log and two
// rotated copies (mail.log.1, and mail.log.2.gz compressed as logrotate leaves it), each a
// known mix (test/helpers/mail-log-mix.ts): every total exact over the three files, read oldest
// first; --since leaves out the copies written before it and the records before it; the text
// form has its sections; a wrong --since is one usage line; no progress when piped, a progress
// line on a terminal that is erased before the report.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { makeInstance, runCli, type TestInstance } from '../helpers/instance.js';
import { writeMailLogMix, type MixExpectation } from '../helpers/mail-log-mix.js';
import { onTerminal } from '../helpers/terminal.js';
import type { MailReport } from '../../src/report/aggregate.js';

const HOUR = 3600e3;
let inst: TestInstance;
const now = Date.now();
// Oldest first: mail.log.2.gz 30 to 26 h ago, mail.log.1 20 to 16 h ago, mail.log the last 4 h.
const parts: Array<{ name: string; startMs: number; mix?: MixExpectation }> = [
  { name: 'mail.log.2.gz', startMs: now - 30 * HOUR },
  { name: 'mail.log.1', startMs: now - 20 * HOUR },
  { name: 'mail.log', startMs: now - 4 * HOUR - 60e3 },
];

before(async () => {
  inst = makeInstance();
  for (const p of parts) {
    const plain = join(inst.root, 'log', p.name.replace(/\.gz$/, ''));
    // 1,800 messages 8 s apart: 4 hours of each file.
    p.mix = await writeMailLogMix(plain, { messages: 1800, startMs: p.startMs, stepMs: 8000 });
    const path = join(inst.root, 'log', p.name);
    if (p.name.endsWith('.gz')) {
      writeFileSync(path, gzipSync(readFileSync(plain)));
      rmSync(plain);
    }
    // Last written when its last record was (as a rotated log is).
    const last = new Date(p.startMs + 4 * HOUR + 700e3);
    utimesSync(path, last, last);
  }
});

after(() => inst?.remove());

async function report(args: string[]): Promise<MailReport & { files: string[] }> {
  const r = await runCli('imsimta', ['report', '--root', inst.root, '--json', ...args], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '', 'nothing on stderr when piped: no progress line');
  return JSON.parse(r.stdout) as MailReport & { files: string[] };
}

const sum = (f: (m: MixExpectation) => number, which = parts) => which.reduce((n, p) => n + f(p.mix!), 0);

test('--since all: the three files, oldest first (the .gz one too), every total exact', async () => {
  const r = await report(['--since', 'all']);
  assert.deepEqual(r.files, parts.map((p) => join(inst.root, 'log', p.name)));
  assert.equal(r.lines.read, sum((m) => m.lines));
  assert.equal(r.lines.unparsed, sum((m) => m.unparsed));
  assert.deepEqual(r.totals.received, { messages: sum((m) => m.received.messages), recipients: sum((m) => m.received.recipients), bytes: sum((m) => m.received.bytes) });
  assert.deepEqual(r.totals.delivered, { messages: sum((m) => m.delivered.messages), recipients: sum((m) => m.delivered.recipients), bytes: sum((m) => m.delivered.bytes) });
  assert.deepEqual(r.totals.deferred, { messages: sum((m) => m.deferred.messages), recipients: sum((m) => m.deferred.recipients) });
  assert.deepEqual(r.totals.returned, { messages: sum((m) => m.returned.messages), recipients: sum((m) => m.returned.recipients) });
  assert.deepEqual(r.totals.removed, { messages: sum((m) => m.removed.messages), recipients: sum((m) => m.removed.recipients) });
  assert.equal(r.totals.rejected.recipients, sum((m) => m.rejected));
  assert.deepEqual(r.totals.other, { records: sum((m) => m.other.Z ?? 0), letters: { Z: sum((m) => m.other.Z ?? 0) } });
  const relay = r.rejections.find((x) => x.rule === 'relay');
  assert.equal(relay?.recipients, sum((m) => m.rules.get('relay') ?? 0));
  // The policy refusals (a DNS blocklist, SPF, DMARC, a milter) by their rule, over the three files.
  for (const rule of ['rbl:bl.test', 'SPF', 'DMARC', 'milter:rspamd']) {
    const expected = sum((m) => m.rules.get(rule) ?? 0);
    assert.ok(expected > 0, rule);
    assert.equal(r.rejections.find((x) => x.rule === rule)?.recipients, expected, rule);
  }
  assert.equal(r.approximate, 0);
  // The ten largest senders over the three files, largest first (ties by address).
  const senders = new Map<string, { messages: number; bytes: number }>();
  for (const p of parts) {
    for (const [sender, v] of p.mix!.senders) {
      const s = senders.get(sender) ?? { messages: 0, bytes: 0 };
      senders.set(sender, { messages: s.messages + v.messages, bytes: s.bytes + v.bytes });
    }
  }
  const top = [...senders].sort((a, b) => b[1].messages - a[1].messages || (a[0] < b[0] ? -1 : 1)).slice(0, 10);
  assert.deepEqual(r.topSenders, top.map(([sender, v]) => ({ sender, ...v })));
});

test('the default period is the last 24 hours: the copy written before it is not read, the records before it not counted', async () => {
  const r = await report([]);
  assert.deepEqual(r.files, parts.slice(1).map((p) => join(inst.root, 'log', p.name)));
  // mail.log whole; of mail.log.1 (20 to 16 h ago) everything: the cut is 24 h back.
  assert.equal(r.totals.received.messages, sum((m) => m.received.messages, parts.slice(1)));
  const recent = await report(['--since', '3h']);
  assert.deepEqual(recent.files, [join(inst.root, 'log', 'mail.log')]);
  assert.ok(recent.lines.outside > 0, 'the first hour of mail.log is before the cut');
  assert.ok(recent.totals.received.messages > 0 && recent.totals.received.messages < parts[2]!.mix!.received.messages);
  assert.ok(recent.period.first! >= recent.period.since!);
});

test('the text report, and a wrong --since as one usage line', async () => {
  const r = await runCli('imsimta', ['report', '--root', inst.root, '--since', 'all', '--top', '3'], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  for (const title of ['Grand totals', 'Traffic per hour', 'Top senders', 'Deferrals by reason', 'Bounces by reason', 'Rejections by rule', 'Slowest deliveries']) assert.ok(r.stdout.includes(`\n${title}`), title);
  assert.match(r.stdout, new RegExp(`\\n  received +${sum((m) => m.received.messages).toLocaleString('en-US')} `));
  const bad = await runCli('imsimta', ['report', '--root', inst.root, '--since', 'last tuesday']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^imsimta: --since "last tuesday": give a time/);
  assert.doesNotMatch(bad.stderr, /\n\s+at /, 'no stack trace');
});

test('on a terminal: a progress line while reading, erased before the report is printed', async () => {
  const run = await onTerminal('imsimta', ['report', '--root', inst.root, '--since', 'all'], { timeoutS: 60 });
  assert.equal(run.timed_out, false);
  assert.equal(run.code, 0, run.transcript);
  const shown = run.transcript.indexOf('imsimta report: reading mail.log: ');
  assert.ok(shown >= 0, `a progress line: ${run.transcript.slice(0, 300)}`);
  assert.match(run.transcript, /reading mail\.log: \d+% \([\d.]+ of [\d.]+ MB\)/);
  const erased = run.transcript.lastIndexOf('\r\x1b[K');
  const report = run.transcript.indexOf('tsubame mail report:');
  assert.ok(erased > shown && report > erased, 'the line is erased before the report starts');
});
