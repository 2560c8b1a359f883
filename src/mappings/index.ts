// The mapping tables of etc/mappings: the pure matcher and the access tables' decisions.
export { compileMappings, applyMapping, MAX_MAPPING_STEPS } from './engine.js';
export type { CompiledMappings } from './engine.js';
export { compilePattern, matchPattern, PatternError } from './pattern.js';
;
export { compileMappingTemplate, MappingTemplateError } from './template.js';
;
export { ACCESS_TABLES, accessDecision, type AccessDecision, accessStage, checkAccess, firstRefusal, isAccessTable } from './access.js';
export type { AccessTable } from './access.js';
export { checkFromAccess, checkPortAccess, checkRecipientAccess } from './checks.js';
;
export { fromAccessProbe, mailAccessProbe, portAccessProbe, sendAccessProbe, sessionFlags } from './probes.js';
export type { SessionFacts } from './probes.js';
