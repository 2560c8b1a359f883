// The files of log/: which are live (written now), which are rotated copies, the renames of a
// size-based rotation and the choice of what `imsimta purge` removes. Pure functions; the
// callers do the I/O.

/** A live log: `mail.log`, `watcher.log`, `tcp_smtp_server.log` … */
const LIVE = /^[A-Za-z0-9_.-]+\.log$/;

/**
 * A rotated copy of a live log, as logrotate or tsubame names them: `mail.log.1`,
 * `mail.log.2.gz`, `mail.log-20261130`, `mail.log-20261130-1764460800`, `job.log-2026113012.xz`.
 */
const ROTATED = /^([A-Za-z0-9_.-]+?\.log)(?:\.(\d+)|-(\d{8}(?:[-_T]?\d+)?))(?:\.(?:gz|bz2|xz|zst|lz4|Z))?$/;

/** Logs whose writers cannot reopen them (the console output the processes inherited). */
const NOT_ROTATED_BY_SIZE = new Set(['console.log']);

export function isLiveLog(name: string): boolean {
  return LIVE.test(name) && !ROTATED.test(name);
}

export function isRotatedLog(name: string): boolean {
  return ROTATED.test(name);
}

export interface LogFileEntry {
  name: string;
  size: number;
  mtimeMs: number;
}

/** The live logs over `maxSize` bytes, to rotate now. `maxSize` null or 0: rotation is off. */
export function logsToRotate(entries: readonly LogFileEntry[], maxSize: number | null): string[] {
  if (!maxSize || maxSize <= 0) return [];
  return entries
    .filter((e) => isLiveLog(e.name) && !NOT_ROTATED_BY_SIZE.has(e.name) && e.size > maxSize)
    .map((e) => e.name)
    .sort();
}

/**
 * The renames that rotate `live` the logrotate way, oldest first so that nothing is
 * overwritten: `live.N` → `live.N+1` … `live.1` → `live.2`, then `live` → `live.1`.
 * `existing` are the names in the directory now.
 */
export function rotationRenames(live: string, existing: readonly string[]): Array<{ from: string; to: string }> {
  const numbers = new Set<number>();
  for (const name of existing) {
    const m = ROTATED.exec(name);
    if (m?.[1] === live && m[2] !== undefined && name === `${live}.${m[2]}`) numbers.add(Number(m[2]));
  }
  // Only the unbroken run from .1 moves; a gap leaves older copies where they are.
  let top = 0;
  while (numbers.has(top + 1)) top++;
  const renames: Array<{ from: string; to: string }> = [];
  for (let n = top; n >= 1; n--) renames.push({ from: `${live}.${n}`, to: `${live}.${n + 1}` });
  renames.push({ from: live, to: `${live}.1` });
  return renames;
}

const DAY_MS = 86_400_000;

/** Rotated logs last written more than `days` days before `nowMs`; live logs never. */
export function logsToPurge(entries: readonly LogFileEntry[], nowMs: number, days: number): string[] {
  const cutoff = nowMs - days * DAY_MS;
  return entries
    .filter((e) => isRotatedLog(e.name) && e.mtimeMs < cutoff)
    .map((e) => e.name)
    .sort();
}

/** LOG_MAX_SIZE / LOG_KEEP_DAYS of option.dat: a whole number ≥ 0, else null (with the reason). */
export function parseLogNumber(key: string, value: string | undefined): { value: number | null; problem: string | null } {
  if (value === undefined || value.trim() === '') return { value: null, problem: null };
  const text = value.trim();
  if (!/^\d+$/.test(text)) return { value: null, problem: `${key} must be a whole number ≥ 0, found "${value}"` };
  return { value: Number(text), problem: null };
}
