// Fast flush (Postfix's flush daemon, RFC 1985 ETRN): a per-destination index of deferred
// messages, so that `ETRN domain` / `imsimta flush domain` retries exactly that destination's
// mail without reading the rest of the queue; which domains are indexed (FAST_FLUSH_DOMAINS, or
// the domains explicit rewrite rules route to SMTP channels, as Postfix's $relay_domains); and
// the flush decision itself (fast, slow = everything, one channel, all), carried out through a
// small host interface the job controller implements. No I/O here.
import type { ImtaConfig } from '../config/types.js';
import { domainRoutes, isValidDomain } from '../rewrite/index.js';
import { normalizeDomain } from '../common/domain-name.js';

// ------------------------------------------------------------------------- policy

/** Which destinations are fast-flush. Domains are lower-case, without a trailing dot. */
export interface FastFlushPolicy {
  /** Where the list came from (for logs and status). */
  source: 'option' | 'rewrite-rules';
  /** These domains themselves. */
  exact: ReadonlySet<string>;
  /** Every subdomain of these (not the domain itself unless it is in `exact` too). */
  parents: ReadonlySet<string>;
}

/**
 * FAST_FLUSH_DOMAINS when set (`example.com` = the domain and its subdomains, as Postfix's
 * parent_domain_matches_subdomains has it; `.example.com` = subdomains only; empty = fast flush
 * off), else derived from the rewrite rules.
 */
export function fastFlushPolicy(fastFlushDomains: readonly string[] | null, imta: Pick<ImtaConfig, 'rules' | 'hostTable' | 'channelByName'>): FastFlushPolicy {
  if (fastFlushDomains === null) return policyFromRules(imta);
  const exact = new Set<string>();
  const parents = new Set<string>();
  for (const raw of fastFlushDomains) {
    const d = normalizeDomain(raw.replace(/^@/, ''));
    if (d.startsWith('.')) {
      if (isValidDomain(d.slice(1))) parents.add(d.slice(1));
    } else if (d && isValidDomain(d) && !d.startsWith('[')) {
      exact.add(d);
      parents.add(d);
    }
  }
  return { source: 'option', exact, parents };
}

/**
 * The patterns of rewrite rules whose template routes to a channel with the `smtp` keyword:
 * `example.com` (that domain), `.example.com` and `*.example.com` (its subdomains). The
 * catch-alls (`.`, `[]`, `$*`, `*`…), address literals, and rules that route elsewhere (local
 * delivery, bitbucket, or only rewrite and start over) are not relay destinations.
 */
function policyFromRules(imta: Pick<ImtaConfig, 'rules' | 'hostTable' | 'channelByName'>): FastFlushPolicy {
  const exact = new Set<string>();
  const parents = new Set<string>();
  for (const route of domainRoutes(imta)) {
    if (!imta.channelByName.get(route.channel.toLowerCase())?.smtp) continue;
    (route.subdomains ? parents : exact).add(route.domain);
  }
  return { source: 'rewrite-rules', exact, parents };
}

export function isFastFlushOff(policy: FastFlushPolicy): boolean {
  return policy.exact.size === 0 && policy.parents.size === 0;
}

/** Whether deferred mail for `domain` is indexed. */
export function isFastFlushDomain(policy: FastFlushPolicy, domain: string): boolean {
  const d = normalizeDomain(domain);
  if (policy.exact.has(d)) return true;
  for (const parent of ancestorsOf(d)) if (policy.parents.has(parent)) return true;
  return false;
}

/** Whether every subdomain of `domain` is a fast-flush domain (so `@domain` can be answered from the index). */
export function coversSubdomains(policy: FastFlushPolicy, domain: string): boolean {
  const d = normalizeDomain(domain);
  if (policy.parents.has(d)) return true;
  for (const parent of ancestorsOf(d)) if (policy.parents.has(parent)) return true;
  return false;
}

/** The fast-flush domains among a message's recipient domains. */
export function fastFlushDomainsOf(policy: FastFlushPolicy, domains: Iterable<string>): string[] {
  const out = new Set<string>();
  for (const d of domains) {
    const n = normalizeDomain(d);
    if (isFastFlushDomain(policy, n)) out.add(n);
  }
  return [...out];
}

// -------------------------------------------------------------------------- index

/** Where a deferred message is (the path as of its last deferral; it changes with the attempt count). */
export interface FlushRef {
  id: string;
  channel: string;
  path: string;
}

