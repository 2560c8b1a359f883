// Where a run's recipients go: a recipient's destination (its domain, an address literal, or the
// channel's smart hosts with `daemon`), each destination looked up once for the whole run and all
// of them at once (SMTPfeed §3.5), into the targets to connect to, best first. Destinations are
// kept by what they are (a domain, an address), never by a key string parsed back. A lookup that
// fails is the recipient's outcome.
import { abortStatus, type EngineContext } from './engine-context.js';
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

export class Destinations {
  private readonly port: number;
  private readonly rank: (key: string) => number;
  private readonly smartHosts: string[];
  private smartHostLookup: Promise<Resolution> | null = null;
  private readonly domains = new Map<string, Promise<Resolution>>();
  private readonly literals = new Map<string, Promise<Resolution>>();

  constructor(private readonly ctx: EngineContext) {
    const { channel } = ctx;
    this.port = channel.port ?? (channel.lmtp ? 24 : 25);
    this.rank = randomRank(ctx.random);
    this.smartHosts = channel.daemon?.filter(Boolean) ?? [];
  }

  /** The lookup for the destination of `rcptTo`, started now unless another recipient's started it already. */
  lookup(rcptTo: string): Promise<Resolution> {
    if (this.smartHosts.length) return (this.smartHostLookup ??= this.counted(() => resolveSmartHosts(this.smartHosts, this.port, this.ctx)));
    const d = destinationOf(rcptTo);
    switch (d.kind) {
      case 'invalid':
        return Promise.resolve({ ok: false, result: 'failed', status: `553 5.1.3 bad destination address: ${d.reason}` });
      case 'literal':
        return once(this.literals, d.ip, () => this.counted(() => Promise.resolve({ ok: true, targets: [{ key: targetKey(d.ip, this.port), ip: d.ip, port: this.port, host: `[${d.ip}]`, preference: 0 }] })));
      case 'domain':
        return once(this.domains, d.domain, () => this.counted(() => resolveDomain(d.domain, this.port, this.ctx, this.rank)));
    }
  }

  private counted(start: () => Promise<Resolution>): Promise<Resolution> {
    this.ctx.stats.lookups++;
    return start();
  }
}

function once<K>(map: Map<K, Promise<Resolution>>, key: K, start: () => Promise<Resolution>): Promise<Resolution> {
  let p = map.get(key);
  if (!p) map.set(key, (p = start()));
  return p;
}

/** Resolves (as a deferral) when the signal aborts, so that lookups still running are not waited for. */
export function abortedResolution(signal: AbortSignal | undefined): Promise<Resolution> | null {
  if (!signal) return null;
  return new Promise((resolve) => {
    const fire = () => resolve({ ok: false, result: 'deferred', status: abortStatus(signal) });
    if (signal.aborted) fire();
    else signal.addEventListener('abort', fire, { once: true });
  });
}

async function resolveDomain(domain: string, port: number, ctx: EngineContext, rank: (k: string) => number): Promise<Resolution> {
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
async function resolveSmartHosts(daemons: string[], port: number, ctx: EngineContext): Promise<Resolution> {
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
