// The SMTP/LMTP delivery engine of a channel job: for a batch of messages it resolves every
// destination in parallel, plans transactions by host (planner.ts), runs hosts in parallel with
// one connection each, fails over down the MX lists (re-planning so that backup MXs piggyback),
// and turns every reply into a per-recipient outcome. Before each transaction the message is
// checked for a loop (too many hops) and fitted to what the server offered (8BITMIME, SMTPUTF8).
import type { Readable } from 'node:stream';
import type { Channel } from '../config/types.js';
import type { DeliveryItem, MessageOutcome, RecipientOutcome, RecipientResult } from './types.js';
import { destinationOf, parseHostPort } from './address.js';
import type { ConnectionCache } from './connection-cache.js';
import { orderTargets, randomRank, shufflesEqualPreferences, targetKey, type ResolvedMx, type Target } from './mx.js';
import { planDeliveries, type PlannedTransaction } from './planner.js';
import type { ReachabilityCache } from './reachability.js';
import type { DeliveryResolver } from './resolver.js';
import type { DeliverySettings } from './settings.js';
import { ConnectError, openSession, type RcptDsn, type SendOutcome, type SessionLogger, type SmtpSession } from './smtp-client.js';
import { describeHost } from './status.js';
import { hasUtf8Address, needsContent, planContent, type ContentNeeds } from './eight-bit.js';
import { headerFacts, headerSectionOf, peekHeader, tooManyHops } from './loop-check.js';

export interface EngineContext {
  channel: Channel;
  /** EHLO name (option.dat LOCAL_HOST). */
  localName: string;
  /** More Received: lines than this: the message is looping and is returned (option.dat MAX_RECEIVED_LINES). */
  hopLimit: number;
  settings: DeliverySettings;
  resolver: DeliveryResolver;
  reachability: ReachabilityCache;
  connections: ConnectionCache;
  /** The queued message's bytes: a buffer (small messages, read at once) or a stream. */
  readMessage(path: string): Promise<NodeJS.ReadableStream | Buffer>;
  /** master_debug transcript, per host. */
  transcriptFor?: ((target: Target) => SessionLogger) | null;
  stats: EngineStats;
  random?: () => number;
  /** The batch's time is up: stop, close the connections in use, defer what is left with the reason. */
  signal?: AbortSignal;
}

export interface EngineStats {
  transactions: number;
  /** Connection attempts that failed (refused, timeout, greeting, TLS). */
  connectFailures: number;
  /** Host attempts skipped because the reachability cache said the host is down. */
  skippedUnreachable: number;
  /** Destinations (domains, literals, smart hosts) looked up. */
  lookups: number;
}

export function newEngineStats(): EngineStats {
  return { transactions: 0, connectFailures: 0, skippedUnreachable: 0, lookups: 0 };
}

interface Rcpt {
  id: number;
  message: number;
  address: string;
  rcptTo: string;
  dsn: RcptDsn;
  targets: Target[];
  tried: Set<string>;
  lastFailure: string | null;
  lastHost: string | null;
  outcome: RecipientOutcome | null;
  /** Another recipient of the same message with the same address: it gets that one's outcome. */
  sameAs: number | null;
  /** Times the recipient was put in a new transaction after a "too many recipients" 452. */
  overflows: number;
}

type Resolution = { ok: true; targets: Target[] | ((message: number) => Target[]) } | { ok: false; result: RecipientResult; status: string };