export interface FlushEntry {
  ref: FlushRef;
  /** The fast-flush domains it has pending recipients in. */
  domains: readonly string[];
}

/**
 * Domain → deferred queue ids, plus, for `@domain`, every indexed domain under each of its
 * parents, so that a lookup costs what it returns, not the size of the index.
 */
export class FastFlushIndex {
  private readonly byId = new Map<string, FlushEntry>();
  private readonly byDomain = new Map<string, Set<string>>();
  /** Parent domain → indexed domains below it (any depth). */
  private readonly below = new Map<string, Set<string>>();

  get size(): number {
    return this.byId.size;
  }

  get domainCount(): number {
    return this.byDomain.size;
  }

  get(id: string): FlushEntry | undefined {
    return this.byId.get(id);
  }

  /** The message was deferred with pending recipients in `domains`: it replaces what was known of it (none = removed). */
  record(ref: FlushRef, domains: readonly string[]): void {
    this.remove(ref.id);
    const list = [...new Set(domains.map(normalizeDomain))].filter(Boolean);
    if (list.length === 0) return;
    this.byId.set(ref.id, { ref: { ...ref }, domains: list });
    for (const d of list) {
      let ids = this.byDomain.get(d);
      if (!ids) {
        ids = new Set();
        this.byDomain.set(d, ids);
        for (const parent of ancestorsOf(d)) setOf(this.below, parent).add(d);
      }
      ids.add(ref.id);
    }
  }

  /** The message left the queue (delivered, returned, deleted): false when it was not indexed. */
  remove(id: string): boolean {
    const entry = this.byId.get(id);
    if (!entry) return false;
    this.byId.delete(id);
    for (const d of entry.domains) {
      const ids = this.byDomain.get(d);
      if (!ids) continue;
      ids.delete(id);
      if (ids.size > 0) continue;
      this.byDomain.delete(d);
      for (const parent of ancestorsOf(d)) {
        const set = this.below.get(parent);
        set?.delete(d);
        if (set?.size === 0) this.below.delete(parent);
      }
    }
    return true;
  }

  /** The messages deferred for `domain` (and, with `subdomains`, for every domain under it). */
  lookup(domain: string, subdomains: boolean): FlushEntry[] {
    const d = normalizeDomain(domain);
    const ids = new Set<string>(this.byDomain.get(d) ?? []);
    if (subdomains) for (const sub of this.below.get(d) ?? []) for (const id of this.byDomain.get(sub) ?? []) ids.add(id);
    return [...ids].map((id) => this.byId.get(id)!);
  }

  entries(): IterableIterator<FlushEntry> {
    return this.byId.values();
  }
}

function setOf<K, V>(map: Map<K, Set<V>>, key: K): Set<V> {
  let s = map.get(key);
  if (!s) {
    s = new Set();
    map.set(key, s);
  }
  return s;
}

/** `a.b.example.com` → `b.example.com`, `example.com`, `com`. */
function ancestorsOf(domain: string): string[] {
  const out: string[] = [];
  for (let i = domain.indexOf('.'); i >= 0; i = domain.indexOf('.', i + 1)) out.push(domain.slice(i + 1));
  return out.filter(Boolean);
}


// ------------------------------------------------------------------------ targets

export type FlushTarget =
  | { kind: 'all' }
  | { kind: 'channel'; channel: string }
  | { kind: 'domain'; domain: string; subdomains: boolean };

/** `null`/empty = all; `#channel`; `@domain` (with subdomains); `domain`. null for anything else. */
export function parseFlushTarget(text: string | null): FlushTarget | null {
  const t = (text ?? '').trim();
  if (t === '') return { kind: 'all' };
  if (t.startsWith('#')) {
    const channel = t.slice(1);
    return /^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}$/.test(channel) ? { kind: 'channel', channel: channel.toLowerCase() } : null;
  }
  const subdomains = t.startsWith('@');
  const domain = normalizeDomain(subdomains ? t.slice(1) : t);
  if (!domain || !isValidDomain(domain)) return null;
  return { kind: 'domain', domain, subdomains };
}

function formatFlushTarget(t: FlushTarget): string {
  return t.kind === 'all' ? 'all destinations' : t.kind === 'channel' ? `#${t.channel}` : `${t.subdomains ? '@' : ''}${t.domain}`;
}

