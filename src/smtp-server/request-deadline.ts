// Per-request deadlines of an inbound session (Postfix's smtpd_per_request_deadline with
// smtpd_min_data_rate). SMTP_TIMEOUT is an idle timeout that every octet resets, so a client
// trickling one octet a little more often than that would keep its session for ever. Here:
// - a command line must be complete within `requestMs` of its first octet;
// - a TLS handshake must be complete within `requestMs` of STARTTLS;
// - the DATA phase runs on a budget: it starts at `requestMs`, the time spent waiting for the
//   client is taken off it, and every octet received gives back 1/minDataRate s, but never
//   more than `requestMs` is held, so a client cannot bank time by sending fast first. A client
//   must keep sending at least `minDataRate` octets a second on average.
// Pure: the caller passes the time in (a monotonic clock in ms) and owns the timer.

export interface DeadlineLimits {
  /** Milliseconds a request may take (SMTP_COMMAND_DEADLINE); 0 = no deadline (SMTP_TIMEOUT alone). */
  requestMs: number;
  /** Octets per second the DATA phase must keep up (SMTP_MIN_DATA_RATE); ≥ 1. */
  minDataRate: number;
}

const LF = 0x0a;

export class RequestDeadline {
  /** When the first octet of the unfinished command line (or the handshake) came; null = nothing owed. */
  private requestStartedAt: number | null = null;
  /** The DATA budget (ms left at `at`), while the message is being received. */
  private data: { budgetMs: number; at: number } | null = null;

  constructor(private readonly limits: DeadlineLimits) {}

  get enabled(): boolean {
    return this.limits.requestMs > 0;
  }

  /** Octets from the client, as they arrive. */
  received(now: number, chunk: Uint8Array): void {
    if (!this.enabled || chunk.length === 0) return;
    if (this.data) {
      const left = this.data.budgetMs - (now - this.data.at);
      this.data = { budgetMs: Math.min(this.limits.requestMs, left + (chunk.length * 1000) / Math.max(1, this.limits.minDataRate)), at: now };
      return;
    }
    const lastLineEnd = chunk.lastIndexOf(LF);
    if (lastLineEnd < 0) this.requestStartedAt ??= now;
    else this.requestStartedAt = lastLineEnd === chunk.length - 1 ? null : now;
  }

  /** The server answered DATA with 354: the message phase begins. */
  dataStarted(now: number): void {
    this.requestStartedAt = null;
    this.data = { budgetMs: this.limits.requestMs, at: now };
  }

  /** The final dot was read; `rest` is what came after it in the same read (pipelined commands). */
  dataEnded(now: number, rest: Uint8Array): void {
    this.data = null;
    this.requestStartedAt = null;
    this.received(now, rest);
  }

  /** STARTTLS was accepted: the handshake must be done within the deadline. */
  handshakeStarted(now: number): void {
    this.data = null;
    this.requestStartedAt = now;
  }

  /** The TLS session is up; nothing is owed until the client's next command. */
  handshakeEnded(): void {
    this.requestStartedAt = null;
  }

  /** The server, not the client, held things up (a reply not yet sent, input not yet read): the clock starts again. */
  restart(now: number): void {
    if (this.requestStartedAt !== null) this.requestStartedAt = now;
    if (this.data) this.data = { budgetMs: this.limits.requestMs, at: now };
  }

  /** When the request in progress runs out of time; null while the client owes nothing. */
  deadline(): number | null {
    if (!this.enabled) return null;
    if (this.data) return this.data.at + this.data.budgetMs;
    if (this.requestStartedAt !== null) return this.requestStartedAt + this.limits.requestMs;
    return null;
  }

  expired(now: number): boolean {
    const at = this.deadline();
    return at !== null && now >= at;
  }
}
