// What the policy checks of one SMTP service need from its configuration, built once per
// configuration (service.ts; a reload builds another): the compiled mapping tables, the cached DNS
// lookup the blocklists and SPF/DKIM/DMARC share, the service's DNS blocklists, and per source
// channel the message authentication settings and the milter filters (sourcespamfilterN), kept
// once asked. Who is exempt from what (INTERNAL_IP and authenticated clients skip blocklists
// and verification) is decided here too, so that every stage asks the same question.
import type { SMTPServerSession } from 'smtp-server';
import type { BlocklistConfig, InstanceConfig } from '../config/types.js';
import { channelMilterSlots } from '../config/milter-options.js';
import type { RrsetLookup, RrsetSource } from '../dns/lookup.js';
import { compileMappings, type CompiledMappings } from '../mappings/index.js';
import { milterSettings, type MilterSettings } from '../milter/index.js';
import { authSettings, createInboundLookup, type AuthSettings } from '../policy/index.js';
import type { InboundSettings } from './settings.js';

export interface InboundPolicy {
  mappings: CompiledMappings;
  /** The DNS lookups of the blocklists and SPF, DKIM, DMARC, ARC (cached, bounded in flight). */
  dns: RrsetSource;
  /** This service's blocklists (dispatcher.cnf ENABLE_RBL, DNS_VERIFY_DOMAIN …); null = none. */
  rbl: BlocklistConfig | null;
  /** SPF/DKIM/DMARC settings for mail arriving on `channel`. */
  authFor(channel: string): AuthSettings;
  /** The filters sessions on `channel` go through (its sourcespamfilterN slots, in order); null = none. */
  miltersFor(channel: string): MilterSettings | null;
  /** Stops the DNS client (once no session uses this configuration any more). */
  close(): void;
}

export function buildInboundPolicy(config: InstanceConfig, settings: InboundSettings): InboundPolicy {
  const service = config.dispatcher.services.find((s) => s.name.toUpperCase() === settings.service.toUpperCase());
  // Made at the first question: a service whose clients are all internal never opens a socket.
  let lookup: RrsetLookup | null = null;
  let closed = false;
  const dns: RrsetSource = {
    rrset: (name, type, options) =>
      closed ? Promise.resolve({ status: 'temporary', reason: 'service closed' }) : (lookup ??= createInboundLookup(config.options)).rrset(name, type, options),
  };
  const auth = new Map<string, AuthSettings>();
  const milters = new Map<string, MilterSettings | null>();
  const channel = (name: string) => config.imta.channelByName.get(name.toLowerCase());
  return {
    mappings: compileMappings(config.mappings),
    dns,
    rbl: service?.rbl?.enabled && service.rbl.zones.length > 0 ? service.rbl : null,
    authFor(name) {
      let s = auth.get(name);
      if (!s) auth.set(name, (s = authSettings(config.options, channel(name))));
      return s;
    },
    miltersFor(name) {
      let s = milters.get(name);
      if (s === undefined) {
        const options = config.options.milter;
        const c = channel(name);
        const filters = c && options ? channelMilterSlots(c).flatMap((n) => options.slots.get(n)?.filters ?? []) : [];
        s = filters.length && options ? milterSettings(filters, { defaultAction: options.defaultAction, timeouts: options.timeouts }) : null;
        milters.set(name, s);
      }
      return s;
    },
    close() {
      closed = true;
      lookup?.client.close();
      lookup = null;
    },
  };
}

/** Blocklists and message verification are for strangers: not for INTERNAL_IP clients nor authenticated ones. */
export function isTrustedClient(session: { internal: boolean }, smtp: Pick<SMTPServerSession, 'user'>): boolean {
  return session.internal || Boolean(smtp.user);
}
