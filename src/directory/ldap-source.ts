// The LDAP source of the directory (issue 19), as Messaging Server's direct LDAP reads users and
// groups: an address is searched under LDAP_USER_ROOT among the mail, alternate and equivalent
// addresses of entries of the user or group object classes (then user@domain for user+tag@domain,
// then the domain's catch-all @domain); a login by uid (or by address);
// AUTH binds as the user's DN on connections of its own. Every value from mail is escaped
// (ldap-filter.ts). Answers are cached (negative ones for a shorter time) and concurrent
// lookups of one key share one search. The directory down or slow gives `unavailable` within
// LDAP_TIMEOUT (at once while the pool waits to reconnect): never "no such user", never a wait
// for other lookups. Two entries with the same address are a directory error: `unavailable`
// (4xx until someone fixes it), not a guess.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { InvalidCredentialsError, NoSuchObjectError, ResultCodeError, SizeLimitExceededError, type Client } from 'ldapts';
import type { LdapOptions } from '../config/types.js';
import { allOf, anyOf, equalityFilter, objectClassFilter } from './ldap-filter.js';
import { directoryUserOf, entryKind, groupMembersOf, recipientAttributes, recipientOf, type LdapEntry } from './ldap-entries.js';
import { LdapPool, LdapUnavailableError, type LdapCredentials, type LdapPoolEvent } from './ldap-pool.js';
import { addressParts } from './local-part.js';
import { passwordProblem } from './password-hash.js';
import { prefetch } from './prefetch.js';
import { decideSender } from './sender-ownership.js';
import { TtlCache } from './ttl-cache.js';
import type { AddressesResult, AuthResult, DirectoryUser, ListMember, RecipientDirectory, RecipientLookup, SenderDecision, UserDirectory } from './types.js';

export interface LdapDirectoryOptions {
  now?: () => number;
  /** Connections made, lost and refused (for the log; never a password). */
  onEvent?(event: LdapPoolEvent & { pool: 'search' | 'auth' | 'domains' }): void;
}

/** Counters for the log, metrics and the benchmark. */
export interface LdapDirectoryStats {
  searches: number;
  cacheHits: number;
  unavailable: number;
}

type Search = { ok: true; entries: LdapEntry[] } | { ok: false; why: string };
type Login = { kind: 'found'; dn: string; user: DirectoryUser } | { kind: 'none' } | { kind: 'unavailable'; why: string };
type Cached = RecipientLookup | Login;

/** DN members resolved at once while a group is read. */
const MEMBER_LOOKAHEAD = 16;
const MAX_LOGIN = 256;

export class LdapDirectory implements UserDirectory, RecipientDirectory {
  readonly source = 'ldap';
  readonly stats: LdapDirectoryStats = { searches: 0, cacheHits: 0, unavailable: 0 };
  private readonly pool: LdapPool;
  private readonly authPool: LdapPool;
  private readonly cache: TtlCache<Cached>;
  private readonly inFlight = new Map<string, Promise<Cached>>();
  private readonly recipientClasses: string;
  /** Where an unknown login's password is tried, so that it costs a bind like a known one. */
  private readonly dummyDn: string;

  constructor(
    private readonly options: LdapOptions,
    opts: LdapDirectoryOptions = {},
  ) {
    const now = opts.now ?? Date.now;
    const poolOptions = {
      servers: options.servers,
      timeoutMs: options.timeoutMs,
      reconnectMinMs: options.reconnectMinMs,
      reconnectMaxMs: options.reconnectMaxMs,
      credentials: () => ldapCredentials(options),
      now,
    };
    this.pool = new LdapPool({ ...poolOptions, size: options.connections, onEvent: (e) => opts.onEvent?.({ ...e, pool: 'search' }) });
    this.authPool = new LdapPool({ ...poolOptions, size: options.authConnections, exclusive: true, onEvent: (e) => opts.onEvent?.({ ...e, pool: 'auth' }) });
    this.cache = new TtlCache(options.cache.size, now);
    this.recipientClasses = objectClassFilter([...options.userObjectClasses, ...options.groupObjectClasses]);
    this.dummyDn = `${options.attributes.uid}=tsubame-no-such-user-${randomBytes(8).toString('hex')},${options.userRoot}`;
  }

  async close(): Promise<void> {
    await Promise.all([this.pool.close(), this.authPool.close()]);
  }

  // ------------------------------------------------------------ recipients

