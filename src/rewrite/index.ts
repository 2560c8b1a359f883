// The rewrite engine: rewrite rules of imta.cnf → destination channel and rewritten address.
export type { HostedDomains, RewriteContext, RewriteResult, Rewriter } from './types.js';
export { compileRewriter, rulesAskHostedDomains } from './engine.js';
// The address syntax (src/common) and the template grammar (src/config) it is built on are part of its API.
export { parseAddress, isValidDomain, canonicalLocalPart, unquoteLocalPart } from '../common/address.js';
;
export { extractHost } from './address.js';
;
export { hostProbes } from './probes.js';
;
export { compileTemplate, checkTemplate } from '../config/rewrite-template.js';
;
export { domainRoutes } from './domain-routes.js';
export { LOCAL_CHANNEL, routeRecipient } from './recipient-route.js';
export type { RecipientRoute, RewriteOutcome } from './recipient-route.js';
;
