// Outbound connections of one channel job (SMTPfeed §3.3): a connection to a host is reused for
// later transactions and messages; when the job is at its connection limit the least recently
// used idle one is closed; idle ones are closed after a few seconds. Several jobs of a worker
// thread share the cache, so a host may have several idle connections (one per job that used it).
import type { Target } from './mx.js';
import type { SmtpSession } from './smtp-client.js';

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
    while (this.idleCount && this.busy.size + this.idleCount + this.opening >= this.limit) this.evictOldest();
    this.opening++;
    try {
      const session = await open();
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
    this.busy.delete(session);
    if (!session.usable || this.closed) return session.quit();
    const key = session.target.key;
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
