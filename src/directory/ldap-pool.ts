// A pool of LDAP connections (ldapts clients) that never makes a caller wait longer than the
// timeout: each connection is opened and bound on first need, to the first server of the list
// that answers; an operation past its deadline, or on a connection the server closed, drops
// that connection and fails with LdapUnavailableError; after a failed attempt to connect (every
// server down) no attempt is made before a delay that doubles up to a maximum, and meanwhile
// callers fail at once instead of queueing behind a dead server. A server that comes back is
// used again at the next attempt, without a restart. LDAP answers several requests at once on
// one connection, so searches share connections (least busy first); `exclusive` pools (binds
// as users, which change who the connection is) run one operation per connection at a time.
import type { ConnectionOptions } from 'node:tls';
import { Client, ResultCodeError } from 'ldapts';

/** The directory cannot be reached in time: a temporary failure for the caller (4xx), never "no such user". */
export class LdapUnavailableError extends Error {
  override readonly name = 'LdapUnavailableError';
}

export interface LdapCredentials {
  dn: string;
  password: string;
}

export type LdapPoolEvent =
  | { type: 'connected'; server: string }
  | { type: 'connect-failed'; server: string; error: string }
  | { type: 'lost'; server: string; error: string }
  | { type: 'backoff'; delayMs: number };

export interface LdapPoolOptions {
  /** URLs (ldap://host:port, ldaps://host:port) in order of preference. */
  servers: readonly string[];
  size: number;
  /** Deadline of a connection attempt (TCP, TLS and bind) and of each operation. */
  timeoutMs: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  /** What each new connection binds as (null: anonymous); asked again for every connection, so a changed password file applies. May throw (the attempt then fails). */
  credentials(): Promise<LdapCredentials | null>;
  /** One operation at a time per connection. */
  exclusive?: boolean;
  tlsOptions?: ConnectionOptions;
  now?: () => number;
  /** Connections made, lost and refused, for the log (never a password). */
  onEvent?(event: LdapPoolEvent): void;
}

interface Slot {
  client: Client | null;
  server: string;
  connecting: Promise<Client> | null;
  inFlight: number;
}

export class LdapPool {
  private readonly slots: Slot[];
  private readonly now: () => number;
  private failures = 0;
  private retryAt = 0;
  private lastError = '';
  private closed = false;
  private readonly waiters: Array<() => void> = [];

  constructor(private readonly opts: LdapPoolOptions) {
    if (opts.servers.length === 0) throw new RangeError('LdapPool needs at least one server');
    this.slots = Array.from({ length: Math.max(1, opts.size) }, () => ({ client: null, server: '', connecting: null, inFlight: 0 }));
    this.now = opts.now ?? Date.now;
  }

  /** Connections open now. */
  get connected(): number {
    return this.slots.filter((s) => s.client?.isConnected).length;
  }

  /**
   * Runs `op` on a pooled connection within the timeout. An LDAP result (a ResultCodeError such as
   * invalid credentials or no such object) is the server's answer and passes through; anything
   * else (refused, reset, timed out, closed) drops the connection and becomes LdapUnavailableError.
   */
  async run<T>(op: (client: Client) => Promise<T>): Promise<T> {
    const slot = await this.acquire();
    const client = slot.client!;
    try {
      return await withDeadline(op(client), this.opts.timeoutMs, 'operation');
    } catch (err) {
      if (err instanceof ResultCodeError) throw err;
      this.drop(slot, client, describe(err));
      throw new LdapUnavailableError(`${slot.server}: ${describe(err)}`);
    } finally {
      slot.inFlight--;
      if (this.opts.exclusive) this.waiters.shift()?.();
    }
  }

