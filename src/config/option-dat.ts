// etc/option.dat: global MTA options, `KEY=value`, comment lines starting with `!`, `#` or `;`
// (reference §7.1). Every key the code reads is listed here with its default (see
// docs/CONFIGURATION.md), the LDAP ones in ldap-options.ts; other Messaging Server options are
// accepted and have no effect.
import net from 'node:net';
import { hostname } from 'node:os';
import { parseCidr } from '../common/cidr.js';
import { LDAP_KEYS, parseLdapOptions } from './ldap-options.js';
import { OptionReader, readOptionFile, type OptionEntry } from './option-file.js';
import { AUTH_OPTION_RULES } from './auth-options.js';
import { checkTlsPolicyOptions, TLS_POLICY_KEYS } from './tls-policy-options.js';
import { parseSrsOptions, SRS_OPTION_KEYS } from './srs.js';
import { parseSaslOptions, SASL_OPTION_KEYS } from './sasl-options.js';
import { MILTER_OPTION_KEYS, parseMilterOptions } from './milter-options.js';
import { FARM_OPTION_KEYS, parseFarmOptions } from './farm-options.js';
import type { Cidr, Diagnostic, OptionsConfig } from './types.js';
import { DEFAULT_VERP_DELIMITERS, verpDelimitersProblem } from './verp-options.js';

/** Options read by the delivery engine (src/delivery/settings.ts), seconds. */
const DELIVERY_KEYS = ['SMTP_CONNECT_TIMEOUT', 'SMTP_GREETING_TIMEOUT', 'SMTP_COMMAND_TIMEOUT', 'SMTP_DATA_TIMEOUT', 'SMTP_IDLE_TIMEOUT', 'SMTP_HOST_RETRY', 'SMTP_DNS_REUSE', 'DNS_TIMEOUT', 'DNS_ATTEMPTS', 'DNS_NEGATIVE_TTL', 'DNS_MAX_TTL'];
/** The inbound session's error limits (Postfix's smtpd_*_error_limit, smtpd_error_sleep_time, smtpd_junk_command_limit). */
const SESSION_ERROR_KEYS = ['SMTP_SOFT_ERROR_LIMIT', 'SMTP_HARD_ERROR_LIMIT', 'SMTP_ERROR_SLEEP_TIME', 'SMTP_JUNK_COMMAND_LIMIT'];
const TSUBAME_KEYS = [
  'INTERNAL_IP', 'DNS_SERVERS', 'LOCAL_HOST', 'MAX_MESSAGE_SIZE', 'MAX_RECIPIENTS', 'MAX_MESSAGES_PER_SESSION', 'MAX_BAD_COMMANDS',
  'MAX_CONNS_PER_IP', 'BANNER_PURGE_DELAY', 'BANNER_PURGE_DELAY_INTERNAL', 'SMTP_TIMEOUT', 'SMTP_COMMAND_DEADLINE', 'SMTP_MIN_DATA_RATE', 'TLS_KEY', 'TLS_CERT', 'FAST_FLUSH_DOMAINS',
  ...SESSION_ERROR_KEYS, 'MAX_RECEIVED_LINES',
  'ETRN_ALLOW', 'ETRN_CHANNEL_ALLOW', 'ETRN_RATE_LIMIT', 'METRICS_PORT', 'RETURN_UNITS', 'RETURN_ADDRESS', 'LOG_MAX_SIZE', 'LOG_KEEP_DAYS', ...DELIVERY_KEYS, ...Object.keys(AUTH_OPTION_RULES),
  ...TLS_POLICY_KEYS, // verified outbound TLS (src/config/tls-policy-options.ts)
  'SERVER_USER', // read by start-msg (src/common/service-user.ts)
  'VERP_DELIMITERS', // the verp channel keyword and the bounces channel (src/delivery/verp.ts)
  ...SASL_OPTION_KEYS, // failed SMTP AUTH (src/config/sasl-options.ts)
  ...MILTER_OPTION_KEYS, // milter content filters (src/config/milter-options.ts)
  ...FARM_OPTION_KEYS, // a farm's shared shaping (src/config/farm-options.ts)
];
/** Messaging Server options an imported option.dat may carry; accepted without a warning. */
const COMPATIBLE_KEYS = [
  'BLOCK_SIZE', 'BLOCK_LIMIT', 'LINE_LIMIT', 'RETURN_PERSONAL', 'CONTENT_RETURN_BLOCK_LIMIT', 'USE_REVERSE_DATABASE', 'REVERSE_ENVELOPE',
  'ACCESS_ERRORS', 'ALIAS_HASH_SIZE', 'MAX_HEADER_BLOCK_USE', 'MAX_HEADER_LINE_USE', 'LOG_CONNECTION', 'LOG_FILENAME', 'LOG_MESSAGE_ID',
  'LOG_USERNAME', 'LOG_PROCESS', 'LOG_FILTER', 'LOG_REASON', 'SEPARATE_CONNECTION_LOG', 'MM_DEBUG', 'OS_DEBUG', 'DEQUEUE_DEBUG', 'RETURN_DEBUG', 'MAX_NOTIFYS',
  'SPF_MAX_RECURSION', // include/redirect depth: bounded by SPF_MAX_DNS_QUERIES, as each costs a lookup
];
/** LOG_MAX_SIZE (octets), LOG_KEEP_DAYS (days), CONTENT_RETURN_BLOCK_LIMIT (1024-octet blocks). */
const WHOLE_NUMBER_KEYS = ['LOG_MAX_SIZE', 'LOG_KEEP_DAYS', 'CONTENT_RETURN_BLOCK_LIMIT'];
/** The longest delay in seconds (about 24.8 days): Node's timers take at most 2^31-1 ms and run anything longer after 1 ms. */
const MAX_SECONDS = Math.floor((2 ** 31 - 1) / 1000);
export const OPTION_KEYS: ReadonlySet<string> = new Set([...TSUBAME_KEYS, ...LDAP_KEYS, ...SRS_OPTION_KEYS, ...COMPATIBLE_KEYS]);

