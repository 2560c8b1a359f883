// TLS-RPT reports (RFC 8460 §4) from counted sessions, the recorder's day files and when it
// writes the reports; and the MTA-STS policy store's files (a restart, a damaged file).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TlsReportEvent } from '../../src/delivery/tls/decision.js';
import { buildTlsRptReports, TlsRptRecorder, type TlsRptCount, type TlsRptReport } from '../../src/delivery/tls/tlsrpt.js';
import { StsPolicyStore } from '../../src/delivery/tls/mta-sts-store.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'tsubame-tlsrpt-'));
  dirs.push(d);
  return d;
};
const org = { name: 'mta.example', contact: 'postmaster@mta.example' };
const sts = (result: TlsReportEvent['result'], mxHost = 'mx1.a.example', detail: string | null = null): TlsReportEvent => ({
  policyType: 'sts',
  policyDomain: 'a.example',
  policyString: ['version: STSv1', 'mode: enforce', 'mx: *.a.example', 'max_age: 86400'],
  mxPatterns: ['*.a.example'],
  mxHost,
  result,
  detail,
});

test('a day of counts becomes one report per policy domain, successes summed and failures detailed', () => {
  const count = (e: TlsReportEvent, n: number, day = '2026-12-07', ip: string | null = '192.0.2.1'): TlsRptCount => ({ day, ...e, ip, count: n });
  const counts = [
    count(sts('success'), 10),
    count(sts('success'), 5),
    count(sts('certificate-expired', 'mx2.a.example', 'expired'), 2),
    count(sts('certificate-expired', 'mx2.a.example', 'expired'), 1),
    count(sts('success'), 99, '2026-12-08'),
    count({ ...sts('success'), policyType: 'tlsa', policyDomain: 'b.example', policyString: ['3 1 1 ab'], mxPatterns: [] }, 4),
  ];
  const reports = buildTlsRptReports(counts, '2026-12-07', org);
  assert.deepEqual([...reports.keys()], ['a.example', 'b.example']);
  const a = reports.get('a.example')!;
  assert.deepEqual(a, {
    'organization-name': 'mta.example',
    'date-range': { 'start-datetime': '2026-12-07T00:00:00Z', 'end-datetime': '2026-12-07T23:59:59Z' },
    'contact-info': 'postmaster@mta.example',
    'report-id': '2026-12-07T00:00:00Z_a.example@mta.example',
    policies: [
      {
        policy: { 'policy-type': 'sts', 'policy-string': ['version: STSv1', 'mode: enforce', 'mx: *.a.example', 'max_age: 86400'], 'policy-domain': 'a.example', 'mx-host': ['*.a.example'] },
        summary: { 'total-successful-session-count': 15, 'total-failure-session-count': 3 },
        'failure-details': [{ 'result-type': 'certificate-expired', 'receiving-mx-hostname': 'mx2.a.example', 'receiving-ip': '192.0.2.1', 'failed-session-count': 3, 'failure-reason-code': 'expired' }],
      },
    ],
  } satisfies TlsRptReport);
  assert.deepEqual(reports.get('b.example')!.policies[0]!.policy, { 'policy-type': 'tlsa', 'policy-string': ['3 1 1 ab'], 'policy-domain': 'b.example' });
});

test('the recorder appends counts per day and writes a day\'s reports once the day is over (also after a restart)', async () => {
  const dir = tempDir();
  let now = new Date('2026-12-07T23:59:00Z');
  const r1 = new TlsRptRecorder(dir, org, () => now, 0);
  r1.record(sts('success'), '192.0.2.1');
  r1.record(sts('success'), '192.0.2.1');
  r1.record(sts('validation-failure', 'mx9.other.example', 'not listed'), '192.0.2.9');
  await r1.flush();
  const lines = readFileSync(join(dir, '2026-12-07.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as TlsRptCount);
  assert.deepEqual(lines.map((l) => [l.result, l.count]), [['success', 2], ['validation-failure', 1]]);
  assert.equal(existsSync(join(dir, '2026-12-07')), false, 'no report while the day runs');
  // Another thread (or process) counts the same day.
  const r2 = new TlsRptRecorder(dir, org, () => now, 0);
  r2.record(sts('success'), '192.0.2.1');
  await r2.flush();
  now = new Date('2026-12-08T00:01:00Z');
  await r1.flush(); // the first flush of a new day writes yesterday's reports
  const report = JSON.parse(readFileSync(join(dir, '2026-12-07', 'a.example.json'), 'utf8')) as TlsRptReport;
  assert.deepEqual(report.policies[0]!.summary, { 'total-successful-session-count': 3, 'total-failure-session-count': 1 });
  // A day left without reports (everything stopped before midnight) is written by the next start's first flush.
  writeFileSync(join(dir, '2026-12-05.jsonl'), `${JSON.stringify({ day: '2026-12-05', ...sts('success'), ip: null, count: 7 })}\nnot json\n`);
  const r3 = new TlsRptRecorder(dir, org, () => now, 0);
  await r3.close();
  const old = JSON.parse(readFileSync(join(dir, '2026-12-05', 'a.example.json'), 'utf8')) as TlsRptReport;
  assert.equal(old.policies[0]!.summary['total-successful-session-count'], 7);
  assert.deepEqual(readdirSync(join(dir, '2026-12-07')).filter((n) => n.endsWith('.tmp')), [], 'no temporary files left');
});

test('the policy store: a policy written survives a restart; a damaged or foreign file is no policy', async () => {
  const dir = tempDir();
  const store = new StsPolicyStore(dir);
  const entry = { domain: 'a.example', id: 'x1', policy: { mode: 'enforce' as const, mx: ['*.a.example'], maxAge: 3600, lines: ['version: STSv1'] }, fetchedAt: 1000, expiresAt: 3_601_000 };
  await store.put(entry);
  const restarted = new StsPolicyStore(dir);
  assert.deepEqual(await restarted.get('a.example'), entry);
  assert.equal(await restarted.get('b.example'), null);
  writeFileSync(join(dir, 'c.example.json'), '{"domain":"c.example","id":"1","policy":{"mode":"enforce"');
  writeFileSync(join(dir, 'd.example.json'), JSON.stringify({ ...entry, domain: 'other.example' }));
  assert.equal(await restarted.get('c.example'), null, 'truncated');
  assert.equal(await restarted.get('d.example'), null, 'another domain\'s entry');
  assert.equal(await restarted.get('../etc/passwd'), null, 'not a domain name: no file is read');
  await restarted.delete('a.example');
  assert.equal(existsSync(join(dir, 'a.example.json')), false);
});
