// The mapping tables of etc/mappings: the pure matcher and the access tables' decisions.
export { compileMappings, applyMapping, MAX_MAPPING_STEPS, MAX_SUBSTITUTION_DEPTH } from './engine.js';
export type { CompiledMappings, CompiledEntry, MappingContext, MappingEntryRef, MappingResult, MappingStep } from './engine.js';
export { compilePattern, matchPattern, PatternError, MatchBudgetError, MATCH_STEP_BUDGET } from './pattern.js';
export type { CompiledPattern } from './pattern.js';
export { compileMappingTemplate, MappingTemplateError } from './template.js';
export type { CompiledTemplate } from './template.js';
export { ACCESS_TABLES, accessDecision, accessStage, checkAccess, checkAccessTemplate, firstRefusal, isAccessTable } from './access.js';
export type { AccessCheck, AccessDecision, AccessTable } from './access.js';
export { checkFromAccess, checkPortAccess, checkRecipientAccess } from './checks.js';
export type { RecipientCheck } from './checks.js';
export { appInfo, fromAccessProbe, mailAccessProbe, portAccessProbe, probeAddress, sendAccessProbe, sessionFlags } from './probes.js';
export type { ConnectionFacts, RecipientFacts, SenderFacts, SessionFacts, SessionFlagFacts } from './probes.js';