/** How a flush is carried out. */
export type FlushPlan =
  | { way: 'fast'; target: Extract<FlushTarget, { kind: 'domain' }>; entries: FlushEntry[] }
  /** Not a fast-flush destination: every deferred message is retried (Postfix's "slow ETRN"). */
  | { way: 'slow'; target: Extract<FlushTarget, { kind: 'domain' }> }
  | { way: 'channel'; target: Extract<FlushTarget, { kind: 'channel' }> }
  | { way: 'all'; target: Extract<FlushTarget, { kind: 'all' }> };

export function planFlush(target: FlushTarget, policy: FastFlushPolicy, index: FastFlushIndex): FlushPlan {
  if (target.kind === 'all') return { way: 'all', target };
  if (target.kind === 'channel') return { way: 'channel', target };
  const fast = isFastFlushDomain(policy, target.domain) && (!target.subdomains || coversSubdomains(policy, target.domain));
  if (!fast) return { way: 'slow', target };
  return { way: 'fast', target, entries: index.lookup(target.domain, target.subdomains) };
}

// ---------------------------------------------------------------------- carrying out

/** What a message of the index is doing in the job controller right now. */
export type ScheduleState = 'made-due' | 'in-flight' | 'absent';

/** What fast flush needs from the job controller (its scheduling index and the queue). */
export interface FlushHost {
  /** Makes an indexed message due now (ignoring its backoff); 'absent' when the scheduler does not hold it. */
  makeDueNow(id: string): ScheduleState;
  /** A message only on disk: read it and schedule it now. 'gone' when the file is not there (delivered, deleted, held). */
  admitNow(ref: FlushRef): Promise<'admitted' | 'gone' | 'no-room'>;
  /** Makes every waiting message that `match` accepts due now; how many changed. */
  makeDue(match: (m: { channel: string; domains: readonly string[] }) => boolean): number;
  /** Messages that `match` accepts, in flight now. */
  countInFlight(match: (m: { channel: string; domains: readonly string[] }) => boolean): number;
  /** Messages that `match` accepts, known to the scheduler (in flight or not). */
  countKnown(match: (m: { channel: string; domains: readonly string[] }) => boolean): number;
  /** The channel exists (imta.cnf). */
  hasChannel(name: string): boolean;
  /** True when there are queue files the scheduler does not hold (its index overflowed). */
  readonly incomplete: boolean;
  /** Picks up files the scheduler does not hold (a rescan). */
  rescan(): void;
  /** Starts jobs for what is due. */
  kick(): void;
}

/** Who asked for a flush, and what the fast-flush index knows. */
export interface FlushContext {
  /**
   * `etrn`: a client on the network (ETRN), which may only have fast-flush destinations tried
   * (Postfix: other domains get 459, so that no client causes a retry of other mail);
   * `operator`: `imsimta flush`, which may flush any destination, channel or everything.
   */
  origin: 'etrn' | 'operator';
  /** The fast-flush index holds every deferred message of its domains (false while a rebuild is owed). */
  fastIndexComplete: boolean;
}

export interface FlushResult {
  ok: boolean;
  /** RFC 1985 reply code: 250 (started, or all), 251 (nothing waiting), 252/253 (started, count unknown/known), 458 (cannot), 459 (not allowed), 501 (bad target). */
  code: number;
  count: number;
  text: string;
  /** For 458/459: the short reason the SMTP server gives the client (`service unavailable`, `no such channel`). */
  reason?: string;
  /** The way it was carried out (for logs and tests). */
  way?: FlushPlan['way'];
  /** Index entries found stale (their message left the queue): the caller drops them. */
  stale?: string[];
}

/** Whether a scheduler entry is covered by a domain target. */
function domainMatches(target: { domain: string; subdomains: boolean }, domains: readonly string[]): boolean {
  return domains.some((x) => x === target.domain || (target.subdomains && x.endsWith('.' + target.domain)));
}

/**
 * Makes the target's messages due now. Every reply says only what is known: "no messages
 * waiting" only when the index searched holds all of them, otherwise that the ones found were
 * started. A flush only schedules: a host inside its host-retry window is not tried before the
 * window ends, and a try made before a message was due does not count (outcome.ts retrySchedule).
 */
