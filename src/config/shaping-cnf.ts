// etc/shaping.cnf: per-destination traffic shaping of outbound SMTP (issue 17), in the option-file
// format of job_controller.cnf. The globals are the limits of every MX host that no section
// matches (each host shaped on its own) and the defaults of every section; a `[DESTINATION=name]`
// section names the destinations it shapes by recipient domain (DOMAIN), MX host (MX_HOST) or
// MX host suffix (MX_SUFFIX, a provider group such as `*.google.com`). Values are checked here, so
// cnbuild and every reload report a bad one with file:line. The shaping itself is src/shaping/.
import { domainToASCII } from 'node:url';
import { parseIsoDuration } from './durations.js';
import { OptionReader, readOptionFile, type OptionEntry } from './option-file.js';
import type { Diagnostic, RateLimit, ShapingConfig, ShapingLimits, ShapingScope, ShapingSection } from './types.js';

/**
 * 421 always throttles; other 4xx replies when their text matches this. Not a bare "rate": Gmail's
 * `450 4.2.1 … receiving mail at a rate that prevents additional messages` is about one mailbox.
 */
export const DEFAULT_THROTTLE_PATTERN = 'too many|rate.?limit|(message|sending|connection) rate|throttl|try again later|slow down';
/** Greylisting and "too many recipients" (RFC 5321 §4.5.3.1.10: send the rest in another transaction) say nothing about the pace. */
const DEFAULT_THROTTLE_IGNORE = 'grey|gray|too many recipients|4\\.5\\.3';

export const SHAPING_DEFAULTS: Readonly<ShapingLimits> = Object.freeze({
  // Postfix's default_destination_concurrency_limit and initial_destination_concurrency.
  maxConnections: 20,
  initialConnections: 5,
  maxMessagesPerConnection: 0,
  maxMessageRate: null,
  messageRateBurst: null,
  maxConnectionRate: null,
  throttlePauseMs: 60_000,
  throttlePauseMaxMs: 15 * 60_000,
  recoveryMs: 10 * 60_000,
  throttlePattern: DEFAULT_THROTTLE_PATTERN,
  throttleIgnore: DEFAULT_THROTTLE_IGNORE,
});

/** The configuration without a shaping.cnf: every destination gets the defaults. */
export function defaultShapingConfig(): ShapingConfig {
  return { file: null, defaults: { ...SHAPING_DEFAULTS }, sections: [] };
}

const LIMIT_KEYS = [
  'MAX_CONNECTIONS', 'INITIAL_CONNECTIONS', 'MAX_MESSAGES_PER_CONNECTION', 'MAX_MESSAGE_RATE', 'MESSAGE_RATE_BURST',
  'MAX_CONNECTION_RATE', 'THROTTLE_PAUSE', 'THROTTLE_PAUSE_MAX', 'RECOVERY_TIME', 'THROTTLE_PATTERN', 'THROTTLE_IGNORE',
];
const MATCH_KEYS = ['DOMAIN', 'MX_HOST', 'MX_SUFFIX'];
const SECTION_KEYS = [...LIMIT_KEYS, ...MATCH_KEYS, 'SCOPE'];
/** Section names become state keys and metric labels: kept to plain characters. */
const SECTION_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;
const MAX_CONNECTIONS_LIMIT = 10_000;
/** The longest pause or recovery (a day): longer is a configuration mistake, not shaping. */
const MAX_DURATION_MS = 86_400_000;

