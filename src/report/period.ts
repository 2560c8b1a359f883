// The period of `imsimta report`: `--since` and `--until` as an operator types them, read into
// UTC times (mail.log writes UTC): `24h`, `90m`, `7d`, an ISO 8601 duration (`PT6H`, `P1D`) back
// from now; a date or a date and time (`2026-12-07`, `2026-12-07T08:00`, `2026-12-07 08:00`, UTC
// unless it names its zone); `today`, `yesterday` (UTC days; `--since yesterday` alone ends at
// today's start, as pflogsumm's `-d yesterday`); `all` for no bound. Pure.
import { parseIsoDuration } from '../config/durations.js';

export interface Period {
  /** ISO times; null: open. */
  since: string | null;
  until: string | null;
}

const DEFAULT_SINCE = '24h';

const SHORT_DURATION = /^(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)$/i;
const SHORT_UNIT_MS: Record<string, number> = { s: 1e3, m: 60e3, min: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 };

function dayStart(ms: number): number {
  return Math.floor(ms / 86400e3) * 86400e3;
}

/** A point in time (ms), or null when `text` is not one; `what` names the option in the error. */
function parseTimePoint(text: string, nowMs: number): number | 'all' | null {
  const t = text.trim();
  const lower = t.toLowerCase();
  if (lower === 'all') return 'all';
  if (lower === 'now') return nowMs;
  if (lower === 'today') return dayStart(nowMs);
  if (lower === 'yesterday') return dayStart(nowMs) - 86400e3;
  const short = SHORT_DURATION.exec(t);
  if (short) return nowMs - Number(short[1]) * SHORT_UNIT_MS[short[2]!.toLowerCase()]!;
  if (/^P/i.test(t)) {
    const ms = parseIsoDuration(t);
    return ms === null ? null : nowMs - ms;
  }
  const m = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?))?(Z|[+-]\d{2}:?\d{2})?$/i.exec(t);
  if (!m) return null;
  const iso = `${m[1]}T${m[2] ?? '00:00'}${m[3] ?? 'Z'}`;
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? ms : null;
}

export class PeriodError extends Error {}

/** `since` null: the default (the last 24 hours). Throws PeriodError with the operator's line. */
export function parsePeriod(since: string | null | undefined, until: string | null | undefined, nowMs: number): Period {
  const point = (text: string, option: string) => {
    const p = parseTimePoint(text, nowMs);
    if (p === null) throw new PeriodError(`--${option} "${text}": give a time (2026-12-07, 2026-12-07T08:00, today, yesterday), a span back from now (24h, 7d, PT6H) or all`);
    return p === 'all' ? null : p;
  };
  const sinceText = since ?? DEFAULT_SINCE;
  const from = point(sinceText, 'since');
  let to = until === null || until === undefined ? null : point(until, 'until');
  if ((until === null || until === undefined) && sinceText.trim().toLowerCase() === 'yesterday') to = dayStart(nowMs);
  if (from !== null && to !== null && to <= from) throw new PeriodError(`--until is not after --since`);
  return { since: from === null ? null : new Date(from).toISOString(), until: to === null ? null : new Date(to).toISOString() };
}
