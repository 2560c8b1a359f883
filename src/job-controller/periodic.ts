// Channels marked `periodic` get no on-demand delivery: their new mail waits for the next
// periodic run, as Messaging Server's periodic jobs do. Runs are aligned to the clock (every
// PERIODIC_INTERVAL from the epoch), so all of a channel's waiting mail goes out together in one
// job. A flush (`imsimta flush`, ETRN) still makes it due at once.

/** The first periodic run strictly after `nowMs`. */
export function nextPeriodicRunMs(nowMs: number, intervalSec: number): number {
  const interval = Math.max(1, intervalSec) * 1000;
  return (Math.floor(nowMs / interval) + 1) * interval;
}