export function parseShapingCnf(file: string, diagnostics: Diagnostic[]): ShapingConfig {
  const parsed = readOptionFile(file, { commentChars: '!#', sectionTypes: ['DESTINATION'] }, diagnostics);
  const reader = new OptionReader(diagnostics);
  for (const e of parsed.globals) {
    if (MATCH_KEYS.includes(e.key) || e.key === 'SCOPE') reader.error(e, `${e.key} belongs in a [DESTINATION=name] section (the globals apply to every MX host no section matches)`);
  }
  const g = reader.collect(parsed.globals.filter((e) => !MATCH_KEYS.includes(e.key) && e.key !== 'SCOPE'), new Set(LIMIT_KEYS), 'shaping.cnf globals');
  const defaults = readLimits(g, SHAPING_DEFAULTS, reader);
  const config: ShapingConfig = { file, defaults, sections: [] };
  /** Who claimed each domain, host and suffix first (the same one in two sections is an error). */
  const claimed = new Map<string, ShapingSection>();
  for (const section of parsed.sections) {
    if (!SECTION_NAME.test(section.name)) {
      reader.error(section, `[DESTINATION=${section.name}]: a name is letters, digits, "_", "." and "-"`);
      continue;
    }
    const earlier = config.sections.find((s) => s.name.toLowerCase() === section.name.toLowerCase());
    if (earlier) {
      reader.error(section, `[DESTINATION=${section.name}] appears twice (first at line ${earlier.line})`);
      continue;
    }
    const o = reader.collect(section.entries, new Set(SECTION_KEYS), `[DESTINATION=${section.name}]`);
    const out: ShapingSection = {
      name: section.name,
      domains: [],
      domainSuffixes: [],
      mxHosts: [],
      mxSuffixes: [],
      scope: readScope(o.get('SCOPE'), reader),
      limits: readLimits(o, defaults, reader),
      file: section.file,
      line: section.line,
    };
    const claim = (kind: string, name: string, entry: OptionEntry, into: string[]) => {
      const key = `${kind} ${name}`;
      const owner = claimed.get(key);
      if (owner && owner !== out) reader.error(entry, `${kind} ${name} is already shaped by [DESTINATION=${owner.name}] (line ${owner.line})`);
      else if (!into.includes(name)) {
        claimed.set(key, out);
        into.push(name);
      }
    };
    for (const entry of section.entries.filter((e) => e.key === 'DOMAIN')) {
      for (const item of listOf(entry.value)) {
        const sub = item.startsWith('*.');
        const name = hostName(sub ? item.slice(2) : item);
        if (name === null) reader.error(entry, `DOMAIN: "${item}" is not a domain name (write example.com, or *.example.com for its subdomains)`);
        else claim(sub ? 'DOMAIN *.' : 'DOMAIN', name, entry, sub ? out.domainSuffixes : out.domains);
      }
    }
    for (const entry of section.entries.filter((e) => e.key === 'MX_HOST')) {
      for (const item of listOf(entry.value)) {
        const name = hostName(item);
        if (name === null) reader.error(entry, `MX_HOST: "${item}" is not a host name`);
        else claim('MX_HOST', name, entry, out.mxHosts);
      }
    }
    for (const entry of section.entries.filter((e) => e.key === 'MX_SUFFIX')) {
      for (const item of listOf(entry.value)) {
        const name = hostName(item.replace(/^\*?\./, ''));
        if (name === null) reader.error(entry, `MX_SUFFIX: "${item}" is not a host name suffix (such as *.google.com)`);
        else claim('MX_SUFFIX', name, entry, out.mxSuffixes);
      }
    }
    if (!out.domains.length && !out.domainSuffixes.length && !out.mxHosts.length && !out.mxSuffixes.length) {
      reader.error(section, `[DESTINATION=${section.name}] matches nothing: give DOMAIN, MX_HOST or MX_SUFFIX`);
      continue;
    }
    config.sections.push(out);
  }
  return config;
}

/** Limits from a section's (or the globals') entries, the others from `base`. */
function readLimits(o: Map<string, OptionEntry>, base: Readonly<ShapingLimits>, reader: OptionReader): ShapingLimits {
  const maxConnections = reader.integer(o.get('MAX_CONNECTIONS'), base.maxConnections, 1, MAX_CONNECTIONS_LIMIT);
  const initialEntry = o.get('INITIAL_CONNECTIONS');
  let initialConnections = reader.integer(initialEntry, base.initialConnections, 1, MAX_CONNECTIONS_LIMIT);
  if (initialConnections > maxConnections) {
    // Written here above the limit written (or inherited): a mistake. Inherited: the limit wins.
    if (initialEntry) reader.error(initialEntry, `INITIAL_CONNECTIONS (${initialConnections}) is above MAX_CONNECTIONS (${maxConnections})`);
    initialConnections = maxConnections;
  }
  const limits: ShapingLimits = {
    maxConnections,
    initialConnections,
    maxMessagesPerConnection: reader.integer(o.get('MAX_MESSAGES_PER_CONNECTION'), base.maxMessagesPerConnection, 0),
    maxMessageRate: rateOf(o.get('MAX_MESSAGE_RATE'), base.maxMessageRate, reader),
    messageRateBurst: base.messageRateBurst,
    maxConnectionRate: rateOf(o.get('MAX_CONNECTION_RATE'), base.maxConnectionRate, reader),
    throttlePauseMs: durationOf(o.get('THROTTLE_PAUSE'), base.throttlePauseMs, reader),
    throttlePauseMaxMs: durationOf(o.get('THROTTLE_PAUSE_MAX'), base.throttlePauseMaxMs, reader),
    recoveryMs: durationOf(o.get('RECOVERY_TIME'), base.recoveryMs, reader),
    throttlePattern: patternOf(o.get('THROTTLE_PATTERN'), base.throttlePattern, reader),
    throttleIgnore: patternOf(o.get('THROTTLE_IGNORE'), base.throttleIgnore, reader),
  };
  const burst = o.get('MESSAGE_RATE_BURST');
  if (burst) limits.messageRateBurst = burst.value.trim() === '' ? null : reader.integer(burst, 1, 1, 1_000_000);
  const pauseMax = o.get('THROTTLE_PAUSE_MAX') ?? o.get('THROTTLE_PAUSE');
  if (limits.throttlePauseMaxMs < limits.throttlePauseMs) {
    if (pauseMax) reader.error(pauseMax, `THROTTLE_PAUSE_MAX (${limits.throttlePauseMaxMs / 1000} s) is shorter than THROTTLE_PAUSE (${limits.throttlePauseMs / 1000} s)`);
    limits.throttlePauseMaxMs = limits.throttlePauseMs;
  }
  return limits;
}

