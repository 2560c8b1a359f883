// etc/dispatcher.cnf: global options inherited by every `[SERVICE=NAME]` section (reference §1).
// Defaults are Messaging Server's shipped values (DESIGN.md).
import net from 'node:net';
import { parseCidr } from '../common/cidr.js';
import { OptionReader, readOptionFile, type OptionEntry } from './option-file.js';
import type { AcceptMode, BlocklistConfig, Cidr, Diagnostic, DispatcherConfig, DispatcherService, ProxyProtocolConfig } from './types.js';

export const DISPATCHER_DEFAULTS = {
  PORT: 25,
  MIN_PROCS: 0,
  MAX_PROCS: 5,
  MIN_CONNS: 5,
  MAX_CONNS: 20,
  MAX_HANDOFFS: 5,
  MAX_LIFE_TIME: 86400,
  MAX_LIFE_CONNS: 100,
  MAX_IDLE_TIME: 0,
  MAX_SHUTDOWN: 2,
} as const;

/** DNS blocklist options: RBL_TIMEOUT and RBL_FAIL_CLOSED are tsubame's (Messaging Server has no such knobs). */
const RBL_DEFAULTS: { ENABLE_RBL: 0 | 1; RBL_TIMEOUT: number; RBL_FAIL_CLOSED: 0 | 1 } = { ENABLE_RBL: 0, RBL_TIMEOUT: 5, RBL_FAIL_CLOSED: 0 };
/**
 * The PROXY protocol from a load balancer (tsubame's options; Messaging Server 8.1 has only the
 * v1-only channel keyword `proxyprotocol`, with no list of balancers). PROXY_TIMEOUT is Postfix's
 * smtpd_upstream_proxy_timeout (5 s).
 */
const PROXY_DEFAULTS = { PROXY_PROTOCOL: 0, PROXY_TIMEOUT: 5, MAX_HEADER_BYTES: 1024 } as const;
/** Most DNS_VERIFY_DOMAIN zones per service (Messaging Server checks up to 5; each costs two queries per connection). */
const MAX_RBL_ZONES = 8;
/** Options that may be given several times: every line counts (comma lists too). */
const REPEATABLE = new Set(['PARAMETER', 'DNS_VERIFY_DOMAIN']);

/** ACCEPT_MODE values (tsubame's option: Messaging Server's dispatcher always hands connections over). */
const ACCEPT_MODES = { SHARED: 'shared', HANDOFF: 'handoff' } as const;
const DEFAULT_ACCEPT_MODE = 'SHARED';

const KNOWN = new Set(['PORT', 'ACCEPT_MODE', 'TLS_PORT', 'INTERFACE_ADDRESS', 'IMAGE', 'LOGFILE', 'PARAMETER', 'STACKSIZE', 'BACKLOG', 'USER', 'DEBUG', 'DNS_VERIFY_DOMAIN', 'HISTORICAL_TIME', 'PROXY_PROTOCOL', 'PROXY_TRUSTED', 'PROXY_TIMEOUT', ...Object.keys(RBL_DEFAULTS), ...Object.keys(DISPATCHER_DEFAULTS)]);
const IGNORED = new Set(['IMAGE', 'LOGFILE', 'STACKSIZE', 'USER', 'DEBUG', 'HISTORICAL_TIME']);

