// The hosts of one delivery run: MX fail-over and connection handling (what Postfix's
// smtp_connect.c does). Recipients are planned onto hosts (planner.ts); up to the channel's
// connection limit, hosts are served at once, each over one connection (from the connection
// cache) that runs its transactions one after another. A host that cannot be reached, or whose
// connection breaks mid-transaction, is given up for the recipients waiting on it, which are
// planned again onto their next MX (so a backup MX that is another domain's primary gets them
// piggybacked). When the batch's time is up, what is not decided is deferred and the
// connections in use are closed (a transaction cut off is not known to have happened).
import { abortStatus, type EngineContext } from './engine-context.js';
import type { Target } from './mx.js';
import { planDeliveries, type PlannedTransaction } from './planner.js';
import type { ReachabilityCache } from './reachability.js';
import type { RecipientBook, RunRecipient } from './recipients.js';
import { connectFailure } from './reply-policy.js';
import { ConnectError, openSession, type SmtpSession } from './smtp-client.js';
import { runTransaction } from './transaction.js';
import type { DeliveryItem } from './types.js';

/** The transactions waiting for one host. */
interface HostQueue {
  target: Target;
  transactions: PlannedTransaction[];
}

export class HostRun {
  /** Per host (target key): what is waiting for it. Planned again after every host failure. */
  private readonly queues = new Map<string, HostQueue>();
  /** Hosts being served now (each by one serveHost loop). */
  private readonly serving = new Set<string>();
  /** Connections the run holds now (closed when it is aborted). */
  private readonly inUse = new Set<SmtpSession>();
  private aborted = false;
  private readonly maxConnections: number;
  private readonly rcptPerTransaction: number;
  private readonly done: Promise<void>;
  private finish!: () => void;

  constructor(
    /** The recipients with targets, to be delivered by this run. */
    private readonly active: RunRecipient[],
    private readonly book: RecipientBook,
    private readonly items: DeliveryItem[],
    private readonly ctx: EngineContext,
  ) {
    this.maxConnections = Math.max(1, ctx.channel.maxClientConnections || 20);
    // `verp`: every recipient has an envelope sender of its own, so a transaction of its own.
    this.rcptPerTransaction = ctx.channel.copies === 'single' || ctx.channel.verp ? 1 : ctx.channel.rcptPerTransaction || 100;
    this.done = new Promise<void>((resolve) => (this.finish = resolve));
  }

