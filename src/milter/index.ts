// The milter client's public face, for the SMTP server and the configuration (usage: session.ts).
// Settings by their Postfix names: smtpd_milters → `filters` (parseFilterList, per-filter
// `{ … }` overrides included), milter_connect_timeout / milter_command_timeout /
// milter_content_timeout → `timeouts` (30 s, 30 s, 300 s), milter_default_action →
// `defaultAction` (tempfail), milter_<stage>_macros → `macros`.
export { MilterSession } from './session.js';
export type { ClientInfo, MessageVerdict, MilterVerdict } from './session.js';
export { applyModifications } from './modifications.js';
export type { Modification } from './modifications.js';
export { milterSettings } from './settings.js';
export type { MilterSettings } from './settings.js';
export type { MilterReply } from './protocol.js';
