// Outbound connections of a channel's fan-out (SMTPfeed §3.3): a connection whose host has nothing
// more to send is kept idle for reuse by later transactions and messages (SMTP_IDLE_TIMEOUT); when
// the channel is at its connection limit the least recently used idle one is closed to make room;
// connections are counted per key (the host and its shaping destination: fanout.ts) and in all.
// Every connection that leaves it closed is reported (onClosed), so that what holds a slot for it
// (a traffic-shaping lease) is given back whichever way it ends.
import type { SmtpSession } from './smtp-client.js';

export interface ConnectionStats {
  opened: number;
  reused: number;
  closedIdle: number;
  evicted: number;
}

interface Idle {
  session: SmtpSession;
  timer: NodeJS.Timeout;
}

export class ConnectionCache {
  readonly stats: ConnectionStats = { opened: 0, reused: 0, closedIdle: 0, evicted: 0 };
  /** Idle connections per key, most recently used last. */
  private readonly idle = new Map<string, Idle[]>();
  private idleCount = 0;
  /** Connections handed out (in a transaction or about to be), with their key. */
  private readonly busy = new Map<SmtpSession, string>();
  private opening = 0;
  private closed = false;

  constructor(
    private readonly limit: number,
    private readonly idleMs: number,
    private readonly onClosed: (session: SmtpSession) => void = () => {},
  ) {}

  /** A usable idle connection for `key`, taken out of the cache (idle ones found dead are closed); null when none. */
  takeIdle(key: string): SmtpSession | null {
    for (;;) {
      const list = this.idle.get(key);
      const e = list?.pop();
      if (!e) return null;
      if (list!.length === 0) this.idle.delete(key);
      this.idleCount--;
      clearTimeout(e.timer);
      if (e.session.usable && !this.closed) {
        this.busy.set(e.session, key);
        this.stats.reused++;
        return e.session;
      }
      this.end(e.session, 'close');
    }
  }

  hasIdle(key: string): boolean {
    return (this.idle.get(key)?.length ?? 0) > 0;
  }

  /** A new connection from `open`, idle ones closed first (least recently used) to stay within the limit. */
  async open(key: string, open: () => Promise<SmtpSession>): Promise<SmtpSession> {
    if (this.closed) throw new Error('connection cache closed');
    while (this.idleCount && this.busy.size + this.idleCount + this.opening >= this.limit) this.evictOldest();
    this.opening++;
    try {
      const session = await open();
      this.stats.opened++;
      if (this.closed) {
        this.end(session, 'quit');
        throw new Error('connection cache closed');
      }
      this.busy.set(session, key);
      return session;
    } finally {
      this.opening--;
    }
  }

  /** Back to the cache for reuse (or closed when it is no longer usable). */
  release(session: SmtpSession): void {
    const key = this.busy.get(session);
    if (key === undefined) return;
    this.busy.delete(session);
    if (!session.usable || this.closed) return this.end(session, 'quit');
    const timer = setTimeout(() => {
      if (this.removeIdle(key, session)) {
        this.stats.closedIdle++;
        this.end(session, 'quit');
      }
    }, this.idleMs);
    timer.unref();
    const list = this.idle.get(key) ?? [];
    list.push({ session, timer });
    this.idle.set(key, list);
    this.idleCount++;
  }

  /** Closes a connection in hand: it broke, or it has carried what it may. `quit` says goodbye first. */
  discard(session: SmtpSession, how: 'close' | 'quit' = 'close'): void {
    if (!this.busy.delete(session)) return;
    this.end(session, how);
  }

  /** Connections open or being opened, in use or idle. */
  get openCount(): number {
    return this.busy.size + this.idleCount + this.opening;
  }

  get idleConnections(): number {
    return this.idleCount;
  }

  get busyConnections(): number {
    return this.busy.size;
  }

  closeAll(): void {
    this.closed = true;
    for (const list of this.idle.values()) {
      for (const { session, timer } of list) {
        clearTimeout(timer);
        this.end(session, 'quit');
      }
    }
    this.idle.clear();
    this.idleCount = 0;
    for (const s of [...this.busy.keys()]) this.end(s, 'close');
    this.busy.clear();
  }

  private end(session: SmtpSession, how: 'close' | 'quit'): void {
    if (how === 'quit') session.quit();
    else session.close();
    this.onClosed(session);
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
    let oldest: SmtpSession | null = null;
    for (const [key, list] of this.idle) {
      // Each list is oldest first.
      const first = list[0];
      if (first && (!oldest || first.session.lastUsed < oldest.lastUsed)) {
        oldest = first.session;
        oldestKey = key;
      }
    }
    if (oldestKey === null || !oldest) return;
    this.removeIdle(oldestKey, oldest);
    this.stats.evicted++;
    this.end(oldest, 'quit');
  }
}
