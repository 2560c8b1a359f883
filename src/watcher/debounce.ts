// Turns a burst of events into one call: `fire` runs once the events have been quiet for
// `quietMs`, or at the latest `maxWaitMs` after the first event of the burst (so that a file
// rewritten without pause still gets reloaded).

export interface DebounceOptions {
  quietMs: number;
  maxWaitMs: number;
}

export class Debouncer {
  private timer: NodeJS.Timeout | null = null;
  private firstAt = 0;
  private events = 0;

  constructor(
    private readonly opts: DebounceOptions,
    private readonly fire: (events: number) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** An event arrived. */
  poke(): void {
    const now = this.now();
    if (this.events === 0) this.firstAt = now;
    this.events++;
    if (this.timer) clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(this.opts.quietMs, this.firstAt + this.opts.maxWaitMs - now));
    this.timer = setTimeout(() => this.fireNow(), wait);
  }

  /** A call is waiting for its quiet period. */
  get pending(): boolean {
    return this.timer !== null;
  }

  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.events = 0;
  }

  private fireNow(): void {
    const events = this.events;
    this.timer = null;
    this.events = 0;
    this.fire(events);
  }
}
