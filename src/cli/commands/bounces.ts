// `imsimta bounces [--list L] [--member M] [--since WHEN] [--summary] [--json]`: the bounces the
// bounces channel recorded (log/bounces.jsonl and its rotated copies), oldest first, or per list
// and member with --summary. --json: one record (or summary) per line, as in the file.
import { parseArgs } from '../args.js';
import { UsageError } from '../errors.js';
import { instancePaths, resolveRoot } from '../../common/instance.js';
import { parseIsoDuration } from '../../config/durations.js';
import { readBounceRecords, summarizeBounces, type BounceRecord, type BounceSummary } from '../../notices/bounce-records.js';

export async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['list', 'member', 'since'], ['json', 'summary']);
  if (args.positionals.length > 0) throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
  const root = resolveRoot(args.values.get('root'));
  const sinceText = args.values.get('since');
  const since = sinceText === undefined ? undefined : parseSince(sinceText, new Date());
  const { records, skipped } = await readBounceRecords(instancePaths(root).bounceLog, { list: args.values.get('list'), member: args.values.get('member'), since });
  if (skipped > 0) process.stderr.write(`imsimta bounces: ${skipped} line${skipped === 1 ? '' : 's'} of ${instancePaths(root).bounceLog} (or its rotated copies) are not bounce records and were skipped\n`);
  const json = args.flags.has('json');
  if (args.flags.has('summary')) {
    const summary = summarizeBounces(records);
    process.stdout.write(json ? summary.map((s) => `${JSON.stringify(s)}\n`).join('') : formatSummary(summary));
  } else {
    process.stdout.write(json ? records.map((r) => `${JSON.stringify(r)}\n`).join('') : formatRecords(records));
  }
  return 0;
}

/**
 * `--since`: an ISO 8601 date or time (`2026-12-01`, `2026-12-01T08:00:00Z`), or an age: an ISO
 * 8601 duration (`P7D`, `PT12H`) or a number with s, m, h or d (`30m`, `7d`).
 */
export function parseSince(text: string, now: Date): Date {
  const t = text.trim();
  const age = /^(\d+)\s*([smhd])$/i.exec(t);
  if (age) return new Date(now.getTime() - Number(age[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[age[2]!.toLowerCase() as 's' | 'm' | 'h' | 'd']);
  if (/^p/i.test(t)) {
    const ms = parseIsoDuration(t);
    if (ms !== null) return new Date(now.getTime() - ms);
  } else if (/^\d{4}-\d{2}-\d{2}/.test(t) && !Number.isNaN(Date.parse(t))) {
    return new Date(Date.parse(t));
  }
  throw new UsageError(`--since takes a date or time (2026-12-01, 2026-12-01T08:00:00Z) or an age (P7D, PT12H, 7d, 30m), found "${text}"`);
}

function table(header: string[], rows: string[][], footer: string): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((v, i) => (i === cells.length - 1 ? v : v.padEnd(widths[i]!))).join('  ').trimEnd() + '\n';
  return line(header) + rows.map(line).join('') + footer;
}

function formatRecords(records: readonly BounceRecord[]): string {
  if (records.length === 0) return 'No bounces recorded.\n';
  const members = new Set(records.map((r) => `${r.list.toLowerCase()}\0${(r.member ?? '').toLowerCase()}`)).size;
  return table(
    ['TIME', 'LIST', 'MEMBER', 'STATUS', 'DIAGNOSTIC'],
    records.map((r) => [r.time, r.list, r.member ?? '-', r.status ?? '-', short(r.diagnostic)]),
    `${records.length} bounce${records.length === 1 ? '' : 's'} of ${members} member${members === 1 ? '' : 's'}.\n`,
  );
}

function formatSummary(summary: readonly BounceSummary[]): string {
  if (summary.length === 0) return 'No bounces recorded.\n';
  return table(
    ['LIST', 'MEMBER', 'BOUNCES', 'FIRST', 'LAST', 'LAST STATUS'],
    summary.map((s) => [s.list, s.member ?? '-', String(s.bounces), s.first, s.last, `${s.last_status ?? '-'} ${short(s.last_diagnostic, 60)}`.trim()]),
    `${summary.length} member${summary.length === 1 ? '' : 's'}, ${summary.reduce((n, s) => n + s.bounces, 0)} bounces.\n`,
  );
}

function short(text: string | null, max = 80): string {
  if (!text) return '-';
  const t = text.replace(/\s+/g, ' ');
  return t.length > max ? `${t.slice(0, max - 3)}...` : t;
}
