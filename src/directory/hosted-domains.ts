// The directory's hosted domains, which the rewrite rules' `$V` and `$Z` ask synchronously
// (src/rewrite keeps its rewriter synchronous): a set kept in memory and kept fresh here.
// Files: the local channel's host names, LOCAL_HOST, the domains rules route to channel l, and
// the domains of etc/users' addresses (fixed until a reload builds another configuration).
// LDAP (Messaging Server's direct LDAP): every entry of the domain object classes under
// LDAP_DOMAIN_ROOT, its names in the domain attributes, read at start (a reload starts a new
// set) and again every DOMAIN_MATCH_CACHE_TIMEOUT; while LDAP cannot answer the last good set
// stays, and before a first answer the set is unknown (null: the rule fails temporarily, 4xx).
import type { InstanceConfig, LdapOptions } from '../config/types.js';
import { isValidDomain, rulesAskHostedDomains, type HostedDomains } from '../rewrite/index.js';
import { normalizeDomain } from '../common/domain-name.js';
import { allOf, anyOf, objectClassFilter } from './ldap-filter.js';
import { attributeValues, type LdapEntry } from './ldap-entries.js';
import { LdapPool, type LdapPoolEvent } from './ldap-pool.js';
import { ldapCredentials } from './ldap-source.js';
import { localityOf } from './locality.js';

/** A hosted-domain set for one process, closed with it. */
export interface HostedDomainSet extends HostedDomains {
  readonly source: 'files' | 'ldap';
  /** Resolves when the first reading is done (answered or failed): a process waits for it before it rewrites. */
  ready(): Promise<void>;
  close(): Promise<void>;
}

export type HostedDomainEvent =
  | { type: 'refreshed'; domains: number }
  /** `keeping`: the size of the last good set still used, null when none is known yet. */
  | { type: 'refresh-failed'; why: string; keeping: number | null; retryMs: number };

export interface HostedDomainOptions {
  /** Set readings, for the log. */
  onEvent?(event: HostedDomainEvent): void;
  /** LDAP connections made, lost and refused, for the log. */
  onLdapEvent?(event: LdapPoolEvent): void;
}

/** The hosted domains of a configuration's directory source; LDAP is read only when a rule asks. */
export function openHostedDomains(config: InstanceConfig, opts: HostedDomainOptions = {}): HostedDomainSet {
  if (!config.options.ldap) return filesHostedDomains(config);
  const set = new LdapHostedDomains(config.options.ldap, opts);
  if (rulesAskHostedDomains(config.imta)) set.start();
  return set;
}

/** The files source's hosted domains (pure: from the configuration). */
export function filesHostedDomains(config: Pick<InstanceConfig, 'imta' | 'options' | 'users'>): HostedDomainSet {
  const names = [...localityOf(config.imta, { localHost: config.options.localHost }).domains, config.options.localHost];
  for (const user of config.users.users.values()) {
    for (const address of user.addresses) names.push(address.slice(address.lastIndexOf('@') + 1));
  }
  const domains = new Set(names.map(normalizeDomain).filter((d) => d !== '' && isValidDomain(d)));
  return { source: 'files', isHostedDomain: (domain) => domains.has(domain), ready: async () => {}, close: async () => {} };
}

/** The search for domain entries: any of the object class sets, with at least one domain attribute. */
export function domainSearchFilter(options: Pick<LdapOptions['domains'], 'objectClasses' | 'attributes'>): string {
  return allOf([objectClassFilter(options.objectClasses), anyOf(options.attributes.map((a) => `(${a}=*)`))]);
}

/** The domain names of the entries found (lower case, without a trailing dot; what is not a domain name is left out). */
export function domainsOfEntries(entries: readonly LdapEntry[], attributes: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const entry of entries) {
    for (const attribute of attributes) {
      for (const value of attributeValues(entry, attribute)) {
        const domain = normalizeDomain(value);
        if (isValidDomain(domain)) out.add(domain);
      }
    }
  }
  return out;
}

class LdapHostedDomains implements HostedDomainSet {
  readonly source = 'ldap';
  private domains: ReadonlySet<string> | null = null;
  private readonly pool: LdapPool;
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  private first: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly options: LdapOptions,
    private readonly opts: HostedDomainOptions,
  ) {
    this.pool = new LdapPool({
      servers: options.servers,
      size: 1,
      timeoutMs: options.timeoutMs,
      reconnectMinMs: options.reconnectMinMs,
      reconnectMaxMs: options.reconnectMaxMs,
      credentials: () => ldapCredentials(options),
      onEvent: (e) => opts.onLdapEvent?.(e),
    });
  }

  isHostedDomain(domain: string): boolean | null {
    return this.domains === null ? null : this.domains.has(domain);
  }

  start(): void {
    this.first = this.refresh();
  }

  ready(): Promise<void> {
    return this.first;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.pool.close();
  }

  private async refresh(): Promise<void> {
    this.timer = null;
    const d = this.options.domains;
    let next = d.refreshMs;
    try {
      const timeLimit = Math.max(1, Math.ceil(this.options.timeoutMs / 1000));
      const { searchEntries } = await this.pool.run((client) => client.search(d.root, { scope: 'sub', filter: domainSearchFilter(d), attributes: d.attributes, timeLimit, paged: { pageSize: 1000 } }));
      this.domains = domainsOfEntries(searchEntries, d.attributes);
      this.failures = 0;
      this.opts.onEvent?.({ type: 'refreshed', domains: this.domains.size });
    } catch (err) {
      // Sooner than the interval while it fails (the pool's backoff), so that a directory back answers soon.
      this.failures++;
      next = Math.min(d.refreshMs, Math.max(this.options.reconnectMinMs * 2 ** Math.min(this.failures - 1, 30), 100), Math.max(this.options.reconnectMaxMs, 100));
      this.opts.onEvent?.({ type: 'refresh-failed', why: `hosted domains under ${d.root}: ${(err as Error).message}`, keeping: this.domains?.size ?? null, retryMs: next });
    }
    if (!this.closed) {
      this.timer = setTimeout(() => void this.refresh(), next);
      this.timer.unref();
    }
  }
}
