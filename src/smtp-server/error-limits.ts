// A session's error count, as Postfix's smtpd keeps it (smtpd_soft_error_limit,
// smtpd_hard_error_limit, smtpd_error_sleep_time, smtpd_junk_command_limit): every 4xx/5xx reply
// is an error; past the junk limit every NOOP, VRFY, ETRN or RSET is one too (a MAIL/RSET cycle
// that never sends a message). From the soft limit on, every command is answered only after a
// pause; at the hard limit the next command gets `421 4.7.0` and the connection is closed. A
// message accepted starts the count again. Pure: the connection applies the verdicts.

export interface ErrorLimits {
  /** Errors after which every reply waits `sleepMs` (SMTP_SOFT_ERROR_LIMIT); 0 = never. */
  soft: number;
  /** Errors after which the session is closed (SMTP_HARD_ERROR_LIMIT); 0 = never. */
  hard: number;
  /** The pause (SMTP_ERROR_SLEEP_TIME, ms). */
  sleepMs: number;
  /** Junk commands allowed before each counts as an error (SMTP_JUNK_COMMAND_LIMIT); 0 = no limit. */
  junkCommands: number;
}

/** Commands that do nothing for the mail (Postfix's junk commands). */
const JUNK_COMMANDS = new Set(['NOOP', 'VRFY', 'ETRN', 'RSET']);

export type CommandVerdict = { action: 'close' } | { action: 'run'; delayMs: number };

export class SessionErrors {
  errors = 0;
  junk = 0;

  constructor(private readonly limits: ErrorLimits) {}

  /** A command (its verb, upper case) is about to be handled. */
  beforeCommand(verb: string): CommandVerdict {
    if (this.limits.hard > 0 && this.errors >= this.limits.hard) return { action: 'close' };
    if (JUNK_COMMANDS.has(verb) && ++this.junk > this.limits.junkCommands && this.limits.junkCommands > 0) this.errors++;
    return { action: 'run', delayMs: this.limits.soft > 0 && this.errors >= this.limits.soft ? this.limits.sleepMs : 0 };
  }

  /** A reply went out. */
  replied(code: number): void {
    if (code >= 400 && code <= 599) this.errors++;
  }

  /** A message was accepted: the client is doing what it came for. */
  messageAccepted(): void {
    this.errors = 0;
    this.junk = 0;
  }
}
