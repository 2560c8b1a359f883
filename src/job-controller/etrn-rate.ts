// ETRN per client address: at most ETRN_RATE_LIMIT requests in any minute (the time unit of
// Postfix's anvil rate limits); one more gets 458 and changes nothing. Kept in the job controller,
// which every SMTP server process asks, so a client cannot spread its requests over processes.
// Pure: the caller gives the time. Bounded: the least recently seen clients are forgotten first.

const ETRN_RATE_WINDOW_MS = 60_000;
/** Clients remembered at most (a flood from many addresses cannot grow the map without bound). */
const MAX_CLIENTS = 10_000;

export class EtrnRateLimiter {
  /** Client → times of its requests inside the window, oldest first; Map order = least recently seen first. */
  private readonly seen = new Map<string, number[]>();

  constructor(
    private limit: number,
    private readonly windowMs = ETRN_RATE_WINDOW_MS,
  ) {}

  /** A new ETRN_RATE_LIMIT (0 = no limit). */
  configure(limit: number): void {
    this.limit = limit;
  }

  /** True when `client` may ETRN at `now`; the request is then counted. A refused one is not. */
  allow(client: string, now: number): boolean {
    if (this.limit <= 0) return true;
    const times = (this.seen.get(client) ?? []).filter((t) => now - t < this.windowMs);
    this.seen.delete(client);
    const allowed = times.length < this.limit;
    if (allowed) times.push(now);
    this.seen.set(client, times);
    if (this.seen.size > MAX_CLIENTS) this.seen.delete(this.seen.keys().next().value!);
    return allowed;
  }

  /** Clients remembered now (status, tests). */
  get size(): number {
    return this.seen.size;
  }
}
