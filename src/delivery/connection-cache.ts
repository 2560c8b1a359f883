// Outbound connections of one channel job (SMTPfeed §3.3): a connection to a host is reused for
// later transactions and messages; when the job is at its connection limit the least recently
// used idle one is closed; idle ones are closed after a few seconds. Several jobs of a worker
// thread share the cache, so a host may have several idle connections (one per job that used it).
// A host that is slow to get ready (a late greeting, say) is not given a second connection when its
// busy one will be free sooner: a job waits for it, at most as long as the last new connection to
// that host took to be ready.
import type { Target } from './mx.js';
import type { SmtpSession } from './smtp-client.js';

/** Below this, a new connection is as quick as waiting for a busy one. */
const SLOW_SETUP_MS = 50;

export interface ConnectionStats {
  opened: number;
  reused: number;
  closedIdle: number;
  evicted: number;
}

export class ConnectionCache {
  readonly stats: ConnectionStats = { opened: 0, reused: 0, closedIdle: 0, evicted: 0 };
  /** Idle connections per host, most recently used last. */
  private readonly idle = new Map<string, Array<{ session: SmtpSession; timer: NodeJS.Timeout }>>();
  private idleCount = 0;
  private readonly busy = new Set<SmtpSession>();
  private opening = 0;
  private closed = false;
  /** How long the last new connection to each host took to be ready (connect, greeting, EHLO…). */
  private readonly setupMs = new Map<string, number>();
  /** Jobs waiting for a busy connection to a host to be released, first come first served. */
  private readonly waiters = new Map<string, Array<(session: SmtpSession | null) => void>>();

  constructor(
    private readonly limit: number,
    private readonly idleMs: number,
  ) {}

  /** An idle connection to the target, or a new one from `open` (closing LRU idle ones to stay within the limit). */
  async acquire(target: Target, open: () => Promise<SmtpSession>): Promise<SmtpSession> {
    for (let cached = this.takeIdle(target.key); cached; cached = this.takeIdle(target.key)) {
      if (cached.usable) {
        this.busy.add(cached);
        this.stats.reused++;
        return cached;
      }
      cached.close();
    }
    const handedOver = await this.waitForBusy(target.key);
    if (handedOver) {
      this.stats.reused++;
      return handedOver;
    }
    while (this.idleCount && this.busy.size + this.idleCount + this.opening >= this.limit) this.evictOldest();
    this.opening++;
    try {
      const started = Date.now();
      const session = await open();
      this.setupMs.set(target.key, Date.now() - started);
      this.stats.opened++;
      if (this.closed) {
        session.quit();
        throw new Error('connection cache closed');
      }
      this.busy.add(session);
      return session;
    } finally {
      this.opening--;
    }
  }

  /** Back to the cache for reuse (or closed when it is no longer usable). */
  release(session: SmtpSession): void {
    const key = session.target.key;
    const waiter = session.usable && !this.closed ? this.takeWaiter(key) : null;
    if (waiter) return waiter(session); // stays busy, now for the waiting job
    this.busy.delete(session);
    if (!session.usable || this.closed) return session.quit();
    const timer = setTimeout(() => {
      if (this.removeIdle(key, session)) {
        this.stats.closedIdle++;
        session.quit();
      }
    }, this.idleMs);
    timer.unref();
    const list = this.idle.get(key) ?? [];
    list.push({ session, timer });
    this.idle.set(key, list);
    this.idleCount++;
  }

  /** Forget a connection that broke. */
  discard(session: SmtpSession): void {
    this.busy.delete(session);
    session.close();
  }

  get openCount(): number {
    return this.busy.size + this.idleCount;
  }

  closeAll(): void {
    this.closed = true;
    for (const list of this.waiters.values()) for (const w of list.splice(0)) w(null);
    this.waiters.clear();
    for (const list of this.idle.values()) {
      for (const { session, timer } of list) {
        clearTimeout(timer);
        session.quit();
      }
    }
    this.idle.clear();
    this.idleCount = 0;
    for (const s of this.busy) s.close();
    this.busy.clear();
  }

  /**
   * A busy connection to the host, once released, when the host was slow to get ready last time
   * and one is busy now; null (open a new one) after waiting as long as that setup took.
   */
  private waitForBusy(key: string): Promise<SmtpSession | null> {
    const setup = this.setupMs.get(key) ?? 0;
    if (setup < SLOW_SETUP_MS || this.closed || !this.hasBusy(key)) return Promise.resolve(null);
    return new Promise((resolve) => {
      const list = this.waiters.get(key) ?? [];
      this.waiters.set(key, list);
      const waiter = (session: SmtpSession | null) => {
        clearTimeout(timer);
        resolve(session);
      };
      const timer = setTimeout(() => {
        const i = list.indexOf(waiter);
        if (i >= 0) list.splice(i, 1);
        if (list.length === 0 && this.waiters.get(key) === list) this.waiters.delete(key);
        resolve(null);
      }, setup);
      list.push(waiter);
    });
  }

  private takeWaiter(key: string): ((session: SmtpSession | null) => void) | null {
    const list = this.waiters.get(key);
    const waiter = list?.shift() ?? null;
    if (list?.length === 0) this.waiters.delete(key);
    return waiter;
  }

  private hasBusy(key: string): boolean {
    for (const s of this.busy) if (s.target.key === key) return true;
    return false;
  }

  /** The most recently used idle connection to the host, taken out of the cache. */
  private takeIdle(key: string): SmtpSession | null {
    const list = this.idle.get(key);
    const e = list?.pop();
    if (!e) return null;
    if (list!.length === 0) this.idle.delete(key);
    this.idleCount--;
    clearTimeout(e.timer);
    return e.session;
  }

  private removeIdle(key: string, session: SmtpSession): boolean {
    const list = this.idle.get(key);
    const i = list?.findIndex((e) => e.session === session) ?? -1;
    if (i < 0) return false;
    clearTimeout(list![i]!.timer);
    list!.splice(i, 1);
    if (list!.length === 0) this.idle.delete(key);
    this.idleCount--;
    return true;
  }

  private evictOldest(): void {
    let oldestKey: string | null = null;
    let oldestSession: SmtpSession | null = null;
    for (const [key, list] of this.idle) {
      // Each list is oldest first.
      const first = list[0];
      if (first && (!oldestSession || first.session.lastUsed < oldestSession.lastUsed)) {
        oldestSession = first.session;
        oldestKey = key;
      }
    }
    if (oldestKey === null || !oldestSession) return;
    this.removeIdle(oldestKey, oldestSession);
    this.stats.evicted++;
    oldestSession.quit();
  }
}
