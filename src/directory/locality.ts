// Which addresses are this host's own: those the rewrite rules route to the local channel `l`,
// decided the way the SMTP server routes a RCPT (routeRecipient on the rewrite result) and
// named as the local channel names its users (localUserKey: unquoted, lower case, `+tag`
// dropped). Pure: built from the configuration, no I/O.
import type { ImtaConfig } from '../config/types.js';
import { LOCAL_CHANNEL, compileRewriter, domainRoutes, isValidDomain, parseAddress, routeRecipient, type Rewriter } from '../rewrite/index.js';
import { normalizeDomain } from '../common/domain-name.js';
import { localUserKey } from './local-part.js';

export interface Locality {
  /** The local user that mail to `address` (local-part@domain) is delivered to by channel l, else null. */
  localUserOf: (address: string) => string | null;
  /**
   * Whether `address` is this host's, for list expansion (directory/expand.ts: such members are
   * looked up in the directory, others routed as they are): localUserOf, or a domain that is one
   * of the l channel's own host names (its official host, its other hosts, LOCAL_HOST).
   */
  isLocal: (address: string) => boolean;
  /**
   * Domains local by name: rules `domain  …@<a host of l>` and the l channel's own host names
   * (localhost, LOCAL_HOST). For listing only: rules for `.domain`, `$*` and the like make more
   * addresses local than can be listed; localUserOf is the authority.
   */
  domains: readonly string[];
}

export interface LocalityOptions {
  /** The channel the rewrite runs as (default `l`, as imsimta test -rewrite). */
  sourceChannel?: string;
  /** The compiled rules when the caller has them already. */
  rewriter?: Rewriter;
  /** LOCAL_HOST, one of the l channel's names (default: none besides the channel's). */
  localHost?: string;
}

export function localityOf(imta: ImtaConfig, opts: LocalityOptions = {}): Locality {
  const rewriter = opts.rewriter ?? compileRewriter(imta);
  const sourceChannel = opts.sourceChannel ?? LOCAL_CHANNEL;
  const localUserOf = (address: string): string | null => {
    const parsed = parseAddress(address.trim());
    if (parsed?.domain == null || parsed.route.length > 0 || parsed.localPart === '') return null;
    const outcome = rewriter.rewrite(address.trim(), { sourceChannel, direction: 'to' });
    const route = routeRecipient(outcome, imta.channelByName);
    return route.ok && route.localPart !== null ? localUserKey(route.localPart) : null;
  };
  const hostNames = new Set(localChannelHosts(imta, opts.localHost));
  const isLocal = (address: string): boolean => {
    if (localUserOf(address) !== null) return true;
    const parsed = parseAddress(address.trim());
    return parsed !== null && parsed.domain !== null && parsed.route.length === 0 && hostNames.has(normalizeDomain(parsed.domain));
  };
  return { localUserOf, isLocal, domains: localDomainNames(imta) };
}

/** The l channel's own host names, LOCAL_HOST and localhost, as the local channel has always taken them (local-aliases.ts localDomainsOf). */
function localChannelHosts(imta: ImtaConfig, localHost: string | undefined): string[] {
  const local = imta.channelByName.get(LOCAL_CHANNEL);
  if (!local) return [];
  return ['localhost', local.officialHost, ...local.hosts, localHost ?? ''].filter(Boolean).map(normalizeDomain);
}

function localDomainNames(imta: ImtaConfig): string[] {
  const local = imta.channelByName.get(LOCAL_CHANNEL);
  if (!local) return [];
  const names = [
    ...domainRoutes(imta).filter((r) => !r.subdomains && r.channel.toLowerCase() === LOCAL_CHANNEL).map((r) => r.domain),
    ...[local.officialHost, ...local.hosts].map(normalizeDomain),
  ];
  return [...new Set(names)].filter((d) => d && isValidDomain(d) && !d.startsWith('['));
}
