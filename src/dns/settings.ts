// The DNS settings of option.dat (DNS_SERVERS, DNS_TIMEOUT, DNS_ATTEMPTS, DNS_NEGATIVE_TTL,
// DNS_MAX_TTL) with their defaults, for every part that asks the name servers: delivery and the
// inbound checks. Values are seconds in the file (fractions allowed); option-dat.ts reports bad ones.
import type { OptionsConfig } from '../config/types.js';
import { DnsClient, parseDnsServers, systemDnsServers, type DnsServer } from './client.js';
import type { DnsCache } from './cache.js';
import { RrsetLookup } from './lookup.js';

export interface DnsSettings {
  /** One DNS try (DNS_TIMEOUT; default 5 s, as resolv.conf). */
  dnsTimeoutMs: number;
  /** Rounds over the server list (DNS_ATTEMPTS; default 2, as resolv.conf). */
  dnsAttempts: number;
  /** How long a temporary DNS failure (SERVFAIL, timeout) is remembered (DNS_NEGATIVE_TTL; default 60 s). */
  dnsNegativeTtlMs: number;
  /** Upper bound for any cached DNS answer (DNS_MAX_TTL; default 1 day). */
  dnsMaxTtlMs: number;
}

const DNS_DEFAULTS = { DNS_TIMEOUT: 5, DNS_ATTEMPTS: 2, DNS_NEGATIVE_TTL: 60, DNS_MAX_TTL: 86400 } as const;

function seconds(raw: Record<string, string>, key: keyof typeof DNS_DEFAULTS): number {
  const text = raw[key];
  const value = text === undefined ? NaN : Number(text.trim());
  return Number.isFinite(value) && value >= 0 ? value : DNS_DEFAULTS[key];
}

export function dnsSettings(options: Pick<OptionsConfig, 'raw'>): DnsSettings {
  const raw = options.raw ?? {};
  const ms = (key: keyof typeof DNS_DEFAULTS) => Math.round(seconds(raw, key) * 1000);
  return {
    dnsTimeoutMs: Math.max(1, ms('DNS_TIMEOUT')),
    dnsAttempts: Math.max(1, Math.floor(seconds(raw, 'DNS_ATTEMPTS'))),
    dnsNegativeTtlMs: ms('DNS_NEGATIVE_TTL'),
    dnsMaxTtlMs: ms('DNS_MAX_TTL'),
  };
}

/** DNS_SERVERS, or the system's resolvers when it is not set. */
export function dnsServersOf(options: Pick<OptionsConfig, 'dnsServers'>): DnsServer[] {
  return options.dnsServers.length ? parseDnsServers(options.dnsServers) : systemDnsServers();
}

/**
 * A client and cached lookup on option.dat's DNS settings. `maxInFlight` bounds the questions on
 * the wire at once; the inbound side sets it high, so that a dead server holding some questions
 * until they time out never queues the others behind them.
 */
export function createDnsLookup(options: Pick<OptionsConfig, 'raw' | 'dnsServers'>, cache: DnsCache, maxInFlight?: number): RrsetLookup {
  const s = dnsSettings(options);
  const client = new DnsClient(dnsServersOf(options), { timeoutMs: s.dnsTimeoutMs, attempts: s.dnsAttempts, maxInFlight });
  return new RrsetLookup(client, cache, { negativeTtlMs: s.dnsNegativeTtlMs, maxTtlMs: s.dnsMaxTtlMs });
}
