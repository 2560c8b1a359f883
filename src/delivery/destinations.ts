// Where a channel's recipients go: a recipient's destination (its domain, an address literal, or
// the channel's smart hosts with `daemon`), looked up all at once (SMTPfeed §3.5) into the targets
// to connect to, best first. Each destination is looked up once for the fan-out (SMTPfeed §3.7):
// its answer serves every recipient and message of the channel for `reuseMs` (DNS_REUSE), even
// when its TTL is shorter (dnsmasq answers its own records with TTL 0); a temporary failure is not
// kept here (the DNS cache keeps it for the negative TTL). Destinations are kept by what they are
// (a domain, an address), never by a key string parsed back. A lookup that fails is the
// recipient's outcome.
import type { EngineContext } from './engine-context.js';
import { destinationOf, parseHostPort } from './address.js';
import { orderTargets, randomRank, shufflesEqualPreferences, targetKey, type ResolvedMx, type Target } from './mx.js';
import type { StsPolicy } from './tls/mta-sts.js';
import type { RecipientResult } from './types.js';

export type Resolution =
  /**
   * A function when the targets depend on the message (smart hosts with randommx: each message
   * starts at a random one). `sts`: the domain's MTA-STS policy (MX delivery only).
   */
  | { ok: true; targets: Target[] | ((message: number) => Target[]); sts?: StsPolicy | null }
  | { ok: false; result: RecipientResult; status: string };

/** What a destination lookup needs of the engine. */
export type LookupContext = Pick<EngineContext, 'channel' | 'resolver' | 'stats' | 'random' | 'tls'>;

interface Kept {
  lookup: Promise<Resolution>;
  /** Until when the answer is used (Infinity while the lookup runs). */
  until: number;
}

export class Destinations {
  private readonly port: number;
  /** Equal-preference MX hosts' order (randommx): one random rank per host, made again at each sweep. */
  private rank: (key: string) => number;
  private readonly smartHosts: string[];
  private readonly kept = new Map<string, Kept>();
  private lastSweep: number;

  constructor(
    private readonly ctx: LookupContext,
    private readonly reuseMs = 0,
    private readonly now: () => number = Date.now,
  ) {
    const { channel } = ctx;
    this.port = channel.port ?? (channel.lmtp ? 24 : 25);
    this.rank = randomRank(ctx.random);
    this.smartHosts = channel.daemon?.filter(Boolean) ?? [];
    this.lastSweep = now();
  }

  /** The lookup for the destination of `rcptTo`, started now unless an answer is kept or another recipient's lookup runs. */
  lookup(rcptTo: string): Promise<Resolution> {
    this.sweep();
    if (this.smartHosts.length) return this.once('smart hosts', () => resolveSmartHosts(this.smartHosts, this.port, this.ctx));
    const d = destinationOf(rcptTo);
    switch (d.kind) {
      case 'invalid':
        return Promise.resolve({ ok: false, result: 'failed', status: `553 5.1.3 bad destination address: ${d.reason}` });
      case 'literal':
        return this.once(`[${d.ip}]`, () => Promise.resolve({ ok: true, targets: [{ key: targetKey(d.ip, this.port), ip: d.ip, port: this.port, host: `[${d.ip}]`, preference: 0 }] }));
      case 'domain': {
        const rank = this.rank;
        return this.once(d.domain, () => resolveDomain(d.domain, this.port, this.ctx, rank));
      }
    }
  }

  /** Destinations kept now (answers in use, lookups running). */
  get size(): number {
    return this.kept.size;
  }

  private once(key: string, start: () => Promise<Resolution>): Promise<Resolution> {
    const k = this.kept.get(key);
    if (k && k.until > this.now()) return k.lookup;
    this.ctx.stats.lookups++;
    const entry: Kept = { lookup: start(), until: Infinity };
    this.kept.set(key, entry);
    void entry.lookup.then((res) => {
      if (this.kept.get(key) !== entry) return;
      if (!res.ok && res.result === 'deferred') this.kept.delete(key);
      else entry.until = this.now() + this.reuseMs;
    });
    return entry.lookup;
  }

  /** Drops answers past their time, at most once per reuse period. */
  private sweep(): void {
    const now = this.now();
    if (now - this.lastSweep < Math.max(1000, this.reuseMs)) return;
    this.lastSweep = now;
    for (const [key, k] of this.kept) if (k.until <= now) this.kept.delete(key);
    this.rank = randomRank(this.ctx.random);
  }
}

async function resolveDomain(domain: string, port: number, ctx: LookupContext, rank: (k: string) => number): Promise<Resolution> {
  const { channel, resolver } = ctx;
  // The MTA-STS policy is looked up beside the MX hosts (RFC 8461 §5.1: it limits which may be tried).
  const stsLookup = ctx.tls.stsPolicy(domain);
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
  const sts = await stsLookup;
  const allowed = ctx.tls.filterMx(domain, sts, hosts);
  if (allowed.refused) return { ok: false, result: 'deferred', status: allowed.refused };
  return { ok: true, targets: orderTargets(allowed.hosts, { shuffle: shufflesEqualPreferences(channel.mx), rank, port }), sts };
}

/** `daemon h1,h2`: every recipient to the smart hosts, in order; with randommx each message starts at a random one. */
async function resolveSmartHosts(daemons: string[], port: number, ctx: LookupContext): Promise<Resolution> {
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
