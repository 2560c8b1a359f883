// The bounce records (log/bounces.jsonl): one JSON object per line, one line per bounced list
// member, written by the bounces channel and read by `imsimta bounces`. What a bounce message
// says is turned into records here (pure); appending and reading are the I/O around it. A batch
// of records is appended with one write and fsynced before the channel reports the bounce
// messages delivered (so a record is never lost with its message); a write that fails is cut
// back off the file. Readers skip a line that is not a whole record (an older version's, or one
// damaged by hand) and read the rotated copies too (bounces.jsonl.1 …, uncompressed).
import { closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, openSync, readdirSync, statSync } from 'node:fs';
import { createReadStream } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { writeFullySync } from '../common/write-fully.js';
import { decodeVerp } from '../delivery/verp.js';
import type { DsnReportRecipient, ParsedBounce } from './dsn-parse.js';

/** One bounced member, as a line of log/bounces.jsonl. */
export interface BounceRecord {
  /** When the bounce was recorded (ISO 8601). */
  time: string;
  /** The list: the VERP owner address (`owner@list.example`), or the address the bounce came to. */
  list: string;
  /** The member that bounced, or null when neither the address nor the report says. */
  member: string | null;
  /** `failed` (a DSN's action), or `unknown` for a bounce that is not a DSN. */
  action: 'failed' | 'unknown';
  /** Enhanced status code (`5.1.1`), or null. */
  status: string | null;
  /** Diagnostic-Code (`smtp; 550 5.1.1 …`), the SMTP reply found in a non-DSN bounce, or its subject; null when none. */
  diagnostic: string | null;
  /** Remote-MTA of the DSN (`dns; mx.example.com`), or null. */
  remote_mta: string | null;
  /** Reporting-MTA of the DSN, or null. */
  reporting_mta: string | null;
  /** The bounce came to a VERP address (the member is known from the address itself). */
  verp: boolean;
  /** `dsn` (RFC 3464) or `other` (a bounce in another form). */
  kind: 'dsn' | 'other';
  /** The queue id of the bounce message. */
  id: string;
}

/** What a bounce addressed to `recipient` records: none (not a failure: a delay notice, an auto-reply), one, or one per failed recipient of a DSN. */
export function bounceRecords(input: { recipient: string; bounce: ParsedBounce; delimiters: string; time: Date; id: string }): { records: BounceRecord[]; note: string } {
  const { bounce } = input;
  const verp = decodeVerp(input.recipient, input.delimiters);
  const base = { time: input.time.toISOString(), list: verp?.owner ?? input.recipient, verp: verp !== null, id: input.id };
  if (bounce.kind === 'auto-reply') return { records: [], note: 'an auto-reply, not a bounce: not recorded' };
  if (bounce.kind === 'other') {
    const record: BounceRecord = { ...base, member: verp?.member ?? null, action: 'unknown', status: bounce.status, diagnostic: bounce.diagnostic ?? bounce.subject, remote_mta: null, reporting_mta: null, kind: 'other' };
    return { records: [record], note: `bounce recorded for ${record.member ?? 'an unknown member'} (not a DSN)` };
  }
  const failed = bounce.recipients.filter((r) => r.action === 'failed');
  if (failed.length === 0) {
    const actions = [...new Set(bounce.recipients.map((r) => r.action ?? 'no action'))].join(', ');
    return { records: [], note: `a delivery status notification without failures (${actions}): not recorded` };
  }
  const fromReport = (r: DsnReportRecipient, member: string | null): BounceRecord => ({
    ...base,
    member,
    action: 'failed',
    status: r.status,
    diagnostic: r.diagnostic,
    remote_mta: r.remoteMta,
    reporting_mta: bounce.reportingMta,
    kind: 'dsn',
  });
  if (verp) {
    // The address names the member; the report's block for that member (or its only failure) gives the details.
    const same = (a: string | null) => a !== null && sameAddress(a, verp.member);
    const block = failed.find((r) => same(r.finalRecipient) || same(r.originalRecipient)) ?? (failed.length === 1 ? failed[0]! : null);
    const record = block ? fromReport(block, verp.member) : { ...fromReport(failed[0]!, verp.member), status: null, diagnostic: null, remote_mta: null };
    return { records: [record], note: `bounce recorded for ${verp.member}` };
  }
  const records = failed.map((r) => fromReport(r, r.originalRecipient ?? r.finalRecipient));
  return { records, note: `bounce recorded for ${records.map((r) => r.member ?? 'an unknown member').join(', ')}` };
}