  /** Closes every connection; later calls fail. */
  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w();
    await Promise.all(
      this.slots.map(async (s) => {
        const c = s.client;
        s.client = null;
        await c?.unbind().catch(() => {});
      }),
    );
  }

  /** A connected slot, its in-flight count already raised. */
  private async acquire(): Promise<Slot> {
    for (;;) {
      if (this.closed) throw new LdapUnavailableError('the LDAP connection pool is closed');
      for (const s of this.slots) if (s.client && !s.client.isConnected) this.drop(s, s.client, 'connection closed by the server');
      const open = this.slots.filter((s) => s.client !== null && !s.connecting);
      const free = this.opts.exclusive ? open.filter((s) => s.inFlight === 0) : open;
      if (free.length > 0) {
        // Reserved before returning: another caller resuming first must see it busy.
        const slot = free.reduce((a, b) => (b.inFlight < a.inFlight ? b : a));
        slot.inFlight++;
        return slot;
      }
      const idle = this.slots.find((s) => s.client === null && !s.connecting);
      if (idle && this.now() >= this.retryAt) {
        await this.awaitConnect(this.connect(idle));
        continue;
      }
      const connecting = this.slots.find((s) => s.connecting !== null);
      if (connecting) {
        await this.awaitConnect(connecting.connecting!);
        continue;
      }
      if (open.length > 0) {
        // Exclusive and every connection busy: wait for one (operations end within the timeout).
        await new Promise<void>((resolve) => this.waiters.push(resolve));
        continue;
      }
      throw new LdapUnavailableError(`no LDAP server could be reached (${this.lastError}); next attempt in ${Math.max(0, this.retryAt - this.now())} ms`);
    }
  }

  private async awaitConnect(p: Promise<Client>): Promise<void> {
    try {
      await p;
    } catch (err) {
      throw err instanceof LdapUnavailableError ? err : new LdapUnavailableError(describe(err));
    }
  }

  private connect(slot: Slot): Promise<Client> {
    const attempt = (async () => {
      let last = '';
      for (const server of this.opts.servers) {
        const client = new Client({ url: server, timeout: this.opts.timeoutMs, connectTimeout: this.opts.timeoutMs, strictDN: false, tlsOptions: this.opts.tlsOptions });
        try {
          const credentials = await this.opts.credentials();
          await withDeadline(credentials ? client.bind(credentials.dn, credentials.password) : client.bind('', ''), this.opts.timeoutMs, 'connection');
          if (this.closed) throw new Error('the LDAP connection pool is closed');
          this.failures = 0;
          this.retryAt = 0;
          slot.client = client;
          slot.server = server;
          this.opts.onEvent?.({ type: 'connected', server });
          return client;
        } catch (err) {
          last = `${server}: ${describe(err)}`;
          this.opts.onEvent?.({ type: 'connect-failed', server, error: describe(err) });
          void client.unbind().catch(() => {});
        }
      }
      this.failures++;
      const delayMs = Math.min(this.opts.reconnectMaxMs, this.opts.reconnectMinMs * 2 ** Math.min(this.failures - 1, 30));
      this.retryAt = this.now() + delayMs;
      this.lastError = last;
      this.opts.onEvent?.({ type: 'backoff', delayMs });
      throw new LdapUnavailableError(last);
    })();
    slot.connecting = attempt;
    const clear = () => {
      if (slot.connecting === attempt) slot.connecting = null;
    };
    attempt.then(clear, clear);
    return attempt;
  }

  private drop(slot: Slot, client: Client, why: string): void {
    if (slot.client !== client) return;
    slot.client = null;
    this.opts.onEvent?.({ type: 'lost', server: slot.server, error: why });
    void client.unbind().catch(() => {});
    if (this.opts.exclusive) this.waiters.shift()?.();
  }
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return (e.code && !String(e.message).includes(e.code) ? `${e.code} ` : '') + (e.message || String(err));
}

/** `p`, or a rejection after `ms` (the late result is ignored). */
function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`LDAP ${what} timed out after ${ms} ms`)), ms);
  });
  p.catch(() => {});
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