export function parseDispatcherCnf(file: string, diagnostics: Diagnostic[]): DispatcherConfig {
  const parsed = readOptionFile(file, { commentChars: '!', sectionTypes: ['SERVICE'] }, diagnostics);
  const reader = new OptionReader(diagnostics);
  const globals = reader.collect(parsed.globals.filter((e) => !REPEATABLE.has(e.key)), KNOWN, 'dispatcher.cnf globals');
  const globalParameters = parsed.globals.filter((e) => e.key === 'PARAMETER');
  const globalZones = parsed.globals.filter((e) => e.key === 'DNS_VERIFY_DOMAIN');
  for (const [key, entry] of globals) if (IGNORED.has(key)) reader.warning(entry, `${key} is accepted for compatibility and has no effect in tsubame`);
  const services: DispatcherService[] = [];
  for (const section of parsed.sections) {
    const name = section.name.toUpperCase();
    if (services.some((s) => s.name === name)) {
      reader.error(section, `[SERVICE=${name}] appears twice`);
      continue;
    }
    if (name === 'DISPATCHER') continue; // PMDF's section for the dispatcher's own options
    const own = reader.collect(section.entries.filter((e) => !REPEATABLE.has(e.key)), KNOWN, `[SERVICE=${name}]`);
    const o = new Map([...globals, ...own]);
    for (const [key, entry] of own) if (IGNORED.has(key)) reader.warning(entry, `${key} is accepted for compatibility and has no effect in tsubame`);
    const parameters = parseParameters([...globalParameters, ...section.entries.filter((e) => e.key === 'PARAMETER')], reader);
    const int = (key: keyof typeof DISPATCHER_DEFAULTS, min: number, max?: number) => reader.integer(o.get(key), DISPATCHER_DEFAULTS[key], min, max);
    // TLS_PORT (Messaging Server's): ports where TLS starts at connect, SMTPS (RFC 8314). A service
    // with TLS_PORT and no PORT listens on those alone; with neither it listens on 25.
    const tlsPorts = o.has('TLS_PORT') ? parsePorts(o.get('TLS_PORT'), reader, 'TLS_PORT') : [];
    const plainPorts = o.has('PORT') || !o.has('TLS_PORT') ? parsePorts(o.get('PORT'), reader, 'PORT') : [];
    const both = plainPorts.find((p) => tlsPorts.includes(p));
    if (both !== undefined) reader.error(o.get('TLS_PORT')!, `port ${both} is in both PORT and TLS_PORT: a port either starts in plaintext (STARTTLS) or with TLS`);
    const ports = [...plainPorts, ...tlsPorts.filter((p) => !plainPorts.includes(p))];
    const iface = o.get('INTERFACE_ADDRESS');
    let interfaceAddress: string | null = null;
    if (iface && !/^(ANY|ALL)$/i.test(iface.value)) {
      if (net.isIP(iface.value) === 0) reader.error(iface, `INTERFACE_ADDRESS must be an IP address, found "${iface.value}"`);
      else interfaceAddress = iface.value;
    }
    const minProcs = int('MIN_PROCS', 0, 1000);
    const maxProcs = int('MAX_PROCS', 1, 1000);
    const minConns = int('MIN_CONNS', 1, 100000);
    const maxConns = int('MAX_CONNS', 1, 100000);
    if (minProcs > maxProcs) reader.error(o.get('MIN_PROCS') ?? section, `MIN_PROCS (${minProcs}) is above MAX_PROCS (${maxProcs})`);
    if (minConns > maxConns) reader.error(o.get('MIN_CONNS') ?? section, `MIN_CONNS (${minConns}) is above MAX_CONNS (${maxConns})`);
    services.push({
      name,
      ports,
      ...(tlsPorts.length > 0 ? { tlsPorts: tlsPorts.filter((p) => !plainPorts.includes(p)) } : {}),
      interfaceAddress,
      minProcs,
      maxProcs,
      minConns,
      maxConns,
      maxHandoffs: int('MAX_HANDOFFS', 1, 1000),
      backlog: reader.integer(o.get('BACKLOG'), Math.max(5, maxConns * maxProcs), 1, 65535),
      maxLifeTimeSec: int('MAX_LIFE_TIME', 0),
      maxLifeConns: int('MAX_LIFE_CONNS', 0),
      maxIdleTimeSec: int('MAX_IDLE_TIME', 0),
      maxShutdown: int('MAX_SHUTDOWN', 0, 1000),
      acceptMode: parseAcceptMode(o.get('ACCEPT_MODE'), reader),
      parameters,
      channel: parameters.CHANNEL ?? (name === 'LMTP' ? 'tcp_lmtp' : 'tcp_local'),
      lmtp: name === 'LMTP' || parameters.LMTP === '1',
      rbl: parseBlocklist(o, ownOrGlobal(section.entries.filter((e) => e.key === 'DNS_VERIFY_DOMAIN'), globalZones), section, reader),
      proxy: parseProxyProtocol(o, own, reader),
      file: section.file,
      line: section.line,
    });
  }
  checkPortClashes(services, reader);
  return { services };
}