  /** Resolves when every recipient is decided or waits for nothing more this run can do, or at the abort. */
  async run(): Promise<void> {
    const signal = this.ctx.signal;
    if (signal?.aborted) return this.abort();
    const onAbort = () => this.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      this.plan(this.active.map((r) => r.id));
      this.serveHosts();
      await this.done;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Plans `ids` and everything still waiting onto hosts; recipients with no host left are deferred. */
  private plan(ids: number[]): void {
    const all = [...ids];
    for (const q of this.queues.values()) for (const tx of q.transactions) all.push(...tx.recipients);
    this.queues.clear();
    const plan = planDeliveries({
      recipients: all.map((id) => {
        const r = this.book.get(id);
        return { id, message: r.message, targets: r.targets };
      }),
      unavailable: (target, id) => this.unavailable(target, this.book.get(id)),
      rcptPerTransaction: this.rcptPerTransaction,
      maxConnections: this.maxConnections,
    });
    for (const id of plan.exhausted) this.book.noHostLeft(this.book.get(id));
    for (const h of plan.hosts) this.queues.set(h.target.key, { target: h.target, transactions: h.transactions });
  }

  /** Tried already for this recipient, or known down (then that is its reason, unless it has one). */
  private unavailable(target: Target, r: RunRecipient): boolean {
    if (r.tried.has(target.key)) return true;
    const down = this.ctx.reachability.check(target.key);
    if (!down) return false;
    this.ctx.stats.skippedUnreachable++;
    this.book.skippedDown(r, target, down);
    return true;
  }

  /** Starts serving hosts with waiting transactions, up to the connection limit; the run is done when none is served. */
  private serveHosts(): void {
    if (this.aborted) return;
    for (const [key, q] of this.queues) {
      if (this.serving.size >= this.maxConnections) break;
      if (this.serving.has(key) || q.transactions.length === 0) continue;
      this.serving.add(key);
      void this.serveHost(key, q.target).catch(() => {
        /* serveHost handles its own failures */
      });
    }
    if (this.serving.size === 0) this.finish();
  }

  /** Runs the host's transactions over one connection, reconnecting when it becomes unusable. */
  private async serveHost(key: string, target: Target): Promise<void> {
    let session: SmtpSession | null = null;
    try {
      for (;;) {
        const q = this.queues.get(key);
        if (this.aborted || !q || q.transactions.length === 0) break;
        if (!session?.usable) {
          if (session) this.drop(session);
          session = null;
          try {
            session = await this.connect(target);
            if (this.aborted) break;
            this.inUse.add(session);
          } catch (err) {
            if (this.aborted) return;
            this.connectFailed(target, err);
            return;
          }
          continue; // the queue may have grown while connecting
        }
        const tx = q.transactions.shift()!;
        const { broken, brokenIds, overflow, refused } = await runTransaction(session, tx, this.items, this.book, this.ctx);
        // RFC 5321 §4.5.3.1.8: recipients refused for "too many recipients" go in the next transaction.
        if (overflow.length) (this.queues.get(key) ?? q).transactions.unshift({ message: tx.message, recipients: overflow });
        // What the TLS policy refused over this session tries its next MX, as after a host failure.
        const again: number[] = [];
        for (const r of refused) {
          this.book.hostFailed(r.ids, r.target, r.status, r.tls);
          again.push(...r.ids);
        }
        if (broken) {
          // The connection broke mid-transaction: these recipients try their next MX; the rest of this host's queue reconnects.
          const ids = brokenIds ?? tx.recipients;
          this.book.hostFailed(ids, target, broken);
          this.drop(session);
          session = null;
          again.push(...ids);
        }
        if (again.length) this.plan(again);
      }
    } finally {
      if (session) {
        this.inUse.delete(session);
        if (this.aborted) this.ctx.connections.discard(session);
        else this.ctx.connections.release(session);
      }
      this.serving.delete(key);
      this.serveHosts();
    }
  }

  private connect(target: Target): Promise<SmtpSession> {
    const { channel, connections, settings } = this.ctx;
    const attempt = connections.acquire(target, () =>
      openSession({
        target,
        localName: this.ctx.localName,
        lmtp: channel.lmtp,
        tls: channel.tlsClient,
        pipelining: channel.pipelining,
        settings,
        transcript: this.ctx.transcriptFor?.(target) ?? null,
        trust: this.ctx.tls.trust,
        auth: this.ctx.clientLogin ?? null,
      }),
    );
    return unlessMarkedDown(this.ctx.reachability, target.key, attempt, (late) => connections.release(late));
  }

  /** No connection: the host is marked down when unreachable, and given up for the recipients waiting on it. */
  private connectFailed(target: Target, err: unknown): void {
    this.ctx.stats.connectFailures++;
    const failure = connectFailure(err, target);
    if (failure.unreachable) this.ctx.reachability.markDown(target.key, failure.status, this.ctx.settings.hostRetryMs);
    const ids = this.queues.get(target.key)?.transactions.flatMap((t) => t.recipients) ?? [];
    this.queues.delete(target.key);
    this.book.hostFailed(ids, target, failure.status);
    this.plan(ids);
  }

  private drop(session: SmtpSession): void {
    this.inUse.delete(session);
    this.ctx.connections.discard(session);
  }

  /** Out of time: what is not decided yet is deferred with the reason, and the connections in use are closed. */
  private abort(): void {
    this.aborted = true;
    const status = abortStatus(this.ctx.signal!);
    for (const r of this.active) this.book.decide(r, 'deferred', status, r.lastHost);
    for (const s of this.inUse) this.ctx.connections.discard(s);
    this.inUse.clear();
    this.finish();
  }
}

/**
 * The connection, unless another job marks the host down first: then this attempt is given up
 * with that job's reason (and not marked again), so a silent host costs one timeout, not one per
 * job that started trying it meanwhile. A connection that still comes later goes to `late`.
 */
function unlessMarkedDown(reachability: ReachabilityCache, key: string, attempt: Promise<SmtpSession>, late: (session: SmtpSession) => void): Promise<SmtpSession> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const stopListening = reachability.whenDown(key, (down) => {
      settled = true;
      reject(new ConnectError('closed', down.reason, false));
    });
    attempt.then(
      (session) => {
        stopListening();
        if (settled) return late(session);
        settled = true;
        resolve(session);
      },
      (err: unknown) => {
        stopListening();
        if (settled) return;
        settled = true;
        reject(err);
      },
    );
  });
}