export async function carryOutFlush(plan: FlushPlan, host: FlushHost, ctx: FlushContext = { origin: 'operator', fastIndexComplete: true }): Promise<FlushResult> {
  const what = formatFlushTarget(plan.target);
  // The operator's flush makes the jobs forget the hosts they found down, so it is really tried
  // now; ETRN's keeps to the host-retry window, so it is only scheduled.
  const started = (n: number) => `${n} message${n === 1 ? '' : 's'} for ${what} ${ctx.origin === 'operator' ? 'being tried now' : 'scheduled for delivery now'}`;
  const moreOnDisk = 'the queue holds more than the scheduler\'s index; a rescan picks up the rest';
  switch (plan.way) {
    case 'fast': {
      let count = 0;
      let noRoom = 0;
      const stale: string[] = [];
      for (const { ref } of plan.entries) {
        const state = host.makeDueNow(ref.id);
        if (state !== 'absent') {
          count++;
          continue;
        }
        const admitted = await host.admitNow(ref);
        if (admitted === 'admitted') count++;
        else if (admitted === 'gone') stale.push(ref.id);
        else noRoom++;
      }
      if (!ctx.fastIndexComplete) {
        // The index is being rebuilt from the queue files: the scheduler's own messages for the target too.
        const target = plan.target;
        const mine = (m: { domains: readonly string[] }) => domainMatches(target, m.domains);
        host.makeDue(mine);
        count = Math.max(count, host.countKnown(mine));
      }
      host.kick();
      if (noRoom > 0 && count === 0) return { ok: false, code: 458, count, text: `${noRoom} message${noRoom === 1 ? '' : 's'} for ${what} could not be scheduled: the scheduler is full`, reason: 'the scheduler is full', way: 'fast', stale };
      if (!ctx.fastIndexComplete) return { ok: true, code: 252, count, text: `${started(count)} (the fast-flush index is being rebuilt: more may follow)`, way: 'fast', stale };
      if (count === 0) return { ok: true, code: 251, count, text: `no messages waiting for ${what}`, way: 'fast', stale };
      return { ok: true, code: 250, count, text: started(count), way: 'fast', stale };
    }
    case 'slow': {
      // Not a fast-flush destination. A client on the network gets Postfix's 459 and nothing is
      // retried; the operator gets that destination's messages among those the scheduler holds.
      if (ctx.origin === 'etrn') return { ok: false, code: 459, count: 0, text: `${what}: service unavailable (not a fast-flush destination)`, reason: 'service unavailable', way: 'slow' };
      const target = plan.target;
      const mine = (m: { domains: readonly string[] }) => domainMatches(target, m.domains);
      host.makeDue(mine);
      const count = host.countKnown(mine);
      const incomplete = host.incomplete;
      if (incomplete) host.rescan();
      host.kick();
      if (incomplete) return { ok: true, code: 252, count, text: `${started(count)} (${moreOnDisk})`, way: 'slow' };
      if (count === 0) return { ok: true, code: 251, count, text: `no messages waiting for ${what}`, way: 'slow' };
      return { ok: true, code: 253, count, text: started(count), way: 'slow' };
    }
    case 'channel': {
      const channel = plan.target.channel;
      if (!host.hasChannel(channel)) return { ok: false, code: 459, count: 0, text: `no such channel: ${channel}`, reason: 'no such channel', way: 'channel' };
      const mine = (m: { channel: string }) => m.channel.toLowerCase() === channel;
      host.makeDue(mine);
      const count = host.countKnown(mine);
      const incomplete = host.incomplete;
      if (incomplete) host.rescan();
      host.kick();
      if (incomplete) return { ok: true, code: 252, count, text: `${started(count)} (${moreOnDisk})`, way: 'channel' };
      if (count === 0) return { ok: true, code: 251, count, text: `no messages waiting for ${what}`, way: 'channel' };
      return { ok: true, code: 253, count, text: started(count), way: 'channel' };
    }
    case 'all': {
      host.makeDue(() => true);
      const count = host.countKnown(() => true);
      const incomplete = host.incomplete;
      if (incomplete) host.rescan();
      host.kick();
      if (incomplete) return { ok: true, code: 250, count, text: `${started(count)} (${moreOnDisk})`, way: 'all' };
      if (count === 0) return { ok: true, code: 250, count, text: `no messages waiting for ${what}`, way: 'all' };
      return { ok: true, code: 250, count, text: started(count), way: 'all' };
    }
  }
}