/** ACCEPT_MODE=SHARED (default) or HANDOFF, in any case. */
function parseAcceptMode(entry: OptionEntry | undefined, reader: OptionReader): AcceptMode {
  const value = (entry?.value.trim() ?? DEFAULT_ACCEPT_MODE).toUpperCase();
  const mode = ACCEPT_MODES[value as keyof typeof ACCEPT_MODES];
  if (mode) return mode;
  reader.error(entry!, `ACCEPT_MODE must be SHARED (the server processes accept from the listening socket) or HANDOFF (the dispatcher hands every connection over), found "${entry!.value}"`);
  return ACCEPT_MODES[DEFAULT_ACCEPT_MODE];
}

/** A service's own lines of a repeatable option replace the global ones. */
function ownOrGlobal(own: OptionEntry[], global: OptionEntry[]): OptionEntry[] {
  return own.length ? own : global;
}

/**
 * ENABLE_RBL, DNS_VERIFY_DOMAIN (one zone a line, or a comma list; several lines add up),
 * RBL_TIMEOUT (seconds) and RBL_FAIL_CLOSED. Zones without ENABLE_RBL=1 are kept but not checked.
 */
function parseBlocklist(o: Map<string, OptionEntry>, zoneEntries: OptionEntry[], section: { file: string; line: number }, reader: OptionReader): BlocklistConfig {
  const flag = (key: 'ENABLE_RBL' | 'RBL_FAIL_CLOSED'): boolean => {
    const e = o.get(key);
    if (!e) return RBL_DEFAULTS[key] === 1;
    if (!/^[01]$/.test(e.value.trim())) {
      reader.error(e, `${key} must be 0 or 1, found "${e.value}"`);
      return RBL_DEFAULTS[key] === 1;
    }
    return e.value.trim() === '1';
  };
  const zones: string[] = [];
  let overflow = false;
  for (const e of zoneEntries) {
    for (const item of e.value.split(/[,\s]+/).filter(Boolean)) {
      const zone = item.toLowerCase().replace(/\.$/, '');
      if (!isZoneName(zone)) reader.error(e, `DNS_VERIFY_DOMAIN: "${item}" is not a DNS zone name (such as zen.spamhaus.org)`);
      else if (zones.includes(zone)) reader.warning(e, `DNS_VERIFY_DOMAIN: ${zone} is listed twice (checked once)`);
      else if (zones.length < MAX_RBL_ZONES) zones.push(zone);
      else if (!overflow) {
        overflow = true;
        reader.error(e, `DNS_VERIFY_DOMAIN: more than ${MAX_RBL_ZONES} zones (from "${item}" on); each costs two DNS queries per connection`);
      }
    }
  }
  const enabled = flag('ENABLE_RBL');
  if (enabled && zones.length === 0) reader.warning(o.get('ENABLE_RBL') ?? section, 'ENABLE_RBL=1 without DNS_VERIFY_DOMAIN: no blocklist is checked');
  let timeoutMs = RBL_DEFAULTS.RBL_TIMEOUT * 1000;
  const t = o.get('RBL_TIMEOUT');
  if (t) {
    const v = Number(t.value.trim());
    if (t.value.trim() === '' || !(v > 0) || v > 300) reader.error(t, `RBL_TIMEOUT must be a number of seconds above 0 and at most 300, found "${t.value}"`);
    else timeoutMs = Math.round(v * 1000);
  }
  return { enabled, zones, timeoutMs, failClosed: flag('RBL_FAIL_CLOSED') };
}

/**
 * PROXY_PROTOCOL (0, 1 = either version, V1, V2), PROXY_TRUSTED (the balancers: addresses and
 * networks, comma or space separated; required with PROXY_PROTOCOL) and PROXY_TIMEOUT (seconds).
 * `own` holds the section's own lines: a PROXY_TRUSTED or PROXY_TIMEOUT there without
 * PROXY_PROTOCOL is a mistake worth a warning; in the globals it just serves the services that use it.
 */
