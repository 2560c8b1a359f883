// The inbound trust checks the SMTP stages call (DNS blocklists at connect, SPF at HELO/MAIL/RCPT,
// DKIM/DMARC/ARC at the end of DATA), their pure decisions, and the DNS lookup they share.
import type { OptionsConfig } from '../config/types.js';
import { DnsCache } from '../dns/cache.js';
import type { RrsetLookup } from '../dns/lookup.js';
import { createDnsLookup } from '../dns/settings.js';

export { checkBlocklists, blocklistQueryName } from './blocklist.js';
export { blocklistApplies, blocklistDecision } from './blocklist-decision.js';
export { authSettings, type AuthSettings } from './auth-settings.js';
export { checkSpf, verifyMessage } from './auth-verify.js';
export { spfDecision, type SpfOutcome } from './auth-decision.js';
export { authservIdOf } from './auth-results.js';
export type { PolicyDecision } from './decision.js';

/** Answers kept by one SMTP server process for the inbound checks (blocklists, SPF, DKIM keys, DMARC). */
const INBOUND_DNS_CACHE_ENTRIES = 50_000;
/** Questions on the wire at once: high, so that a dead server holding some until they time out queues no others. */
const INBOUND_DNS_MAX_IN_FLIGHT = 1024;

/** The cached DNS lookup of an SMTP server process, on option.dat's DNS settings (make one per configuration; close its client on reload). */
export function createInboundLookup(options: Pick<OptionsConfig, 'raw' | 'dnsServers'>): RrsetLookup {
  return createDnsLookup(options, new DnsCache(INBOUND_DNS_CACHE_ENTRIES), INBOUND_DNS_MAX_IN_FLIGHT);
}