  async findRecipient(address: string): Promise<RecipientLookup> {
    const parts = addressParts(address.trim().replace(/^<(.*)>$/, '$1'));
    if (!parts) return { kind: 'none' };
    const full = `${parts.local}@${parts.domain}`;
    const found = (await this.cached(`r:${full.toLowerCase()}`, () => this.searchRecipient(full))) as RecipientLookup;
    if (found.kind !== 'none') return found;
    const plus = parts.local.indexOf('+');
    if (plus > 0) {
      // user+tag@domain: the entry of user@domain.
      const base = `${parts.local.slice(0, plus)}@${parts.domain}`;
      const tagged = (await this.cached(`r:${base.toLowerCase()}`, () => this.searchRecipient(base))) as RecipientLookup;
      if (tagged.kind !== 'none') return tagged;
    }
    // Messaging Server's catch-all: the entry with the address @domain (a mailAlternateAddress or
    // mailEquivalentAddress) gets the mail of the domain's addresses nobody else has.
    const catchAll = `@${parts.domain}`;
    return (await this.cached(`r:${catchAll.toLowerCase()}`, () => this.searchRecipient(catchAll))) as RecipientLookup;
  }

  async *listMembers(groupId: string): AsyncGenerator<ListMember> {
    const read = await this.search(groupId, 'base', '(objectClass=*)', [this.options.attributes.groupRfc822Member, this.options.attributes.groupDnMember], 1);
    if (!read.ok) {
      yield { kind: 'unavailable', why: read.why };
      return;
    }
    const entry = read.entries[0];
    if (!entry) {
      yield { kind: 'invalid', member: groupId, why: 'the group is no longer in the directory' };
      return;
    }
    const { addresses, dns } = groupMembersOf(entry, this.options.attributes);
    for (const raw of addresses) {
      const address = raw.trim().replace(/^mailto:/i, '');
      yield addressParts(address) ? { kind: 'address', address } : { kind: 'invalid', member: raw, why: 'not an address (local-part@domain)' };
    }
    async function* each(list: string[]) {
      yield* list;
    }
    for await (const { item, result } of prefetch(each(dns), (dn) => this.resolveDn(dn), MEMBER_LOOKAHEAD)) {
      yield { kind: 'resolved', member: item, lookup: await result! };
    }
  }

  private async searchRecipient(address: string): Promise<RecipientLookup> {
    const a = this.options.attributes;
    const filter = this.filter([this.recipientClasses, anyOf([a.mail, a.alternateAddress, a.equivalentAddress].map((attr) => equalityFilter(attr, address)))]);
    const result = await this.search(this.options.userRoot, 'sub', filter, recipientAttributes(a), 2);
    if (!result.ok) return { kind: 'unavailable', why: result.why };
    if (result.entries.length > 1) return this.unavailable(`${result.entries.length} entries have the address ${address}: ${result.entries.map((e) => e.dn).join('; ')}`);
    const entry = result.entries[0];
    return entry ? recipientOf(entry, this.options, address) : { kind: 'none' };
  }

  /** A DN member of a group: its entry as a recipient (none when it is gone or is neither a user nor a group). */
  private resolveDn(dn: string): Promise<RecipientLookup> {
    return this.cached(`d:${dn.toLowerCase()}`, async () => {
      const result = await this.search(dn, 'base', this.filter([this.recipientClasses]), recipientAttributes(this.options.attributes), 1);
      if (!result.ok) return { kind: 'unavailable', why: result.why };
      const entry = result.entries[0];
      return entry ? recipientOf(entry, this.options, dn) : { kind: 'none' };
    }) as Promise<RecipientLookup>;
  }

  // ------------------------------------------------------------ users (AUTH, sender ownership)

  async authenticate(login: string, password: string): Promise<AuthResult> {
    const found = await this.findLogin(login);
    if (found.kind === 'unavailable') return { ok: false, reason: 'unavailable', why: found.why };
    // An empty password would be an anonymous bind that succeeds (RFC 4513 §5.1.2): never sent. Such
    // a password, and an unknown login, still cost a bind (a random password, a DN that does not exist).
    const acceptable = passwordProblem(password) === null;
    const dn = found.kind === 'found' ? found.dn : this.dummyDn;
    const bound = await this.bindAs(dn, acceptable ? password : randomBytes(18).toString('base64'));
    if (bound.kind === 'unavailable') return { ok: false, reason: 'unavailable', why: bound.why };
    if (found.kind === 'none') return { ok: false, reason: 'invalid', why: 'unknown-user' };
    if (!acceptable || bound.kind === 'invalid') return { ok: false, reason: 'invalid', why: 'wrong-password' };
    if (bound.kind === 'refused') return { ok: false, reason: 'invalid', why: 'locked' };
    return { ok: true, user: found.user };
  }

  async addressesOf(login: string): Promise<AddressesResult> {
    const found = await this.findLogin(login);
    if (found.kind === 'unavailable') return { ok: false, reason: 'unavailable', why: found.why };
    if (found.kind === 'none') return { ok: false, reason: 'unknown-user' };
    return { ok: true, addresses: [...found.user.addresses] };
  }

  /** A directory user owns the addresses of its entry (and their +tag forms); no address is owned by its uid alone. */
  async maySendAs(user: DirectoryUser, address: string): Promise<SenderDecision> {
    return decideSender(user, address, () => null);
  }