function parseProxyProtocol(o: Map<string, OptionEntry>, own: Map<string, OptionEntry>, reader: OptionReader): ProxyProtocolConfig | null {
  const mode = o.get('PROXY_PROTOCOL');
  const value = mode?.value.trim().toUpperCase() ?? String(PROXY_DEFAULTS.PROXY_PROTOCOL);
  const versions = ({ '1': 'any', V1: 'v1', V2: 'v2' } as const)[value as '1' | 'V1' | 'V2'];
  if (value !== '0' && !versions) reader.error(mode!, `PROXY_PROTOCOL must be 0 (off), 1 (version 1 or 2), V1 or V2, found "${mode!.value}"`);
  if (!versions) {
    for (const key of ['PROXY_TRUSTED', 'PROXY_TIMEOUT']) {
      const e = own.get(key);
      if (e && value === '0') reader.warning(e, `${key} has no effect without PROXY_PROTOCOL=1 (or V1, V2) for this service`);
    }
    return null;
  }
  const trustedEntry = o.get('PROXY_TRUSTED');
  const trusted: Cidr[] = [];
  for (const item of (trustedEntry?.value ?? '').split(/[,\s]+/).filter(Boolean)) {
    const cidr = parseCidr(item);
    if (cidr) trusted.push(cidr);
    else reader.error(trustedEntry!, `PROXY_TRUSTED: "${item}" is not an IP address or network (such as 10.0.0.0/8)`);
  }
  if (!trustedEntry || trustedEntry.value.trim() === '') {
    reader.error(mode!, 'PROXY_PROTOCOL needs PROXY_TRUSTED, the addresses of the load balancers allowed to send the header (to trust any, write PROXY_TRUSTED=0.0.0.0/0,::/0)');
  }
  let timeoutMs = PROXY_DEFAULTS.PROXY_TIMEOUT * 1000;
  const t = o.get('PROXY_TIMEOUT');
  if (t) {
    const v = Number(t.value.trim());
    if (t.value.trim() === '' || !(v > 0) || v > 300) reader.error(t, `PROXY_TIMEOUT must be a number of seconds above 0 and at most 300, found "${t.value}"`);
    else timeoutMs = Math.round(v * 1000);
  }
  return { versions, trusted, timeoutMs, maxBytes: PROXY_DEFAULTS.MAX_HEADER_BYTES };
}

/** A zone a reversed IPv6 address (64 characters) still fits under within DNS's 253. */
function isZoneName(zone: string): boolean {
  return zone.length <= 253 - 64 && /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/.test(zone);
}

function parsePorts(entry: OptionEntry | undefined, reader: OptionReader, key: 'PORT' | 'TLS_PORT'): number[] {
  if (!entry) return [DISPATCHER_DEFAULTS.PORT];
  const ports = entry.value.split(',').map((p) => p.trim());
  if (ports.some((p) => !/^\d+$/.test(p) || Number(p) < 1 || Number(p) > 65535)) {
    reader.error(entry, `${key} must be a port number from 1 to 65535 or a comma list of them, found "${entry.value}"`);
    return [];
  }
  return ports.map(Number);
}

/** `PARAMETER=CHANNEL=tcp_submit` (repeatable; a comma list also works). */
function parseParameters(entries: OptionEntry[], reader: OptionReader): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of entries) {
    for (const part of e.value.split(',').map((p) => p.trim()).filter(Boolean)) {
      const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(part);
      if (!m) reader.error(e, `PARAMETER must be KEY=value, found "${part}"`);
      else out[m[1]!.toUpperCase()] = m[2]!.trim();
    }
  }
  return out;
}

function checkPortClashes(services: DispatcherService[], reader: OptionReader): void {
  const seen = new Map<string, DispatcherService>(); // `address|port` → the first service listening there
  for (const s of services) {
    const addr = s.interfaceAddress ?? '*';
    const own = new Set<number>();
    for (const port of s.ports) {
      if (own.has(port)) {
        reader.error(s, `[SERVICE=${s.name}] lists port ${port} twice`);
        continue;
      }
      own.add(port);
      const clash = [...seen.entries()].find(([k]) => {
        const [a, p] = k.split('|');
        return Number(p) === port && (a === addr || a === '*' || addr === '*');
      });
      if (clash) reader.error(s, `[SERVICE=${s.name}] port ${port} is also used by [SERVICE=${clash[1].name}]`);
    }
    for (const port of own) if (!seen.has(`${addr}|${port}`)) seen.set(`${addr}|${port}`, s);
  }
}
