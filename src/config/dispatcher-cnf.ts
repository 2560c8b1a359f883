// etc/dispatcher.cnf: global options inherited by every `[SERVICE=NAME]` section (reference §1).
// Defaults are Messaging Server's shipped values (DESIGN.md).
import net from 'node:net';
import { OptionReader, readOptionFile, type OptionEntry } from './option-file.js';
import type { Diagnostic, DispatcherConfig, DispatcherService } from './types.js';

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

const KNOWN = new Set(['PORT', 'TLS_PORT', 'INTERFACE_ADDRESS', 'IMAGE', 'LOGFILE', 'PARAMETER', 'STACKSIZE', 'BACKLOG', 'USER', 'DEBUG', 'DNS_VERIFY_DOMAIN', 'ENABLE_RBL', 'HISTORICAL_TIME', ...Object.keys(DISPATCHER_DEFAULTS)]);
const IGNORED = new Set(['IMAGE', 'LOGFILE', 'STACKSIZE', 'USER', 'DEBUG', 'DNS_VERIFY_DOMAIN', 'ENABLE_RBL', 'HISTORICAL_TIME', 'TLS_PORT']);

export function parseDispatcherCnf(file: string, diagnostics: Diagnostic[]): DispatcherConfig {
  const parsed = readOptionFile(file, { commentChars: '!', sectionTypes: ['SERVICE'] }, diagnostics);
  const reader = new OptionReader(diagnostics);
  const globals = reader.collect(parsed.globals.filter((e) => e.key !== 'PARAMETER'), KNOWN, 'dispatcher.cnf globals');
  const globalParameters = parsed.globals.filter((e) => e.key === 'PARAMETER');
  for (const [key, entry] of globals) if (IGNORED.has(key)) reader.warning(entry, `${key} is accepted for compatibility and has no effect in tsubame`);
  const services: DispatcherService[] = [];
  for (const section of parsed.sections) {
    const name = section.name.toUpperCase();
    if (services.some((s) => s.name === name)) {
      reader.error(section, `[SERVICE=${name}] appears twice`);
      continue;
    }
    if (name === 'DISPATCHER') continue; // PMDF's section for the dispatcher's own options
    const own = reader.collect(section.entries.filter((e) => e.key !== 'PARAMETER'), KNOWN, `[SERVICE=${name}]`);
    const o = new Map([...globals, ...own]);
    for (const [key, entry] of own) if (IGNORED.has(key)) reader.warning(entry, `${key} is accepted for compatibility and has no effect in tsubame`);
    const parameters = parseParameters([...globalParameters, ...section.entries.filter((e) => e.key === 'PARAMETER')], reader);
    const int = (key: keyof typeof DISPATCHER_DEFAULTS, min: number, max?: number) => reader.integer(o.get(key), DISPATCHER_DEFAULTS[key], min, max);
    const ports = parsePorts(o.get('PORT'), reader);
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
      parameters,
      channel: parameters.CHANNEL ?? (name === 'LMTP' ? 'tcp_lmtp' : 'tcp_local'),
      lmtp: name === 'LMTP' || parameters.LMTP === '1',
      file: section.file,
      line: section.line,
    });
  }
  checkPortClashes(services, reader);
  return { services };
}

function parsePorts(entry: OptionEntry | undefined, reader: OptionReader): number[] {
  if (!entry) return [DISPATCHER_DEFAULTS.PORT];
  const ports = entry.value.split(',').map((p) => p.trim());
  if (ports.some((p) => !/^\d+$/.test(p) || Number(p) < 1 || Number(p) > 65535)) {
    reader.error(entry, `PORT must be a port number from 1 to 65535 or a comma list of them, found "${entry.value}"`);
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