export const OPTION_DEFAULTS = {
  INTERNAL_IP: '127.0.0.0/8,::1',
  MAX_MESSAGE_SIZE: 10240000,
  MAX_RECIPIENTS: 1000,
  MAX_MESSAGES_PER_SESSION: 1000,
  MAX_BAD_COMMANDS: 10,
  MAX_CONNS_PER_IP: 50,
  BANNER_PURGE_DELAY: 0.1,
  BANNER_PURGE_DELAY_INTERNAL: 0,
  SMTP_TIMEOUT: 300,
  /** Octets per second; Postfix's smtpd_min_data_rate default. */
  SMTP_MIN_DATA_RATE: 500,
  /** Postfix's smtpd_soft_error_limit, smtpd_hard_error_limit, smtpd_error_sleep_time (s) and smtpd_junk_command_limit. */
  SMTP_SOFT_ERROR_LIMIT: 10,
  SMTP_HARD_ERROR_LIMIT: 20,
  SMTP_ERROR_SLEEP_TIME: 1,
  SMTP_JUNK_COMMAND_LIMIT: 100,
  /** Received: lines a message may carry (with ours) before it is taken for a loop; Postfix's hopcount_limit. */
  MAX_RECEIVED_LINES: 50,
  /** ETRN commands per client address per minute (the time unit of Postfix's anvil rate limits). */
  ETRN_RATE_LIMIT: 10,
} as const;

/**
 * Reads option.dat; `file` may be missing (every option then has its default). `root`: the
 * instance directory, against which files named by relative paths (TLS_CA_FILE) are checked.
 */
