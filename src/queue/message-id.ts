// Queue ids: unique across processes and restarts. Time (ms) + pid + a per-process counter +
// random, in upper-case base 36 so that they sort roughly by arrival and fit a file name.
import { randomInt } from 'node:crypto';

export interface IdGenerator {
  next(): string;
}

export function createIdGenerator(pid: number = process.pid): IdGenerator {
  let counter = randomInt(36 ** 4);
  let lastTime = 0;
  const pidPart = (pid % 36 ** 5).toString(36).padStart(5, '0');
  return {
    next() {
      // A clock that steps back must not repeat (time, counter) pairs: never go below the last time.
      const now = Math.max(Date.now(), lastTime);
      lastTime = now;
      counter = (counter + 1) % 36 ** 4;
      const id =
        now.toString(36).padStart(9, '0') +
        pidPart +
        counter.toString(36).padStart(4, '0') +
        randomInt(36 ** 3).toString(36).padStart(3, '0');
      return id.toUpperCase();
    },
  };
}

/**
 * The id of the `index`-th queue file of one message (one file per destination channel): the
 * message's id for the first, the id and two more characters for the others. The message's id
 * (the one in its Received: line) is so a prefix of every file's id, and `grep ID mail.log`
 * finds them all. Ids made by next() are all 21 characters long, so a longer one never meets one.
 */
export function fileId(messageId: string, index: number): string {
  return index === 0 ? messageId : messageId + index.toString(36).toUpperCase().padStart(2, '0');
}

export function isQueueId(text: string): boolean {
  return /^[0-9A-Z]{8,64}$/.test(text);
}

/** The creation time (ms) an id made here starts with, or null when the id does not carry one. */
export function queueIdTimeMs(id: string): number | null {
  const t = parseInt(id.slice(0, 9), 36);
  return Number.isFinite(t) && t > 1e12 && t < 1e13 ? t : null;
}

/** Oldest first: the creation time an id made here starts with; the file time otherwise (scans pick the oldest files by it). */
export function arrivalKey(e: { id: string; mtimeMs: number }): number {
  return queueIdTimeMs(e.id) ?? e.mtimeMs;
}
