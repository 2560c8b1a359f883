// The rewrite engine: rewrite rules of imta.cnf → destination channel and rewritten address.
export type { RewriteContext, RewriteStep, RewriteResult, Rewriter } from './types.js';
export { compileRewriter, MAX_REWRITE_PASSES } from './engine.js';
// The address syntax (src/common) and the template grammar (src/config) it is built on are part of its API.
export { parseAddress, formatAddress, isValidDomain, canonicalLocalPart, unquoteLocalPart } from '../common/address.js';
export type { ParsedAddress } from '../common/address.js';
export { extractHost, composeAddress } from './address.js';
export type { ExtractedHost } from './address.js';
export { hostProbes } from './probes.js';
export type { Probe, ProbeKind } from './probes.js';
export { compileTemplate, checkTemplate, TemplateError } from '../config/rewrite-template.js';
export type { CompiledTemplate, HostLocation, TemplateForm } from '../config/rewrite-template.js';
export { domainRoutes } from './domain-routes.js';
export { LOCAL_CHANNEL, routeRecipient } from './recipient-route.js';
export type { RecipientRoute, RewriteOutcome } from './recipient-route.js';
export type { DomainRoute } from './domain-routes.js';
