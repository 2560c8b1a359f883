// TLS-RPT (RFC 8460) in its simplest correct form: the outcome of every session to a domain with
// a policy (MTA-STS or DANE) is counted in memory and appended, now and then, as JSON lines to
// tls/tlsrpt/YYYY-MM-DD.jsonl (appends from several threads and processes do not mix); once a
// day is over, the counts of that day become one RFC 8460 report per policy domain,
// tls/tlsrpt/YYYY-MM-DD/DOMAIN.json, ready to be sent to the domain's `rua` (sending is not ours).
// A day's reports are written again by whoever appends later counts for it, so they converge.
import { mkdir, open, readFile, readdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFully } from '../../common/write-fully.js';
import type { TlsReportEvent, TlsRptResult } from './decision.js';

/** One line of a day's counts file. */
export interface TlsRptCount {
  day: string;
  policyType: 'sts' | 'tlsa';
  policyDomain: string;
  policyString: string[];
  mxPatterns: string[];
  mxHost: string;
  /** The receiving MX's address, when known. */
  ip: string | null;
  result: TlsRptResult;
  detail: string | null;
  count: number;
}

export interface TlsRptOrganization {
  /** organization-name (LOCAL_HOST). */
  name: string;
  /** contact-info (postmaster@LOCAL_HOST). */
  contact: string;
}

/** An RFC 8460 §4 report. */
export interface TlsRptReport {
  'organization-name': string;
  'date-range': { 'start-datetime': string; 'end-datetime': string };
  'contact-info': string;
  'report-id': string;
  policies: Array<{
    policy: { 'policy-type': 'sts' | 'tlsa'; 'policy-string': string[]; 'policy-domain': string; 'mx-host'?: string[] };
    summary: { 'total-successful-session-count': number; 'total-failure-session-count': number };
    'failure-details'?: Array<{ 'result-type': TlsRptResult; 'receiving-mx-hostname': string; 'receiving-ip'?: string; 'failed-session-count': number; 'failure-reason-code'?: string }>;
  }>;
}

/** `2026-12-07`, the UTC day of a time. */
function utcDay(t: Date): string {
  return t.toISOString().slice(0, 10);
}

/** The reports of one day, per policy domain (pure). */
export function buildTlsRptReports(counts: TlsRptCount[], day: string, org: TlsRptOrganization): Map<string, TlsRptReport> {
  interface PolicyTally { key: TlsRptCount; ok: number; failed: Map<string, { c: TlsRptCount; n: number }> }
  const byDomain = new Map<string, Map<string, PolicyTally>>();
  for (const c of counts) {
    if (c.day !== day) continue;
    const policies = byDomain.get(c.policyDomain) ?? new Map<string, PolicyTally>();
    byDomain.set(c.policyDomain, policies);
    const policyKey = JSON.stringify([c.policyType, c.policyString, c.mxPatterns]);
    const p: PolicyTally = policies.get(policyKey) ?? { key: c, ok: 0, failed: new Map() };
    policies.set(policyKey, p);
    if (c.result === 'success') p.ok += c.count;
    else {
      const fk = JSON.stringify([c.result, c.mxHost, c.ip, c.detail]);
      const f = p.failed.get(fk) ?? { c, n: 0 };
      f.n += c.count;
      p.failed.set(fk, f);
    }
  }
  const reports = new Map<string, TlsRptReport>();
  for (const [domain, policies] of [...byDomain].sort(([a], [b]) => a.localeCompare(b))) {
    reports.set(domain, {
      'organization-name': org.name,
      'date-range': { 'start-datetime': `${day}T00:00:00Z`, 'end-datetime': `${day}T23:59:59Z` },
      'contact-info': org.contact,
      'report-id': `${day}T00:00:00Z_${domain}@${org.name}`,
      policies: [...policies.values()].map(({ key, ok, failed }) => {
        const details = [...failed.values()].map(({ c, n }) => ({
          'result-type': c.result,
          'receiving-mx-hostname': c.mxHost,
          ...(c.ip ? { 'receiving-ip': c.ip } : {}),
          'failed-session-count': n,
          ...(c.detail ? { 'failure-reason-code': c.detail } : {}),
        }));
        return {
          policy: { 'policy-type': key.policyType, 'policy-string': key.policyString, 'policy-domain': domain, ...(key.policyType === 'sts' ? { 'mx-host': key.mxPatterns } : {}) },
          summary: { 'total-successful-session-count': ok, 'total-failure-session-count': details.reduce((s, d) => s + d['failed-session-count'], 0) },
          ...(details.length ? { 'failure-details': details } : {}),
        };
      }),
    });
  }
  return reports;
}

