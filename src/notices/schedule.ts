// Notice ages of a channel (`notices a b c …`): a delay warning at each age but the last, the
// message returned to its sender at the last. Default 3 6 9 12 days (reference §3.4, §6).

const DAY = 24 * 3600_000;

export const DEFAULT_NOTICES_MS: readonly number[] = [3, 6, 9, 12].map((d) => d * DAY);

/** The channel's own ages, else the `l` channel's, else the default. */
export function noticesSchedule(channelNoticesMs: readonly number[] | null | undefined, localChannelNoticesMs?: readonly number[] | null): readonly number[] {
  if (channelNoticesMs && channelNoticesMs.length > 0) return channelNoticesMs;
  if (localChannelNoticesMs && localChannelNoticesMs.length > 0) return localChannelNoticesMs;
  return DEFAULT_NOTICES_MS;
}

export type NoticeDue =
  | { kind: 'none' }
  /** Send the delay warning for this many passed ages (1 = the first); `warnings` sent so far are below it. */
  | { kind: 'warn'; warnings: number }
  /** The last age is passed: return the message to its sender. */
  | { kind: 'return' };

/**
 * What is due for a message of age `ageMs` whose recipient already had `warningsSent` warnings.
 * Several ages passed at once (a long outage) give one warning, not a burst.
 */
export function noticeDue(notices: readonly number[], ageMs: number, warningsSent: number): NoticeDue {
  if (notices.length === 0) return { kind: 'none' };
  if (ageMs >= notices[notices.length - 1]!) return { kind: 'return' };
  let passed = 0;
  for (let i = 0; i < notices.length - 1; i++) if (ageMs >= notices[i]!) passed = i + 1;
  return passed > warningsSent ? { kind: 'warn', warnings: passed } : { kind: 'none' };
}

/** When the message will be returned (for Will-Retry-Until in warnings). */
export function returnTime(arrival: Date, notices: readonly number[]): Date {
  return new Date(arrival.getTime() + (notices[notices.length - 1] ?? 0));
}