/** Addresses equal but for the case of the domain (local parts compared as written, case-blind for ASCII as most servers are). */
function sameAddress(a: string, b: string): boolean {
  return a.trim().toLowerCase() === b.trim().toLowerCase();
}

/** Appends records to `file` (made mode 0640 if missing), one line each, in one write, then fsyncs it. */
export function appendBounceRecords(file: string, records: readonly BounceRecord[]): void {
  if (records.length === 0) return;
  const fd = openSync(file, 'a', 0o640);
  let size = -1;
  try {
    size = fstatSync(fd).size;
    writeFullySync(fd, [Buffer.from(records.map((r) => `${JSON.stringify(r)}\n`).join(''), 'utf8')]);
    fsyncSync(fd);
  } catch (err) {
    // A partial line would spoil the next writer's first line: cut it off again.
    if (size >= 0) {
      try {
        ftruncateSync(fd, size);
      } catch {
        /* the write error is the one to report */
      }
    }
    throw err;
  } finally {
    closeSync(fd);
  }
}

export interface BounceQuery {
  /** Only this list (case-blind). */
  list?: string;
  /** Only this member (case-blind). */
  member?: string;
  /** Only records at or after this time. */
  since?: Date;
}

/** The file and its rotated copies (`bounces.jsonl.1`, `bounces.jsonl-20261201` …), oldest first. */
function bounceLogFiles(file: string): string[] {
  const dir = dirname(file);
  const name = basename(file);
  if (!existsSync(dir)) return [];
  const rotated = readdirSync(dir)
    .filter((n) => n.startsWith(`${name}.`) || n.startsWith(`${name}-`))
    .filter((n) => !/\.(gz|bz2|xz|zst|lz4|Z)$/.test(n))
    .map((n) => join(dir, n))
    .sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs);
  return existsSync(file) ? [...rotated, file] : rotated;
}

/** Every record of `file` and its rotated copies that matches `query`, in file order; `skipped` counts lines that are not records. */
export async function readBounceRecords(file: string, query: BounceQuery = {}): Promise<{ records: BounceRecord[]; skipped: number }> {
  const records: BounceRecord[] = [];
  let skipped = 0;
  const list = query.list?.toLowerCase();
  const member = query.member?.toLowerCase();
  const since = query.since?.getTime();
  for (const path of bounceLogFiles(file)) {
    const lines = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
    for await (const line of lines) {
      if (!line.trim()) continue;
      const r = parseRecord(line);
      if (!r) {
        skipped++;
        continue;
      }
      if (list !== undefined && r.list.toLowerCase() !== list) continue;
      if (member !== undefined && (r.member ?? '').toLowerCase() !== member) continue;
      if (since !== undefined && !(Date.parse(r.time) >= since)) continue;
      records.push(r);
    }
  }
  return { records, skipped };
}

function parseRecord(line: string): BounceRecord | null {
  try {
    const r = JSON.parse(line) as Partial<BounceRecord>;
    if (typeof r !== 'object' || r === null || typeof r.time !== 'string' || typeof r.list !== 'string' || !(typeof r.member === 'string' || r.member === null)) return null;
    return r as BounceRecord;
  } catch {
    return null;
  }
}

export interface BounceSummary {
  list: string;
  member: string | null;
  bounces: number;
  first: string;
  last: string;
  last_status: string | null;
  last_diagnostic: string | null;
}

/** Per list and member: how many bounces, the first and last, and what the last one said. */
export function summarizeBounces(records: readonly BounceRecord[]): BounceSummary[] {
  const by = new Map<string, BounceSummary>();
  for (const r of records) {
    const key = `${r.list.toLowerCase()}\0${(r.member ?? '').toLowerCase()}`;
    const s = by.get(key);
    if (!s) by.set(key, { list: r.list, member: r.member, bounces: 1, first: r.time, last: r.time, last_status: r.status, last_diagnostic: r.diagnostic });
    else {
      s.bounces++;
      if (r.time < s.first) s.first = r.time;
      if (r.time >= s.last) {
        s.last = r.time;
        s.last_status = r.status;
        s.last_diagnostic = r.diagnostic;
      }
    }
  }
  return [...by.values()].sort((a, b) => a.list.localeCompare(b.list) || b.bounces - a.bounces || (a.member ?? '').localeCompare(b.member ?? ''));
}