export async function deliverWithEngine(items: DeliveryItem[], ctx: EngineContext): Promise<MessageOutcome[]> {
  const { channel } = ctx;
  const port = channel.port ?? (channel.lmtp ? 24 : 25);
  const rank = randomRank(ctx.random);
  const rcpts: Rcpt[] = [];

  // 1. Recipients, one RCPT per distinct address of a message.
  items.forEach((item, message) => {
    const seen = new Map<string, number>();
    for (const r of item.envelope.recipients) {
      if (r.state !== 'pending') continue;
      const key = r.address.trim().toLowerCase();
      const id = rcpts.length;
      rcpts.push({
        id,
        message,
        address: r.address,
        rcptTo: r.address.trim(),
        dsn: { notify: r.notify, orcpt: r.orcpt },
        targets: [],
        tried: new Set(),
        lastFailure: null,
        lastHost: null,
        outcome: null,
        sameAs: seen.get(key) ?? null,
        overflows: 0,
      });
      if (!seen.has(key)) seen.set(key, id);
    }
  });
  const decide = (r: Rcpt, result: RecipientResult, status: string, remoteHost: string | null, tls?: string | null) => {
    if (!r.outcome) r.outcome = { address: r.address, result, status, remoteHost, ...(tls ? { tls } : {}) };
  };

  // 2. Destinations, all looked up at once (SMTPfeed §3.5).
  const resolutions = new Map<string, Promise<Resolution>>();
  const daemons = channel.daemon?.filter(Boolean) ?? [];
  const destinationKey = (r: Rcpt): string | Resolution => {
    if (daemons.length) return 'daemon';
    const d = destinationOf(r.rcptTo);
    if (d.kind === 'invalid') return { ok: false, result: 'failed', status: `553 5.1.3 bad destination address: ${d.reason}` };
    return d.kind === 'literal' ? `literal:${d.ip}` : `domain:${d.domain}`;
  };
  const resolve = (key: string): Promise<Resolution> => {
    ctx.stats.lookups++;
    if (key === 'daemon') return resolveSmartHosts(daemons, port, ctx, rank);
    if (key.startsWith('literal:')) {
      const ip = key.slice('literal:'.length);
      return Promise.resolve({ ok: true, targets: [{ key: targetKey(ip, port), ip, port, host: `[${ip}]`, preference: 0 }] });
    }
    return resolveDomain(key.slice('domain:'.length), port, ctx, rank);
  };
  const perRcpt = new Map<number, Promise<Resolution>>();
  for (const r of rcpts) {
    if (r.sameAs !== null) continue;
    const key = destinationKey(r);
    if (typeof key !== 'string') {
      perRcpt.set(r.id, Promise.resolve(key));
      continue;
    }
    let p = resolutions.get(key);
    if (!p) {
      p = resolve(key);
      resolutions.set(key, p);
    }
    perRcpt.set(r.id, p);
  }
  const active: Rcpt[] = [];
  const abandoned = abortedResolution(ctx.signal);
  for (const [id, p] of perRcpt) {
    const r = rcpts[id]!;
    const res = abandoned ? await Promise.race([p, abandoned]) : await p;
    if (!res.ok) {
      decide(r, res.result, res.status, null);
      continue;
    }
    r.targets = typeof res.targets === 'function' ? res.targets(r.message) : res.targets;
    active.push(r);
  }

  // 3. Plan, run hosts in parallel, re-plan after host failures.
  if (active.length) await runHosts(active, items, ctx, decide);

  // 4. Outcomes, per message, in envelope order.
  return items.map((item, message) => ({
    ref: item.ref,
    recipients: rcpts
      .filter((r) => r.message === message)
      .map((r) => {
        const source = r.sameAs !== null ? rcpts[r.sameAs]! : r;
        const o = source.outcome ?? { address: r.address, result: 'deferred' as const, status: '451 4.3.0 not attempted', remoteHost: null };
        return { ...o, address: r.address };
      }),
  }));
}

/** The reply for what a batch could not do before it was aborted. */
export function abortStatus(signal: AbortSignal): string {
  const reason = signal.reason instanceof Error ? signal.reason.message : typeof signal.reason === 'string' ? signal.reason : 'the delivery job was stopped';
  return /^\d{3} /.test(reason) ? reason : `451 4.3.0 ${reason}`;
}

/** Resolves (as a deferral) when the signal aborts, so that lookups still running are not waited for. */
function abortedResolution(signal: AbortSignal | undefined): Promise<Resolution> | null {
  if (!signal) return null;
  return new Promise((resolve) => {
    const fire = () => resolve({ ok: false, result: 'deferred', status: abortStatus(signal) });
    if (signal.aborted) fire();
    else signal.addEventListener('abort', fire, { once: true });
  });
}

async function resolveDomain(domain: string, port: number, ctx: EngineContext, rank: (k: string) => number): Promise<Resolution> {
  const { channel, resolver } = ctx;
  let hosts: ResolvedMx[];
  if (channel.mx === 'nomx') {
    const a = await resolver.resolveAddresses(domain);
    if (!a.ok) {
      return a.permanent
        ? { ok: false, result: 'failed', status: `550 5.1.2 Host or domain name not found: ${domain} (${a.reason})` }
        : { ok: false, result: 'deferred', status: `451 4.4.3 address lookup for ${domain} failed: ${a.reason}` };
    }
    hosts = [{ name: domain, preference: 0, addresses: a.addresses }];
  } else {
    const mx = await resolver.resolveMx(domain);
    if (!mx.ok) return { ok: false, result: mx.permanent ? 'failed' : 'deferred', status: mx.status };
    hosts = mx.hosts;
  }
  return { ok: true, targets: orderTargets(hosts, { shuffle: shufflesEqualPreferences(channel.mx), rank, port }) };
}

