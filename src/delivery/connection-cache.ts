// Outbound connections of one channel job (SMTPfeed §3.3): a connection to a host is reused for
// later transactions and messages; when the job is at its connection limit the least recently
// used idle one is closed; idle ones are closed after a few seconds.
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
  private readonly idle = new Map<string, { session: SmtpSession; timer: NodeJS.Timeout }>();
  private readonly busy = new Set<SmtpSession>();
  private opening = 0;
  private closed = false;

  constructor(
    private readonly limit: number,
    private readonly idleMs: number,
  ) {}

  /** An idle connection to the target, or a new one from `open` (closing LRU idle ones to stay within the limit). */
  async acquire(target: Target, open: () => Promise<SmtpSession>): Promise<SmtpSession> {
    const cached = this.idle.get(target.key);
    if (cached) {
      this.idle.delete(target.key);
      clearTimeout(cached.timer);
      if (cached.session.usable) {
        this.busy.add(cached.session);
        this.stats.reused++;
        return cached.session;
      }
    }
    while (this.idle.size && this.busy.size + this.idle.size + this.opening >= this.limit) this.evictOldest();
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
    const other = this.idle.get(key);
    if (other) {
      clearTimeout(other.timer);
      other.session.quit();
    }
    const timer = setTimeout(() => {
      if (this.idle.get(key)?.session === session) this.idle.delete(key);
      this.stats.closedIdle++;
      session.quit();
    }, this.idleMs);
    timer.unref();
    this.idle.set(key, { session, timer });
  }

  /** Forget a connection that broke. */
  discard(session: SmtpSession): void {
    this.busy.delete(session);
    session.close();
  }

  get openCount(): number {
    return this.busy.size + this.idle.size;
  }

  closeAll(): void {
    this.closed = true;
    for (const { session, timer } of this.idle.values()) {
      clearTimeout(timer);
      session.quit();
    }
    this.idle.clear();
    for (const s of this.busy) s.close();
    this.busy.clear();
  }

  private evictOldest(): void {
    let oldestKey: string | null = null;
    let oldest = Infinity;
    for (const [key, { session }] of this.idle) {
      if (session.lastUsed < oldest) {
        oldest = session.lastUsed;
        oldestKey = key;
      }
    }
    if (oldestKey === null) return;
    const e = this.idle.get(oldestKey)!;
    this.idle.delete(oldestKey);
    clearTimeout(e.timer);
    this.stats.evicted++;
    e.session.quit();
  }
}
