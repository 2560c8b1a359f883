// Which destination a delivery belongs to (pure): from etc/shaping.cnf, the (recipient domain,
// MX host) of a delivery is mapped to a destination — a `[DESTINATION=name]` section matched by
// the domain (exact, then the closest `*.parent`), else by the MX host (exact, then the longest
// MX_SUFFIX: the provider group), else the MX host itself with the global limits. The key names
// the ShapingState that counts for it: the section (SCOPE=group: every matched host and domain
// together), the section and the host (SCOPE=host), the section and the domain (SCOPE=domain), or
// `mx:host`. Deliveries with the same key may share a connection (piggybacking); different keys
// never do, so a DOMAIN section takes its domain off connections it would share with others.
import type { ShapingConfig, ShapingLimits, ShapingSection } from '../config/types.js';
import { throttleRules, type ThrottleRules } from './throttle.js';

/** A destination class: the limits and throttle rules that apply, compiled once per section. */
export interface DestinationClass {
  /** The section's name, or null for the globals (an MX host no section matches). */
  section: string | null;
  limits: ShapingLimits;
  throttle: ThrottleRules;
  scope: ShapingSection['scope'] | 'host';
}

export interface Destination {
  /** The ShapingState's key: `name`, `name/mx:host`, `name/domain:domain` or `mx:host`. */
  key: string;
  class: DestinationClass;
}

export class ShapingPolicy {
  readonly defaults: DestinationClass;
  private readonly byName = new Map<string, DestinationClass>();
  private readonly domains = new Map<string, DestinationClass>();
  private readonly domainSuffixes = new Map<string, DestinationClass>();
  private readonly mxHosts = new Map<string, DestinationClass>();
  private readonly mxSuffixes = new Map<string, DestinationClass>();

  constructor(readonly config: ShapingConfig) {
    this.defaults = { section: null, limits: config.defaults, throttle: throttleRules(config.defaults.throttlePattern, config.defaults.throttleIgnore), scope: 'host' };
    for (const s of config.sections) {
      const cls: DestinationClass = { section: s.name, limits: s.limits, throttle: throttleRules(s.limits.throttlePattern, s.limits.throttleIgnore), scope: s.scope };
      this.byName.set(s.name, cls);
      for (const d of s.domains) this.domains.set(d, cls);
      for (const d of s.domainSuffixes) this.domainSuffixes.set(d, cls);
      for (const h of s.mxHosts) this.mxHosts.set(h, cls);
      for (const h of s.mxSuffixes) this.mxSuffixes.set(h, cls);
    }
  }

  /** The class of a section by name (null when the configuration has no such section). */
  section(name: string): DestinationClass | null {
    return this.byName.get(name) ?? null;
  }

  /** The destination of a delivery to `domain` (the recipient's) through `mxHost` (the MX or smart host name). */
  classify(domain: string, mxHost: string): Destination {
    const d = normal(domain);
    const h = normal(mxHost);
    const cls = this.byDomain(d) ?? this.byHost(h);
    if (!cls) return { key: `mx:${h}`, class: this.defaults };
    switch (cls.scope) {
      case 'host':
        return { key: `${cls.section}/mx:${h}`, class: cls };
      case 'domain':
        return { key: `${cls.section}/domain:${d}`, class: cls };
      default:
        return { key: cls.section!, class: cls };
    }
  }

  private byDomain(domain: string): DestinationClass | undefined {
    if (this.domains.size === 0 && this.domainSuffixes.size === 0) return undefined;
    const exact = this.domains.get(domain);
    if (exact) return exact;
    // `*.parent` covers the subdomains only: the search starts at the domain's parent.
    for (let dot = domain.indexOf('.'); dot >= 0; dot = domain.indexOf('.', dot + 1)) {
      const hit = this.domainSuffixes.get(domain.slice(dot + 1));
      if (hit) return hit;
    }
    return undefined;
  }

  private byHost(host: string): DestinationClass | undefined {
    const exact = this.mxHosts.get(host);
    if (exact) return exact;
    if (this.mxSuffixes.size === 0) return undefined;
    // Longest suffix first: the host itself, then each parent.
    for (let start = 0; start >= 0; ) {
      const hit = this.mxSuffixes.get(start === 0 ? host : host.slice(start));
      if (hit) return hit;
      const dot = host.indexOf('.', start);
      start = dot < 0 ? -1 : dot + 1;
    }
    return undefined;
  }
}

/** Lower case without a trailing dot; names already in that form (the usual case) are returned as they are. */
function normal(name: string): string {
  let n = name;
  if (n.endsWith('.')) n = n.slice(0, -1);
  return /[A-Z]/.test(n) ? n.toLowerCase() : n;
}