/** `daemon h1,h2`: every recipient to the smart hosts, in order; with randommx each message starts at a random one. */
async function resolveSmartHosts(daemons: string[], port: number, ctx: EngineContext, _rank: (k: string) => number): Promise<Resolution> {
  const entries = daemons.flatMap((d) => d.split(',')).map((d) => d.trim()).filter(Boolean);
  const resolved = await Promise.all(
    entries.map(async (entry, i) => {
      const { host, port: p } = parseHostPort(entry);
      const res = await ctx.resolver.resolveAddresses(host);
      return { host, port: p ?? port, preference: i, res };
    }),
  );
  const targets: Target[] = [];
  for (const h of resolved) {
    if (!h.res.ok) continue;
    for (const ip of h.res.addresses) targets.push({ key: targetKey(ip, h.port), ip, port: h.port, host: h.host, preference: h.preference });
  }
  if (!targets.length) {
    const reasons = resolved.map((h) => `${h.host}: ${h.res.ok ? 'ok' : h.res.reason}`).join('; ');
    // A smart host that does not resolve is a local configuration or DNS problem: keep the mail.
    return { ok: false, result: 'deferred', status: `451 4.4.3 smart host lookup failed (${reasons})` };
  }
  if (ctx.channel.mx !== 'randommx' || resolved.length < 2) return { ok: true, targets };
  const random = ctx.random ?? Math.random;
  const byMessage = new Map<number, Target[]>();
  return {
    ok: true,
    targets: (message: number) => {
      let t = byMessage.get(message);
      if (!t) {
        const hostsInOrder = [...new Set(targets.map((x) => x.preference))];
        const start = hostsInOrder[Math.floor(random() * hostsInOrder.length)]!;
        t = [...targets.filter((x) => x.preference >= start), ...targets.filter((x) => x.preference < start)];
        byMessage.set(message, t);
      }
      return t;
    },
  };
}

