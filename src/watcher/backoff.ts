// How long the watcher waits before restarting a part that died: 0.5 s, doubling while it
// keeps dying, at most 30 s; back to 0.5 s once it had stayed up for a minute.

const RESTART_DELAY_MIN_MS = 500;
const RESTART_DELAY_MAX_MS = 30_000;
const STABLE_AFTER_MS = 60_000;

/** `previousDelayMs` is the delay used before the run that just ended (0 = none yet). */
export function nextRestartDelay(previousDelayMs: number, upForMs: number): number {
  if (previousDelayMs <= 0 || upForMs >= STABLE_AFTER_MS) return RESTART_DELAY_MIN_MS;
  return Math.min(RESTART_DELAY_MAX_MS, previousDelayMs * 2);
}