export function parseOptionDat(file: string | null, diagnostics: Diagnostic[], root: string | null = null): OptionsConfig {
  const reader = new OptionReader(diagnostics);
  const entries = file ? readOptionFile(file, { commentChars: '!#;', sectionTypes: [] }, diagnostics).globals : [];
  const o = reader.collect(entries, OPTION_KEYS, '');
  const raw: Record<string, string> = {};
  for (const [k, e] of o) raw[k] = e.value;
  for (const key of DELIVERY_KEYS) {
    const e = o.get(key);
    if (e && (e.value.trim() === '' || !(Number(e.value) >= 0))) reader.error(e, `${key} must be a number of seconds, found "${e.value}"`);
  }
  // Read elsewhere (watcher, imsimta purge, notices) as whole numbers; checked here so that cnbuild reports them.
  for (const key of WHOLE_NUMBER_KEYS) {
    const e = o.get(key);
    if (e && e.value.trim() !== '' && !/^\d+$/.test(e.value.trim())) reader.error(e, `${key} must be a whole number ≥ 0, found "${e.value}"`);
  }
  checkAuthOptions(o, reader);
  checkTlsPolicyOptions(o, reader, root);
  const int = (key: keyof typeof OPTION_DEFAULTS, min: number, max?: number) => reader.integer(o.get(key), OPTION_DEFAULTS[key] as number, min, max);
  const seconds = (key: 'BANNER_PURGE_DELAY' | 'BANNER_PURGE_DELAY_INTERNAL' | 'SMTP_TIMEOUT' | 'SMTP_COMMAND_DEADLINE' | 'SMTP_ERROR_SLEEP_TIME', fallbackMs: number) => {
    const e = o.get(key);
    if (!e) return fallbackMs;
    const v = Number(e.value);
    if (!(v >= 0) || e.value.trim() === '') {
      reader.error(e, `${key} must be a number of seconds, found "${e.value}"`);
      return fallbackMs;
    }
    if (!(v <= MAX_SECONDS)) {
      reader.error(e, `${key} must be at most ${MAX_SECONDS} seconds (about 24.8 days), found "${e.value}"`);
      return fallbackMs;
    }
    return Math.round(v * 1000);
  };
  const tlsKey = o.get('TLS_KEY')?.value || null;
  const tlsCert = o.get('TLS_CERT')?.value || null;
  if ((tlsKey === null) !== (tlsCert === null)) reader.error((o.get('TLS_KEY') ?? o.get('TLS_CERT'))!, 'TLS_KEY and TLS_CERT must be set together');
  const metrics = o.get('METRICS_PORT');
  const returnUnits = o.get('RETURN_UNITS');
  if (returnUnits && !/^[01]$/.test(returnUnits.value.trim())) reader.error(returnUnits, `RETURN_UNITS must be 0 (days) or 1 (hours), found "${returnUnits.value}"`);
  const localHost = o.get('LOCAL_HOST');
  if (localHost && !/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(localHost.value)) {
    reader.error(localHost, `LOCAL_HOST must be a host name, found "${localHost.value}"`);
  }
  const verp = o.get('VERP_DELIMITERS');
  const verpProblem = verp ? verpDelimitersProblem(verp.value.trim()) : null;
  if (verp && verpProblem) reader.error(verp, verpProblem);
  const localHostName = (localHost?.value || hostname()).toLowerCase();
  const parsed = {
    raw,
    internalIp: cidrList(o.get('INTERNAL_IP'), OPTION_DEFAULTS.INTERNAL_IP, reader),
    dnsServers: dnsServers(o.get('DNS_SERVERS'), reader),
    localHost: localHostName,
    maxMessageSize: int('MAX_MESSAGE_SIZE', 1),
    maxRecipients: int('MAX_RECIPIENTS', 1),
    maxMessagesPerSession: int('MAX_MESSAGES_PER_SESSION', 1),
    maxBadCommands: int('MAX_BAD_COMMANDS', 1),
    maxConnsPerIp: int('MAX_CONNS_PER_IP', 1),
    bannerPurgeDelayMs: seconds('BANNER_PURGE_DELAY', OPTION_DEFAULTS.BANNER_PURGE_DELAY * 1000),
    bannerPurgeDelayInternalMs: seconds('BANNER_PURGE_DELAY_INTERNAL', OPTION_DEFAULTS.BANNER_PURGE_DELAY_INTERNAL * 1000),
    smtpTimeoutMs: seconds('SMTP_TIMEOUT', OPTION_DEFAULTS.SMTP_TIMEOUT * 1000),
    smtpSoftErrorLimit: int('SMTP_SOFT_ERROR_LIMIT', 0),
    smtpHardErrorLimit: int('SMTP_HARD_ERROR_LIMIT', 0),
    smtpErrorSleepMs: seconds('SMTP_ERROR_SLEEP_TIME', OPTION_DEFAULTS.SMTP_ERROR_SLEEP_TIME * 1000),
    smtpJunkCommandLimit: int('SMTP_JUNK_COMMAND_LIMIT', 0),
    maxReceivedLines: int('MAX_RECEIVED_LINES', 1),
    tlsKeyFile: tlsKey,
    tlsCertFile: tlsCert,
    fastFlushDomains: o.has('FAST_FLUSH_DOMAINS') ? list(o.get('FAST_FLUSH_DOMAINS')!.value).map((d) => d.toLowerCase().replace(/^@/, '')) : null,
    etrnAllow: o.has('ETRN_ALLOW') ? cidrList(o.get('ETRN_ALLOW'), '', reader) : [],
    // `ETRN #channel` retries a whole channel: only these clients (default: INTERNAL_IP's networks).
    etrnChannelAllow: o.has('ETRN_CHANNEL_ALLOW') ? cidrList(o.get('ETRN_CHANNEL_ALLOW'), '', reader) : cidrList(o.get('INTERNAL_IP'), OPTION_DEFAULTS.INTERNAL_IP, new OptionReader([])),
    etrnRateLimit: int('ETRN_RATE_LIMIT', 0),
    metricsPort: metrics ? reader.integer(metrics, 0, 1, 65535) || null : null,
    ldap: parseLdapOptions(o, reader),
    verpDelimiters: verp && !verpProblem ? verp.value.trim() : DEFAULT_VERP_DELIMITERS,
    srs: parseSrsOptions(o, reader, localHostName),
    sasl: parseSaslOptions(o, reader),
    milter: parseMilterOptions(o, reader),
    farm: parseFarmOptions(o, reader, localHostName),
  };
  return {
    ...parsed,
    // A request (command line, TLS handshake, DATA budget) gets SMTP_TIMEOUT unless set apart.
    smtpCommandDeadlineMs: seconds('SMTP_COMMAND_DEADLINE', parsed.smtpTimeoutMs),
    smtpMinDataRate: int('SMTP_MIN_DATA_RATE', 1),
  };
}

