// The rewrite engine: rewrite rules of imta.cnf → destination channel and rewritten address.
export type { RewriteContext, RewriteStep, RewriteResult, Rewriter } from './types.js';
export { compileRewriter, MAX_REWRITE_PASSES } from './engine.js';
export { parseAddress, formatAddress, extractHost, composeAddress, isValidDomain, canonicalLocalPart, unquoteLocalPart } from './address.js';
export type { ParsedAddress, ExtractedHost, HostLocation } from './address.js';
export { hostProbes } from './probes.js';
export type { Probe, ProbeKind } from './probes.js';
export { compileTemplate, checkTemplate, TemplateError } from './template.js';
export type { CompiledTemplate, TemplateForm } from './template.js';
export { domainRoutes } from './domain-routes.js';
export type { DomainRoute } from './domain-routes.js';
