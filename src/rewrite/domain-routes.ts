// Which domains the rewrite rules send to which channel by name: the rules whose pattern is a
// plain domain (`example.com`, `.example.com`, `*.example.com`) and whose template routes to a
// fixed channel host. Catch-alls (`.`, `[]`, `$*`, `*`…), address literals and templates whose
// channel is computed (`$H`, `$D` after the last `@`) or that only rewrite and start over are
// not listed: what they route depends on the address. Pure.
import type { ImtaConfig } from '../config/types.js';
import { normalizeDomain } from '../common/domain-name.js';
import { isValidDomain } from '../common/address.js';
import { compileTemplate, type CompiledTemplate } from '../config/rewrite-template.js';

export interface DomainRoute {
  /** Lower case, without the root dot. */
  domain: string;
  /** The rule names the domain's subdomains (`.d`, `*.d`), not the domain itself. */
  subdomains: boolean;
  /** The channel the template routes to, as imta.cnf names it. */
  channel: string;
}

/** The domain rules of imta.cnf with the channel each routes to, in file order. */
export function domainRoutes(imta: Pick<ImtaConfig, 'rules' | 'hostTable'>): DomainRoute[] {
  const routes: DomainRoute[] = [];
  for (const rule of imta.rules) {
    const pattern = normalizeDomain(rule.pattern);
    const subdomains = pattern.startsWith('*.') || pattern.startsWith('.');
    const domain = pattern.startsWith('*.') ? pattern.slice(2) : pattern.startsWith('.') ? pattern.slice(1) : pattern;
    if (!domain || domain.includes('*') || domain.startsWith('[') || !isValidDomain(domain)) continue;
    let template: CompiledTemplate;
    try {
      template = compileTemplate(rule.template);
    } catch {
      continue;
    }
    const channel = routedChannel(template, imta.hostTable);
    if (channel) routes.push({ domain, subdomains, channel });
  }
  return routes;
}

/** The channel a template names after its last `@` when that is plain text, else null. */
function routedChannel(t: CompiledTemplate, hostTable: ReadonlyMap<string, string>): string | null {
  if (t.form === 'error-only' || t.form === 'meta') return null;
  const tag = t.parts[t.parts.length - 1];
  if (!tag || tag.some((p) => p.kind !== 'text' && p.kind !== 'case')) return null;
  const text = tag.map((p) => (p.kind === 'text' ? p.text : '')).join('').toLowerCase();
  return hostTable.get(text) ?? null;
}