function readScope(entry: OptionEntry | undefined, reader: OptionReader): ShapingScope {
  if (!entry) return 'group';
  const v = entry.value.trim().toLowerCase();
  if (v === 'group' || v === 'host' || v === 'domain') return v;
  reader.error(entry, `SCOPE must be group, host or domain, found "${entry.value}"`);
  return 'group';
}

/** `100/min`, `10/s`, `5000/h`, `20000/day`; `0`, `none` or empty: no limit. */
export function parseRate(text: string): RateLimit | null | 'invalid' {
  const t = text.trim().toLowerCase();
  if (t === '' || t === '0' || t === 'none' || t === 'unlimited') return null;
  const m = /^(\d+)\s*\/\s*(s|sec|second|m|min|minute|h|hr|hour|d|day)$/.exec(t);
  if (!m || Number(m[1]) < 1 || !Number.isSafeInteger(Number(m[1]))) return 'invalid';
  const unit = m[2]!;
  const perMs = unit.startsWith('s') ? 1000 : unit === 'm' || unit.startsWith('min') ? 60_000 : unit.startsWith('h') ? 3_600_000 : 86_400_000;
  return { count: Number(m[1]), perMs, text: `${m[1]}/${unit.startsWith('s') ? 's' : perMs === 60_000 ? 'min' : perMs === 3_600_000 ? 'h' : 'day'}` };
}

function rateOf(entry: OptionEntry | undefined, fallback: RateLimit | null, reader: OptionReader): RateLimit | null {
  if (!entry) return fallback;
  const r = parseRate(entry.value);
  if (r !== 'invalid') return r;
  reader.error(entry, `${entry.key} must be a count per unit such as 100/min, 10/s, 5000/h or 20000/day (0 or none: no limit), found "${entry.value}"`);
  return fallback;
}

/** Seconds, or an ISO 8601 duration (`PT1M`). */
function durationOf(entry: OptionEntry | undefined, fallback: number, reader: OptionReader): number {
  if (!entry) return fallback;
  const v = entry.value.trim();
  const ms = /^\d+(\.\d+)?$/.test(v) ? Math.round(Number(v) * 1000) : parseIsoDuration(v);
  if (ms !== null && ms > 0 && ms <= MAX_DURATION_MS) return ms;
  reader.error(entry, `${entry.key} must be seconds or an ISO 8601 duration such as PT1M, above 0 and at most a day, found "${entry.value}"`);
  return fallback;
}

function patternOf(entry: OptionEntry | undefined, fallback: string, reader: OptionReader): string {
  if (!entry) return fallback;
  try {
    new RegExp(entry.value, 'i');
    return entry.value;
  } catch (err) {
    reader.error(entry, `${entry.key} is not a regular expression: ${(err as Error).message}`);
    return fallback;
  }
}

function listOf(text: string): string[] {
  return text.split(/[,\s]+/).map((s) => s.trim()).filter(Boolean);
}

/** A host or domain name in lower-case A-labels without a trailing dot, or null. */
function hostName(text: string): string | null {
  const ascii = domainToASCII(text.replace(/\.$/, '')).toLowerCase();
  if (!ascii || ascii.length > 253) return null;
  return ascii.split('.').every((l) => LABEL.test(l)) ? ascii : null;
}
