// Queue file names, Messaging Server style (reference §4): two characters of attempt count in
// "complemented base 36" (ZZ = new, ZY = one failed attempt … 00 = 1295 or more), the message id,
// then `.00` (scheduled) or `.HELD` (held, never scheduled).
import { basename, relative, sep } from 'node:path';
import type { Envelope } from './types.js';

const DIGITS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const MAX_ENCODED_ATTEMPTS = 36 * 36 - 1;

const SCHEDULED_SUFFIX = '.00';
export const HELD_SUFFIX = '.HELD';

/** `0` → `ZZ`, `1` → `ZY`, `36` → `YZ`; counts beyond 1295 stay at `00` (the envelope keeps the exact count). */
export function encodeAttempts(attempts: number): string {
  const n = Math.max(0, Math.min(MAX_ENCODED_ATTEMPTS, Math.floor(attempts)));
  const c = MAX_ENCODED_ATTEMPTS - n;
  return DIGITS[Math.floor(c / 36)]! + DIGITS[c % 36]!;
}

export function decodeAttempts(prefix: string): number | null {
  if (prefix.length !== 2) return null;
  const hi = DIGITS.indexOf(prefix[0]!);
  const lo = DIGITS.indexOf(prefix[1]!);
  if (hi < 0 || lo < 0) return null;
  return MAX_ENCODED_ATTEMPTS - (hi * 36 + lo);
}

export function queueFileName(id: string, attempts: number, held: boolean): string {
  return encodeAttempts(attempts) + id + (held ? HELD_SUFFIX : SCHEDULED_SUFFIX);
}

export interface ParsedQueueFileName {
  id: string;
  attempts: number;
  held: boolean;
}

const NAME_RE = /^([0-9A-Z]{2})([0-9A-Z]{8,64})\.(00|HELD)$/;

/** null for anything that is not a queue file name. */
export function parseQueueFileName(name: string): ParsedQueueFileName | null {
  const m = NAME_RE.exec(name);
  if (!m) return null;
  return { attempts: decodeAttempts(m[1]!)!, id: m[2]!, held: m[3] === 'HELD' };
}

/** Names the scanner skips silently: temporary and hidden files. */
export function isTemporaryName(name: string): boolean {
  return name.startsWith('.') || name.startsWith('$');
}

/** `subdirs N` directory names: `000`, `001`, … */
export function subdirName(index: number): string {
  return String(index).padStart(3, '0');
}

export function isSubdirName(name: string): boolean {
  return /^[0-9]{3,}$/.test(name);
}

/** The subdirectory a message lives in: a stable hash of its id, so it never moves between them. */
export function subdirIndex(id: string, subdirs: number): number | null {
  if (!(subdirs > 0)) return null;
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % subdirs;
}

/**
 * The file name and directory win over the envelope's own id and channel (an operator may have
 * moved the file): the id from the name, the channel from the first directory under `queueDir`.
 */
export function identityFromPath(env: Envelope, path: string, queueDir: string | undefined): Envelope {
  const parsed = parseQueueFileName(basename(path));
  if (parsed) env.id = parsed.id;
  if (queueDir) {
    const rel = relative(queueDir, path);
    if (!rel.startsWith('..')) {
      const ch = rel.split(sep)[0];
      if (ch && ch !== basename(path)) env.channel = ch;
    }
  }
  return env;
}
