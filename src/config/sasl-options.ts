// The option.dat keys that slow down and stop password guessing over SMTP AUTH, with their
// defaults: failed AUTH is counted per client address and per login name over a sliding window
// (as Postfix's anvil counts per client and Dovecot's auth penalty per address), every failure
// is answered after a pause (Dovecot's auth_failure_delay), and past a limit AUTH gets a longer
// pause then 421. tsubame's names (Messaging Server has only the per-session
// disconnectbadauthlimit channel keyword); option-dat.ts checks them with file:line.
import type { OptionEntry, OptionReader } from './option-file.js';
import type { SaslOptions } from './types.js';

const SASL_DEFAULTS = {
  SASL_FAILURES_PER_ADDRESS: 10,
  SASL_FAILURES_PER_USER: 30,
  /** Seconds. */
  SASL_FAILURE_WINDOW: 600,
  /** Seconds; Dovecot's auth_failure_delay. */
  SASL_FAILURE_DELAY: 2,
  /** Seconds. */
  SASL_PENALTY_DELAY: 5,
} as const;

export const SASL_OPTION_KEYS = Object.keys(SASL_DEFAULTS);

/** The delays are bounded so that a client cannot be held past the session's own timeouts. */
const MAX_DELAY_SECONDS = 60;
const MAX_WINDOW_SECONDS = 86400;

export function parseSaslOptions(o: Map<string, OptionEntry>, reader: OptionReader): SaslOptions {
  const seconds = (key: 'SASL_FAILURE_WINDOW' | 'SASL_FAILURE_DELAY' | 'SASL_PENALTY_DELAY', max: number, min = 0): number => {
    const e = o.get(key);
    if (!e) return SASL_DEFAULTS[key] * 1000;
    const v = Number(e.value.trim());
    if (e.value.trim() === '' || !(v >= min) || !(v <= max)) {
      reader.error(e, `${key} must be a number of seconds from ${min} to ${max}, found "${e.value}"`);
      return SASL_DEFAULTS[key] * 1000;
    }
    return Math.round(v * 1000);
  };
  return {
    failuresPerAddress: reader.integer(o.get('SASL_FAILURES_PER_ADDRESS'), SASL_DEFAULTS.SASL_FAILURES_PER_ADDRESS, 0, 1_000_000),
    failuresPerUser: reader.integer(o.get('SASL_FAILURES_PER_USER'), SASL_DEFAULTS.SASL_FAILURES_PER_USER, 0, 1_000_000),
    windowMs: seconds('SASL_FAILURE_WINDOW', MAX_WINDOW_SECONDS, 1),
    failureDelayMs: seconds('SASL_FAILURE_DELAY', MAX_DELAY_SECONDS),
    penaltyDelayMs: seconds('SASL_PENALTY_DELAY', MAX_DELAY_SECONDS),
  };
}

/** The defaults, for configurations built by hand (tests) that have no `sasl`. */
export function defaultSaslOptions(): SaslOptions {
  return {
    failuresPerAddress: SASL_DEFAULTS.SASL_FAILURES_PER_ADDRESS,
    failuresPerUser: SASL_DEFAULTS.SASL_FAILURES_PER_USER,
    windowMs: SASL_DEFAULTS.SASL_FAILURE_WINDOW * 1000,
    failureDelayMs: SASL_DEFAULTS.SASL_FAILURE_DELAY * 1000,
    penaltyDelayMs: SASL_DEFAULTS.SASL_PENALTY_DELAY * 1000,
  };
}
