// Retry schedule of a channel (`backoff "PT…" …`): the wait before the n-th retry. The last
// interval repeats forever. Without the keyword, Messaging Server's built-in normal-priority
// schedule applies: 60, 120, 120, 240, 240, 240, 480 minutes.

const MINUTE = 60_000;

export const DEFAULT_BACKOFF_MS: readonly number[] = [60, 120, 120, 240, 240, 240, 480].map((m) => m * MINUTE);

/** The schedule in force for a channel (its own when given and not empty). */
export function backoffSchedule(channelBackoffMs: readonly number[] | null | undefined): readonly number[] {
  return channelBackoffMs && channelBackoffMs.length > 0 ? channelBackoffMs : DEFAULT_BACKOFF_MS;
}

/**
 * How long to wait after the `failedAttempts`-th failed attempt (1 = the first failure) before
 * trying again: schedule[failedAttempts-1], the last entry once past the end.
 */
export function backoffDelayMs(schedule: readonly number[], failedAttempts: number): number {
  if (schedule.length === 0) return 0;
  const i = Math.min(Math.max(1, Math.floor(failedAttempts)), schedule.length) - 1;
  return Math.max(0, schedule[i]!);
}

/** When the next attempt is due after `failedAttempts` failures, counted from `now`. */
export function nextAttemptAt(now: Date, schedule: readonly number[], failedAttempts: number): Date {
  return new Date(now.getTime() + backoffDelayMs(schedule, failedAttempts));
}