async function runHosts(
  active: Rcpt[],
  items: DeliveryItem[],
  ctx: EngineContext,
  decide: (r: Rcpt, result: RecipientResult, status: string, remoteHost: string | null) => void,
): Promise<void> {
  const { channel, reachability, connections, settings } = ctx;
  const byId = new Map(active.map((r) => [r.id, r]));
  const queues = new Map<string, { target: Target; txs: PlannedTransaction[] }>();
  const running = new Set<string>();
  /** Connections this batch holds now (closed when it is aborted). */
  const inUse = new Set<SmtpSession>();
  let aborted = false;
  const limit = Math.max(1, channel.maxClientConnections || 20);
  const rcptPerTransaction = channel.copies === 'single' ? 1 : channel.rcptPerTransaction || 100;
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));

  const replan = (ids: number[]) => {
    const all = [...ids];
    for (const q of queues.values()) for (const tx of q.txs) all.push(...tx.recipients);
    queues.clear();
    const plan = planDeliveries({
      recipients: all.map((id) => ({ id, message: byId.get(id)!.message, targets: byId.get(id)!.targets })),
      unavailable: (t, id) => {
        const r = byId.get(id)!;
        if (r.tried.has(t.key)) return true;
        const down = reachability.check(t.key);
        if (down) {
          ctx.stats.skippedUnreachable++;
          if (!r.lastFailure) {
            r.lastFailure = `${down.reason} (host not tried again until ${new Date(down.until).toISOString()})`;
            r.lastHost = describeHost(t);
          }
          return true;
        }
        return false;
      },
      rcptPerTransaction,
      maxConnections: limit,
    });
    for (const id of plan.exhausted) {
      const r = byId.get(id)!;
      decide(r, 'deferred', r.lastFailure ?? '451 4.4.1 no reachable host', r.lastHost);
    }
    for (const h of plan.hosts) queues.set(h.target.key, { target: h.target, txs: h.transactions });
  };

  const pump = () => {
    if (aborted) return;
    for (const [key, q] of queues) {
      if (running.size >= limit) break;
      if (running.has(key) || q.txs.length === 0) continue;
      running.add(key);
      void worker(key, q.target).catch(() => {
        /* worker handles its own failures */
      });
    }
    if (running.size === 0) finish();
  };

  const failHost = (key: string, target: Target, status: string, extra: number[]) => {
    const ids = [...extra, ...(queues.get(key)?.txs.flatMap((t) => t.recipients) ?? [])];
    queues.delete(key);
    for (const id of ids) {
      const r = byId.get(id)!;
      r.tried.add(key);
      r.lastFailure = status;
      r.lastHost = describeHost(target);
    }
    replan(ids);
  };

  const worker = async (key: string, target: Target) => {
    let session: SmtpSession | null = null;
    try {
      for (;;) {
        const q = queues.get(key);
        if (aborted || !q || q.txs.length === 0) break;
        if (!session || !session.usable) {
          if (session) {
            inUse.delete(session);
            connections.discard(session);
          }
          session = null;
          try {
            session = await unlessMarkedDown(
              reachability,
              key,
              connections.acquire(target, () =>
                openSession({
                  target,
                  localName: ctx.localName,
                  lmtp: channel.lmtp,
                  tls: channel.tlsClient,
                  pipelining: channel.pipelining,
                  settings,
                  transcript: ctx.transcriptFor?.(target) ?? null,
                }),
              ),
              (late) => connections.release(late),
            );
            if (aborted) break;
            inUse.add(session);
          } catch (err) {
            if (aborted) return;
            ctx.stats.connectFailures++;
            const ce = err instanceof ConnectError ? err : new ConnectError('closed', `451 4.4.2 ${describeHost(target)}: ${(err as Error).message}`, false);
            if (ce.unreachable) reachability.markDown(key, ce.status, settings.hostRetryMs);
            failHost(key, target, ce.status, []);
            return;
          }
          continue; // the queue may have grown while connecting
        }
        const tx = q.txs.shift()!;
        const { broken, overflow } = await runTransaction(session, tx, items, byId, ctx, decide);
        // RFC 5321 §4.5.3.1.8: recipients refused for "too many recipients" go in the next transaction.
        if (overflow.length) (queues.get(key) ?? q).txs.unshift({ message: tx.message, recipients: overflow });
        if (broken) {
          // The connection broke mid-transaction: these recipients try their next MX; the rest of this host's queue reconnects.
          for (const id of tx.recipients) {
            const r = byId.get(id)!;
            r.tried.add(key);
            r.lastFailure = broken;
            r.lastHost = describeHost(target);
          }
          inUse.delete(session);
          connections.discard(session);
          session = null;
          replan(tx.recipients);
        }
      }
    } finally {
      if (session) {
        inUse.delete(session);
        if (aborted) connections.discard(session);
        else connections.release(session);
      }
      running.delete(key);
      pump();
    }
  };

  // Out of time: what is not decided yet is deferred with the reason, and the connections in use
  // are closed (a transaction cut off is not known to have happened: it is tried again later).
  const onAbort = () => {
    aborted = true;
    const status = abortStatus(ctx.signal!);
    for (const r of active) decide(r, 'deferred', status, r.lastHost);
    for (const s of inUse) connections.discard(s);
    inUse.clear();
    finish();
  };
  if (ctx.signal?.aborted) return onAbort();
  ctx.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    replan(active.map((r) => r.id));
    pump();
    await done;
  } finally {
    ctx.signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * Runs one transaction. `broken`: the status when the connection broke (recipients undecided);
 * `overflow`: recipients the server refused only because the transaction had too many.
 */
async function runTransaction(
  session: SmtpSession,
  tx: PlannedTransaction,
  items: DeliveryItem[],
  byId: Map<number, Rcpt>,
  ctx: EngineContext,
  decide: (r: Rcpt, result: RecipientResult, status: string, remoteHost: string | null, tls?: string | null) => void,
): Promise<{ broken: string | null; overflow: number[] }> {
  const item = items[tx.message]!;
  const rcpts = tx.recipients.map((id) => byId.get(id)!);
  const host = describeHost(session.target);
  const env = item.envelope;
  const from = ctx.channel.senderRewrite ?? env.from;
  const prepared = await prepareMessage(item, from, rcpts.map((r) => r.rcptTo), session, ctx);
  if (!prepared.ok) {
    for (const r of rcpts) decide(r, prepared.result, prepared.status, prepared.byServer ? host : null, prepared.byServer ? session.tls : null);
    return { broken: null, overflow: [] };
  }
  const outcome: SendOutcome = await session.send({
    from,
    to: rcpts.map((r) => r.rcptTo),
    body: prepared.body,
    ret: env.mailParams.ret,
    envid: env.mailParams.envid,
    use8BitMime: prepared.use8BitMime,
    smtpUtf8: prepared.smtpUtf8,
    rcptDsn: new Map(rcpts.map((r) => [r.rcptTo, r.dsn])),
  });
  ctx.stats.transactions++;
  if (outcome.kind === 'broken') return { broken: outcome.reply, overflow: [] };
  if (outcome.kind === 'local') {
    for (const r of rcpts) decide(r, 'deferred', outcome.reply, null);
    return { broken: null, overflow: [] };
  }
  const rejected = new Map(outcome.rejected.map((x) => [x.recipient, x]));
  const someAccepted = outcome.kind === 'sent' && outcome.accepted.length > 0;
  const overflow: number[] = [];
  for (const r of rcpts) {
    const rej = rejected.get(r.rcptTo);
    if (rej && someAccepted && rej.code === 452 && rej.command === 'RCPT TO' && /too many recipients|4\.5\.3/i.test(rej.reply) && r.overflows < 5) {
      r.overflows++;
      overflow.push(r.id);
    } else if (rej) {
      decide(r, resultOf(rej.code), `${rej.reply} (in reply to ${rej.command})`, host, session.tls);
    } else if (outcome.kind === 'sent') {
      decide(r, 'delivered', outcome.reply, host, session.tls);
    } else {
      decide(r, resultOf(outcome.code), `${outcome.reply} (in reply to ${outcome.command})`, host, session.tls);
    }
  }
  return { broken: null, overflow };
}

function resultOf(code: number): RecipientResult {
  return code >= 200 && code < 300 ? 'delivered' : code >= 500 ? 'failed' : 'deferred';
}

type Prepared =
  | { ok: true; body: Readable | Buffer; use8BitMime: boolean; smtpUtf8: boolean }
  /** Not sent: every recipient of the transaction gets this; `byServer` when it is for what the server lacks. */
  | { ok: false; result: RecipientResult; status: string; byServer: boolean };

/**
 * The queued message made ready for this session: read (a buffer, or a stream whose header is
 * peeked), returned when it is looping (too many hops), and its 8-bit content and UTF-8 envelope
 * fitted to what the server offered (eight-bit.ts: as it is, converted to 7 bits, or refused).
 */
async function prepareMessage(item: DeliveryItem, from: string, to: string[], session: SmtpSession, ctx: EngineContext): Promise<Prepared> {
  const unreadable = (err: unknown): Prepared => ({ ok: false, result: 'deferred', status: `451 4.3.0 could not read the queued message: ${(err as Error).message}`, byServer: false });
  let body: Readable | Buffer;
  let header: Buffer;
  try {
    body = (await ctx.readMessage(item.ref.path)) as Readable | Buffer;
    if (Buffer.isBuffer(body)) header = headerSectionOf(body);
    else ({ header, stream: body } = await peekHeader(body));
  } catch (err) {
    return unreadable(err);
  }
  const giveUp = (p: Prepared): Prepared => {
    if (!Buffer.isBuffer(body)) body.destroy();
    return p;
  };
  const loop = tooManyHops(headerFacts(header), ctx.hopLimit);
  if (loop) return giveUp({ ok: false, result: 'failed', status: loop, byServer: false });
  const env = item.envelope;
  const needs: ContentNeeds = {
    declared8Bit: env.mailParams.body === '8BITMIME' || env.mailParams.body === 'BINARYMIME',
    smtpUtf8: Boolean(env.mailParams.smtputf8),
    utf8Envelope: hasUtf8Address([from, ...to]),
  };
  const offers = { eightBitMime: session.extensions.includes('8BITMIME'), smtpUtf8: session.extensions.includes('SMTPUTF8') };
  let whole = Buffer.isBuffer(body) ? body : null;
  if (!whole && needsContent(needs, offers)) {
    try {
      whole = await readAll(body as Readable);
    } catch (err) {
      return giveUp(unreadable(err));
    }
  }
  const plan = planContent(needs, offers, whole, describeHost(session.target));
  if (plan.kind === 'refuse') return giveUp({ ok: false, result: resultOf(Number(plan.status.slice(0, 3))), status: plan.status, byServer: true });
  return { ok: true, body: plan.message ?? whole ?? body, use8BitMime: plan.use8BitMime, smtpUtf8: plan.smtpUtf8 };
}

/** A streamed message read whole (only to convert it for a server without 8BITMIME or SMTPUTF8). */
async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : (chunk as Buffer));
  return Buffer.concat(chunks);
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