/**
 * Why the host name in use (LOCAL_HOST, else the machine's name) is a poor one for the SMTP
 * banner, EHLO and notices: not a fully qualified domain name. Null when it is one.
 */
export function localHostProblem(setting: string | undefined, machineName: string): string | null {
  const name = setting?.trim() || machineName;
  if (name.includes('.') && !name.endsWith('.') && !/^localhost\./i.test(name)) return null;
  return setting?.trim()
    ? `LOCAL_HOST "${name}" is not a fully qualified domain name; the SMTP banner, EHLO and notices say it: set LOCAL_HOST=mail.example.com (this host's name in DNS)`
    : `LOCAL_HOST is not set, and this machine's name "${name}" is not a fully qualified domain name; the SMTP banner, EHLO and notices would say "${name}": set LOCAL_HOST=mail.example.com (this host's name in DNS) in etc/option.dat`;
}

/** The message authentication options (read by src/policy/auth-settings.ts). */
function checkAuthOptions(o: Map<string, OptionEntry>, reader: OptionReader): void {
  for (const [key, rule] of Object.entries(AUTH_OPTION_RULES)) {
    const e = o.get(key);
    if (!e) continue;
    const v = e.value.trim();
    if (rule.kind === 'integer' && !(/^\d+$/.test(v) && Number(v) >= rule.min && Number(v) <= rule.max)) {
      reader.error(e, `${key} must be an integer from ${rule.min} to ${rule.max}, found "${e.value}"`);
    } else if (rule.kind === 'seconds' && !(v !== '' && Number(v) > 0 && Number(v) <= rule.max)) {
      reader.error(e, `${key} must be a number of seconds above 0 and at most ${rule.max}, found "${e.value}"`);
    } else if (rule.kind === 'words' && !rule.words.some((w) => w.toLowerCase() === v.toLowerCase())) {
      reader.error(e, `${key} must be one of ${rule.words.join(', ')}, found "${e.value}"`);
    } else if (rule.kind === 'domains') {
      for (const d of list(v)) if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?$/i.test(d)) reader.error(e, `${key}: "${d}" is not a domain name`);
    }
  }
}

function list(text: string): string[] {
  return text.split(/[,\s]+/).map((s) => s.trim()).filter(Boolean);
}

function cidrList(entry: OptionEntry | undefined, fallback: string, reader: OptionReader): Cidr[] {
  const out: Cidr[] = [];
  for (const item of list(entry?.value ?? fallback)) {
    const cidr = parseCidr(item);
    if (cidr) out.push(cidr);
    else reader.error(entry!, `${entry!.key}: "${item}" is not an IP address or network (such as 192.0.2.0/24)`);
  }
  return out;
}

function dnsServers(entry: OptionEntry | undefined, reader: OptionReader): string[] {
  if (!entry) return [];
  const out: string[] = [];
  for (const item of list(entry.value)) {
    if (isDnsServer(item)) out.push(item);
    else reader.error(entry, `DNS_SERVERS: "${item}" is not ip, ip:port, an IPv6 address or [ipv6]:port`);
  }
  return out;
}

/** The forms the delivery engine's parseDnsServers takes: `192.0.2.53`, `192.0.2.53:5353`, `2001:db8::53`, `[2001:db8::53]:5353`. */
function isDnsServer(item: string): boolean {
  const portOk = (p: string | undefined) => p === undefined || (/^\d{1,5}$/.test(p) && Number(p) >= 1 && Number(p) <= 65535);
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(item);
  if (bracketed) return net.isIPv6(bracketed[1]!) && portOk(bracketed[2]);
  if (net.isIPv6(item)) return true;
  const v4 = /^([\d.]+)(?::(\d+))?$/.exec(item);
  return v4 !== null && net.isIPv4(v4[1]!) && portOk(v4[2]);
}
