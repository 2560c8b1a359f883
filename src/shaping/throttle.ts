// Which SMTP replies tell a sender to slow down (pure): every 421 (the server closes the
// connection: RFC 5321 §3.8 "service not available", what Gmail, Yahoo and Outlook send to a
// sender going too fast), and a 4xx whose text matches the destination's THROTTLE_PATTERN
// ("too many connections", "rate limit", "try again later" …) unless it matches THROTTLE_IGNORE
// (greylisting, "too many recipients"). 5xx and 2xx never throttle.

export interface ThrottleRules {
  /** null: only 421 throttles. */
  pattern: RegExp | null;
  /** null: nothing is ignored. */
  ignore: RegExp | null;
}

/** The rules of a pattern pair as etc/shaping.cnf writes them (case-blind; an empty one is none). */
export function throttleRules(pattern: string, ignore: string): ThrottleRules {
  return { pattern: pattern.trim() ? new RegExp(pattern, 'i') : null, ignore: ignore.trim() ? new RegExp(ignore, 'i') : null };
}

/** Whether a reply (its code and its text, with or without the code in front) asks to slow down. */
export function isThrottleReply(code: number, text: string, rules: ThrottleRules): boolean {
  if (code < 400 || code > 499) return false;
  if (rules.ignore?.test(text)) return false;
  if (code === 421) return true;
  return rules.pattern?.test(text) ?? false;
}
