// Progress of a long operator command on a terminal: one line on stderr, redrawn in place at most
// five times a second and erased when the work is done, so that the output proper is left as it
// would be without it. Quiet when stderr is not a terminal, and when stdout goes into a pipe
// (`imsimta qm directory | less`: the line would land in the pager's screen); a redirection to a
// file still shows it. formatProgress is pure.
import { fstatSync } from 'node:fs';

export interface Progress {
  /** `done` units of work so far (of `total` when known). Cheap: call it for every unit. */
  update(done: number, total?: number): void;
  /** Erases the line (nothing when none was drawn). */
  end(): void;
}

const NO_PROGRESS: Progress = { update() {}, end() {} };

const REDRAW_MS = 200;

/** `reading mail.log: 42% (71.3 of 170 MB)`, `scanning the queue: 12,345 messages`. */
export function formatProgress(label: string, done: number, total: number | undefined, unit: ProgressUnit): string {
  const amount = (n: number) => (unit === 'bytes' ? megabytes(n) : n.toLocaleString('en-US'));
  if (total !== undefined && total > 0) {
    const percent = Math.min(100, Math.floor((done / total) * 100));
    return `${label}: ${percent}% (${amount(done)} of ${amount(total)}${unit === 'bytes' ? ' MB' : ` ${unit}`})`;
  }
  return `${label}: ${amount(done)}${unit === 'bytes' ? ' MB' : ` ${unit}`}`;
}

/** 'bytes' (shown in MB), or the name of what is counted ('messages'). */
export type ProgressUnit = string;

function megabytes(n: number): string {
  const mb = n / 1e6;
  return mb >= 100 ? mb.toFixed(0) : mb.toFixed(1);
}

/** Whether a progress line should be drawn: stderr a terminal, stdout not a pipe. */
export function progressWanted(stderr: { isTTY?: boolean } = process.stderr, stdoutFd = 1): boolean {
  if (!stderr.isTTY) return false;
  try {
    return !fstatSync(stdoutFd).isFIFO();
  } catch {
    return false;
  }
}

/** A progress line on stderr when progressWanted(), NO_PROGRESS otherwise. */
export function terminalProgress(label: string, unit: ProgressUnit, opts: { now?: () => number; write?: (text: string) => void; wanted?: boolean } = {}): Progress {
  if (!(opts.wanted ?? progressWanted())) return NO_PROGRESS;
  const write = opts.write ?? ((text: string) => void process.stderr.write(text));
  const now = opts.now ?? Date.now;
  let last = -Infinity;
  let drawn = false;
  let calls = 0;
  return {
    update(done, total) {
      // Looking at the clock on every call would cost more than some units of work.
      if (drawn && ++calls % 64 !== 0) return;
      const t = now();
      if (t - last < REDRAW_MS) return;
      last = t;
      drawn = true;
      write(`\r${formatProgress(label, done, total, unit)}\x1b[K`);
    },
    end() {
      if (drawn) write('\r\x1b[K');
      drawn = false;
    },
  };
}