  /** The user entry a login names: a uid, or an address of the entry. */
  private findLogin(login: string): Promise<Login> {
    if (login.length === 0 || login.length > MAX_LOGIN || /[\x00-\x1f\x7f]/.test(login)) return Promise.resolve({ kind: 'none' });
    return this.cached(`l:${login.toLowerCase()}`, async (): Promise<Login> => {
      const a = this.options.attributes;
      const which = login.includes('@') ? anyOf([a.mail, a.alternateAddress, a.equivalentAddress].map((attr) => equalityFilter(attr, login))) : equalityFilter(a.uid, login);
      const result = await this.search(this.options.userRoot, 'sub', this.filter([objectClassFilter(this.options.userObjectClasses), which]), recipientAttributes(a), 2);
      if (!result.ok) return { kind: 'unavailable', why: result.why };
      if (result.entries.length > 1) return this.unavailable(`${result.entries.length} users match the login ${login}`);
      const entry = result.entries[0];
      if (!entry || entryKind(entry, this.options) !== 'user') return { kind: 'none' };
      return { kind: 'found', dn: entry.dn, user: directoryUserOf(entry, a) };
    }) as Promise<Login>;
  }

  private async bindAs(dn: string, password: string): Promise<{ kind: 'ok' | 'invalid' } | { kind: 'refused'; why: string } | { kind: 'unavailable'; why: string }> {
    try {
      await this.authPool.run((client: Client) => client.bind(dn, password));
      return { kind: 'ok' };
    } catch (err) {
      if (err instanceof InvalidCredentialsError) return { kind: 'invalid' };
      if (err instanceof ResultCodeError) return { kind: 'refused', why: err.message };
      this.stats.unavailable++;
      return { kind: 'unavailable', why: (err as Error).message };
    }
  }

  // ------------------------------------------------------------ plumbing

  /** The filters and LDAP_SEARCH_FILTER, all required. */
  private filter(parts: string[]): string {
    return allOf(this.options.searchFilter ? [...parts, this.options.searchFilter] : parts);
  }

  private async search(base: string, scope: 'base' | 'sub', filter: string, attributes: string[], sizeLimit: number): Promise<Search> {
    this.stats.searches++;
    try {
      const timeLimit = Math.max(1, Math.ceil(this.options.timeoutMs / 1000));
      const { searchEntries } = await this.pool.run((client) => client.search(base, { scope, filter, attributes, sizeLimit, timeLimit }));
      return { ok: true, entries: searchEntries };
    } catch (err) {
      // A DN member that is gone; the user root itself missing is a configuration error, not "no such user".
      if (err instanceof NoSuchObjectError && scope === 'base') return { ok: true, entries: [] };
      this.stats.unavailable++;
      if (err instanceof SizeLimitExceededError) return { ok: false, why: `more than ${sizeLimit} entries match ${filter} under ${base}` };
      if (err instanceof NoSuchObjectError) return { ok: false, why: `LDAP_USER_ROOT ${base} does not exist on the server` };
      if (err instanceof LdapUnavailableError) return { ok: false, why: err.message };
      return { ok: false, why: `LDAP search failed: ${(err as Error).message}` };
    }
  }

  private unavailable(why: string): { kind: 'unavailable'; why: string } {
    this.stats.unavailable++;
    return { kind: 'unavailable', why };
  }

  /** The cached answer, else one search shared by concurrent callers; `unavailable` is never kept. */
  private async cached(key: string, lookup: () => Promise<Cached>): Promise<Cached> {
    const hit = this.cache.get(key);
    if (hit) {
      this.stats.cacheHits++;
      return hit;
    }
    const running = this.inFlight.get(key);
    if (running) return running;
    const p = lookup().finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    const value = await p;
    const c = this.options.cache;
    if (value.kind === 'none') {
      if (c.negative) this.cache.set(key, value, c.negativeTtlMs);
    } else if (value.kind !== 'unavailable') this.cache.set(key, value, c.ttlMs);
    return value;
  }


}

/** What the pooled connections bind as: LDAP_USERNAME with the first line of LDAP_PASSWORD_FILE, read for each new connection; null: anonymous. */
export async function ldapCredentials(options: Pick<LdapOptions, 'bindDn' | 'passwordFile'>): Promise<LdapCredentials | null> {
  const { bindDn, passwordFile } = options;
  if (!bindDn) return null;
  if (!passwordFile) throw new Error('LDAP_USERNAME is set without LDAP_PASSWORD_FILE');
  let text: string;
  try {
    text = await readFile(passwordFile, 'utf8');
  } catch (err) {
    throw new Error(`cannot read LDAP_PASSWORD_FILE ${passwordFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  const password = text.split(/\r?\n/)[0] ?? '';
  if (password === '') throw new Error(`LDAP_PASSWORD_FILE ${passwordFile} is empty`);
  return { dn: bindDn, password };
}