/** Reads a day's counts (lines that do not parse are skipped). */
async function readTlsRptCounts(dir: string, day: string): Promise<TlsRptCount[]> {
  const text = await readFile(join(dir, `${day}.jsonl`), 'utf8').catch(() => '');
  const out: TlsRptCount[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const c = JSON.parse(line) as TlsRptCount;
      if (c?.day === day && typeof c.policyDomain === 'string' && typeof c.count === 'number') out.push(c);
    } catch {
      /* a line cut by a crash: skipped */
    }
  }
  return out;
}

/** Writes the day's reports (tls/tlsrpt/DAY/DOMAIN.json, each whole or not at all); returns their paths. */
async function writeTlsRptReports(dir: string, day: string, org: TlsRptOrganization): Promise<string[]> {
  const reports = buildTlsRptReports(await readTlsRptCounts(dir, day), day, org);
  const dayDir = join(dir, day);
  if (reports.size) await mkdir(dayDir, { recursive: true });
  const files: string[] = [];
  for (const [domain, report] of reports) {
    const file = join(dayDir, `${domain}.json`);
    const tmp = join(dayDir, `.${domain}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
    const fh = await open(tmp, 'w', 0o644);
    try {
      await writeFully(fh.fd, [Buffer.from(`${JSON.stringify(report, null, 2)}\n`)]);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
    files.push(file);
  }
  return files;
}

/** The days that have a counts file. */
async function tlsRptDays(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => /^\d{4}-\d{2}-\d{2}\.jsonl$/.test(n)).map((n) => n.slice(0, 10)).sort();
}

/** Counts sessions in memory; flush() appends them and writes the reports of finished days. */
export class TlsRptRecorder {
  private pending = new Map<string, TlsRptCount>();
  private lastFlushDay: string | null = null;
  private flushing: Promise<void> = Promise.resolve();
  private readonly timer: NodeJS.Timeout | null;

  constructor(
    /** The instance's tls/tlsrpt directory. */
    readonly dir: string,
    private readonly org: TlsRptOrganization,
    private readonly now: () => Date = () => new Date(),
    /** Automatic flushes (0: only flush()/close()). */
    flushIntervalMs = 60_000,
  ) {
    this.timer = flushIntervalMs > 0 ? setInterval(() => void this.flush().catch(() => undefined), flushIntervalMs) : null;
    this.timer?.unref();
  }

  record(event: TlsReportEvent, ip: string | null = null): void {
    const day = utcDay(this.now());
    const key = JSON.stringify([day, event.policyType, event.policyDomain, event.policyString, event.mxPatterns, event.mxHost, ip, event.result, event.detail]);
    const c = this.pending.get(key);
    if (c) c.count++;
    else this.pending.set(key, { day, ...event, ip, count: 1 });
  }

  /** Appends what was counted; writes the reports of the past days it touched (and of yesterday, at a new day). */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.flushNow());
    return this.flushing;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush();
  }

  private async flushNow(): Promise<void> {
    const today = utcDay(this.now());
    const counts = [...this.pending.values()];
    this.pending = new Map();
    const days = new Set(counts.map((c) => c.day));
    if (counts.length) {
      await mkdir(this.dir, { recursive: true });
      for (const day of days) {
        const lines = counts.filter((c) => c.day === day).map((c) => `${JSON.stringify(c)}\n`);
        const fh = await open(join(this.dir, `${day}.jsonl`), 'a', 0o644);
        try {
          await writeFully(fh.fd, [Buffer.from(lines.join(''))]);
        } finally {
          await fh.close();
        }
      }
    }
    const finished = new Set([...days].filter((d) => d < today));
    if (this.lastFlushDay && this.lastFlushDay < today) finished.add(this.lastFlushDay);
    if (this.lastFlushDay === null) {
      // A first flush after a start: past days whose reports nobody wrote (stopped before midnight).
      const written = new Set(await readdir(this.dir).catch(() => [] as string[]));
      for (const day of await tlsRptDays(this.dir)) if (day < today && !written.has(day)) finished.add(day);
    }
    this.lastFlushDay = today;
    for (const day of finished) await writeTlsRptReports(this.dir, day, this.org);
  }
}
