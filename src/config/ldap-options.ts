// The LDAP options of option.dat (issue 19): servers, bind DN and password file, base DN and
// filter, attribute names, cache, pool and timeouts, checked with file:line diagnostics. Messaging
// Server's option names where it has them (LDAP_HOST, LDAP_PORT, LDAP_USERNAME, LDAP_TIMEOUT,
// LDAP_USER_ROOT, the LDAP_* attribute options, ALIAS_ENTRY_CACHE_*); tsubame's own for the rest.
// The password itself never enters the configuration: only the name of the file that holds it.
import { closeSync, fstatSync, openSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { FilterParser } from 'ldapts';
import type { OptionEntry, OptionReader } from './option-file.js';
import type { LdapAttributes, LdapOptions } from './types.js';

/** Attribute options with Messaging Server's names and its schema's attributes as defaults. */
const LDAP_ATTRIBUTE_OPTIONS: Readonly<Record<string, keyof LdapAttributes>> = {
  LDAP_UID: 'uid',
  LDAP_PRIMARY_ADDRESS: 'mail',
  LDAP_ALIAS_ADDRESSES: 'alternateAddress',
  LDAP_EQUIVALENCE_ADDRESSES: 'equivalentAddress',
  LDAP_FORWARDING_ADDRESS: 'forwardingAddress',
  LDAP_DELIVERY_OPTION: 'deliveryOption',
  LDAP_GROUP_RFC822: 'groupRfc822Member',
  LDAP_GROUP_DN: 'groupDnMember',
  LDAP_ERRORS_TO: 'errorsTo',
};

export const LDAP_DEFAULTS = {
  attributes: {
    uid: 'uid',
    mail: 'mail',
    alternateAddress: 'mailAlternateAddress',
    equivalentAddress: 'mailEquivalentAddress',
    forwardingAddress: 'mailForwardingAddress',
    deliveryOption: 'mailDeliveryOption',
    groupRfc822Member: 'mgrpRFC822MailMember',
    groupDnMember: 'uniqueMember',
    errorsTo: 'mgrpErrorsTo',
  } satisfies LdapAttributes,
  LDAP_PORT: 389,
  LDAP_TIMEOUT: 5,
  LDAP_CONNECTIONS: 4,
  LDAP_AUTH_CONNECTIONS: 2,
  LDAP_RECONNECT_MIN: 0.5,
  LDAP_RECONNECT_MAX: 30,
  LDAP_USER_OBJECT_CLASSES: 'inetMailUser',
  LDAP_GROUP_OBJECT_CLASSES: 'inetMailGroup',
  ALIAS_ENTRY_CACHE_SIZE: 10000,
  ALIAS_ENTRY_CACHE_TIMEOUT: 600,
  ALIAS_ENTRY_CACHE_NEGATIVE: 1,
  ALIAS_ENTRY_CACHE_NEGATIVE_TIMEOUT: 60,
  LDAP_DOMAIN_OBJECT_CLASSES: 'sunManagedOrganization, domain',
  LDAP_ATTR_DOMAIN1_SCHEMA2: 'sunPreferredDomain',
  LDAP_ATTR_DOMAIN2_SCHEMA2: 'associatedDomain',
  DOMAIN_MATCH_CACHE_TIMEOUT: 600,
} as const;

const OWN_KEYS = [
  'LDAP_HOST', 'LDAP_PORT', 'LDAP_USERNAME', 'LDAP_PASSWORD', 'LDAP_PASSWORD_FILE', 'LDAP_TIMEOUT', 'LDAP_USER_ROOT', 'LDAP_SEARCH_FILTER',
  'LDAP_CONNECTIONS', 'LDAP_AUTH_CONNECTIONS', 'LDAP_RECONNECT_MIN', 'LDAP_RECONNECT_MAX', 'LDAP_USER_OBJECT_CLASSES', 'LDAP_GROUP_OBJECT_CLASSES',
  'ALIAS_ENTRY_CACHE_SIZE', 'ALIAS_ENTRY_CACHE_TIMEOUT', 'ALIAS_ENTRY_CACHE_NEGATIVE', 'ALIAS_ENTRY_CACHE_NEGATIVE_TIMEOUT',
  'LDAP_DOMAIN_ROOT', 'LDAP_DOMAIN_OBJECT_CLASSES', 'LDAP_ATTR_DOMAIN1_SCHEMA2', 'LDAP_ATTR_DOMAIN2_SCHEMA2', 'DOMAIN_MATCH_CACHE_TIMEOUT',
];
/** Every option this file reads. */
export const LDAP_KEYS: readonly string[] = [...OWN_KEYS, ...Object.keys(LDAP_ATTRIBUTE_OPTIONS)];

/** The longest delay a timer takes (about 24.8 days), in seconds. */
const MAX_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/** The LDAP options, or null when LDAP_HOST is not set (the other LDAP_* options then only warn). */
export function parseLdapOptions(o: ReadonlyMap<string, OptionEntry>, reader: OptionReader): LdapOptions | null {
  const host = o.get('LDAP_HOST');
  const password = o.get('LDAP_PASSWORD');
  if (password) reader.error(password, 'LDAP_PASSWORD is not read from option.dat (others may read it): put the password in a file only the MTA can read and name it with LDAP_PASSWORD_FILE');
  if (!host || host.value.trim() === '') {
    for (const key of LDAP_KEYS) {
      const e = o.get(key);
      if (e && key !== 'LDAP_HOST' && key !== 'LDAP_PASSWORD' && !key.startsWith('ALIAS_ENTRY_CACHE') && !key.startsWith('DOMAIN_MATCH_CACHE')) reader.warning(e, `${key} has no effect without LDAP_HOST`);
    }
    return null;
  }
  const port = reader.integer(o.get('LDAP_PORT'), LDAP_DEFAULTS.LDAP_PORT, 1, 65535);
  const servers: string[] = [];
  for (const item of host.value.split(/[\s,]+/).filter(Boolean)) {
    const url = serverUrl(item, port);
    if (url) servers.push(url);
    else reader.error(host, `LDAP_HOST: "${item}" is not host, host:port, [IPv6]:port, ldap://host[:port] or ldaps://host[:port]`);
  }

  const userRootEntry = o.get('LDAP_USER_ROOT');
  const userRoot = userRootEntry?.value.trim() ?? '';
  if (!userRootEntry || userRoot === '') reader.error(host, 'LDAP_HOST needs LDAP_USER_ROOT, the base DN of the users and groups (such as o=example.com or ou=People,dc=example,dc=com)');
  else if (!looksLikeDn(userRoot)) reader.error(userRootEntry, `LDAP_USER_ROOT "${userRoot.slice(0, 80)}" is not a DN (attribute=value, …)`);

  const bindEntry = o.get('LDAP_USERNAME');
  const bindDn = bindEntry?.value.trim() || null;
  if (bindEntry && bindDn && !looksLikeDn(bindDn)) reader.error(bindEntry, `LDAP_USERNAME "${bindDn.slice(0, 80)}" is not a DN (attribute=value, …)`);
  const passwordFile = passwordFileOf(o.get('LDAP_PASSWORD_FILE'), reader);
  if (bindDn && !passwordFile && !o.get('LDAP_PASSWORD_FILE')) reader.error(bindEntry!, 'LDAP_USERNAME needs LDAP_PASSWORD_FILE (a bind DN with an empty password is an anonymous bind)');
  if (!bindDn && o.get('LDAP_PASSWORD_FILE')) reader.error(o.get('LDAP_PASSWORD_FILE')!, 'LDAP_PASSWORD_FILE needs LDAP_USERNAME, the DN to bind as');

  const filterEntry = o.get('LDAP_SEARCH_FILTER');
  let searchFilter: string | null = filterEntry?.value.trim() || null;
  if (filterEntry && searchFilter) {
    try {
      if (!searchFilter.startsWith('(')) throw new Error('it must be in parentheses');
      FilterParser.parseString(searchFilter);
    } catch (err) {
      reader.error(filterEntry, `LDAP_SEARCH_FILTER "${searchFilter.slice(0, 80)}" is not an LDAP filter (RFC 4515): ${(err as Error).message.slice(0, 120)}`);
      searchFilter = null;
    }
  }

  const attributes: LdapAttributes = { ...LDAP_DEFAULTS.attributes };
  for (const [key, field] of Object.entries(LDAP_ATTRIBUTE_OPTIONS)) {
    const e = o.get(key);
    if (!e) continue;
    const name = e.value.trim();
    if (isAttributeName(name)) attributes[field] = name;
    else reader.error(e, `${key} must name an LDAP attribute (letters, digits and -, or an OID), found "${e.value.slice(0, 80)}"`);
  }

  const seconds = (key: keyof typeof LDAP_DEFAULTS, minSeconds: number): number => {
    const fallback = (LDAP_DEFAULTS[key] as number) * 1000;
    const e = o.get(key);
    if (!e) return fallback;
    const v = Number(e.value);
    if (e.value.trim() === '' || !(v >= minSeconds) || !(v <= MAX_SECONDS)) {
      reader.error(e, `${key} must be a number of seconds from ${minSeconds} to ${MAX_SECONDS}, found "${e.value}"`);
      return fallback;
    }
    return Math.round(v * 1000);
  };
  const reconnectMinMs = seconds('LDAP_RECONNECT_MIN', 0.001);
  let reconnectMaxMs = seconds('LDAP_RECONNECT_MAX', 0.001);
  if (reconnectMaxMs < reconnectMinMs) {
    reader.error(o.get('LDAP_RECONNECT_MAX') ?? o.get('LDAP_RECONNECT_MIN')!, 'LDAP_RECONNECT_MAX must not be less than LDAP_RECONNECT_MIN');
    reconnectMaxMs = reconnectMinMs;
  }
  const negative = o.get('ALIAS_ENTRY_CACHE_NEGATIVE');
  if (negative && !/^[01]$/.test(negative.value.trim())) reader.error(negative, `ALIAS_ENTRY_CACHE_NEGATIVE must be 0 or 1, found "${negative.value}"`);

  return {
    servers,
    bindDn,
    passwordFile,
    userRoot,
    searchFilter,
    timeoutMs: seconds('LDAP_TIMEOUT', 0.001),
    connections: reader.integer(o.get('LDAP_CONNECTIONS'), LDAP_DEFAULTS.LDAP_CONNECTIONS, 1, 64),
    authConnections: reader.integer(o.get('LDAP_AUTH_CONNECTIONS'), LDAP_DEFAULTS.LDAP_AUTH_CONNECTIONS, 1, 64),
    reconnectMinMs,
    reconnectMaxMs,
    cache: {
      size: reader.integer(o.get('ALIAS_ENTRY_CACHE_SIZE'), LDAP_DEFAULTS.ALIAS_ENTRY_CACHE_SIZE, 0, 10_000_000),
      ttlMs: seconds('ALIAS_ENTRY_CACHE_TIMEOUT', 0),
      negative: negative ? negative.value.trim() !== '0' : LDAP_DEFAULTS.ALIAS_ENTRY_CACHE_NEGATIVE === 1,
      negativeTtlMs: seconds('ALIAS_ENTRY_CACHE_NEGATIVE_TIMEOUT', 0),
    },
    userObjectClasses: objectClassSets(o.get('LDAP_USER_OBJECT_CLASSES'), LDAP_DEFAULTS.LDAP_USER_OBJECT_CLASSES, reader),
    groupObjectClasses: objectClassSets(o.get('LDAP_GROUP_OBJECT_CLASSES'), LDAP_DEFAULTS.LDAP_GROUP_OBJECT_CLASSES, reader),
    attributes,
    domains: {
      root: domainRootOf(o.get('LDAP_DOMAIN_ROOT'), userRoot, reader),
      objectClasses: objectClassSets(o.get('LDAP_DOMAIN_OBJECT_CLASSES'), LDAP_DEFAULTS.LDAP_DOMAIN_OBJECT_CLASSES, reader),
      attributes: [...new Set((['LDAP_ATTR_DOMAIN1_SCHEMA2', 'LDAP_ATTR_DOMAIN2_SCHEMA2'] as const).map((key) => attributeOption(o.get(key), LDAP_DEFAULTS[key], reader)))],
      refreshMs: seconds('DOMAIN_MATCH_CACHE_TIMEOUT', 1),
    },
  };
}

/**
 * LDAP_DOMAIN_ROOT, where the hosted domains are searched (Messaging Server's ugldapbasedn, the
 * root of its DC tree or of its Schema 2 organisations); by default the dc= suffix of
 * LDAP_USER_ROOT (ou=People,dc=example,dc=com → dc=example,dc=com), else LDAP_USER_ROOT itself.
 */
function domainRootOf(entry: OptionEntry | undefined, userRoot: string, reader: OptionReader): string {
  const value = entry?.value.trim() ?? '';
  if (entry && value !== '') {
    if (looksLikeDn(value)) return value;
    reader.error(entry, `LDAP_DOMAIN_ROOT "${value.slice(0, 80)}" is not a DN (attribute=value, …)`);
  }
  const rdns = userRoot.split(',');
  let first = rdns.length;
  while (first > 0 && /^\s*dc\s*=/i.test(rdns[first - 1]!)) first--;
  return first < rdns.length ? rdns.slice(first).map((r) => r.trim()).join(',') : userRoot;
}

function attributeOption(entry: OptionEntry | undefined, fallback: string, reader: OptionReader): string {
  if (!entry) return fallback;
  const name = entry.value.trim();
  if (isAttributeName(name)) return name;
  reader.error(entry, `${entry.key} must name an LDAP attribute (letters, digits and -, or an OID), found "${entry.value.slice(0, 80)}"`);
  return fallback;
}

/** `host`, `host:port`, `[v6]:port`, an IPv6 address, or an ldap:// / ldaps:// URL (no DN part) → a URL; null if malformed. */
export function serverUrl(item: string, defaultPort: number): string | null {
  const hostRe = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;
  const portOk = (p: string) => /^\d{1,5}$/.test(p) && Number(p) >= 1 && Number(p) <= 65535;
  const url = /^(ldaps?):\/\/([^/?#]+)\/?$/i.exec(item);
  const scheme = url ? url[1]!.toLowerCase() : 'ldap';
  const hostPort = url ? url[2]! : item;
  const port0 = scheme === 'ldaps' && url ? 636 : defaultPort;
  const bracketed = /^\[([0-9A-Fa-f:.]+)\](?::(\d+))?$/.exec(hostPort);
  if (bracketed) return bracketed[2] === undefined || portOk(bracketed[2]) ? `${scheme}://[${bracketed[1]}]:${bracketed[2] ?? port0}` : null;
  if ((hostPort.match(/:/g) ?? []).length > 1) return /^[0-9A-Fa-f:.]+$/.test(hostPort) ? `${scheme}://[${hostPort}]:${port0}` : null;
  const [name, port] = hostPort.split(':') as [string, string | undefined];
  if (!hostRe.test(name) || (port !== undefined && !portOk(port))) return null;
  return `${scheme}://${name}:${port ?? port0}`;
}

/** `cls+cls, cls+cls`: any one set matches, when the entry has every class of it. */
function objectClassSets(entry: OptionEntry | undefined, fallback: string, reader: OptionReader): string[][] {
  const parse = (text: string) => text.split(',').map((set) => set.split('+').map((c) => c.trim()));
  if (!entry) return parse(fallback);
  const sets = parse(entry.value);
  if (sets.some((s) => !s.every(isAttributeName))) {
    reader.error(entry, `${entry.key} must be object class names joined by + in sets separated by commas (such as inetLocalMailRecipient+inetMailUser), found "${entry.value.slice(0, 80)}"`);
    return parse(fallback);
  }
  return sets;
}

function isAttributeName(name: string): boolean {
  return /^[A-Za-z][A-Za-z0-9-]{0,63}$/.test(name) || /^\d+(\.\d+)+$/.test(name);
}

/** attribute=value pairs separated by commas: enough to catch a host name or a filter in the wrong option. */
function looksLikeDn(text: string): boolean {
  return /^[A-Za-z][A-Za-z0-9-]*=[^,]/.test(text) && !text.startsWith('(');
}

/** Absolute path of the password file (relative: to option.dat's directory); checked readable, warned when others can read it. */
function passwordFileOf(entry: OptionEntry | undefined, reader: OptionReader): string | null {
  const value = entry?.value.trim();
  if (!entry || !value) return null;
  const path = isAbsolute(value) ? value : resolve(dirname(entry.file), value);
  let mode: number;
  let size: number;
  try {
    const fd = openSync(path, 'r');
    try {
      const st = fstatSync(fd);
      [mode, size] = [st.mode, st.size];
      if (!st.isFile()) throw Object.assign(new Error('not a file'), { code: 'not a regular file' });
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    reader.error(entry, `LDAP_PASSWORD_FILE ${path}: cannot read it: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    return path;
  }
  if (size === 0) reader.error(entry, `LDAP_PASSWORD_FILE ${path} is empty (an empty password is an anonymous bind)`);
  const octal = (mode & 0o777).toString(8).padStart(4, '0');
  if (mode & 0o004) reader.warning(entry, `LDAP_PASSWORD_FILE ${path} is readable by every user of the host (mode ${octal}): chmod 600 (or 640 with the service's group)`);
  return path;
}
