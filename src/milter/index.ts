// The milter client's public face, for the SMTP server and the configuration (usage: session.ts).
// Settings by their Postfix names: smtpd_milters → `filters` (parseFilterList, per-filter
// `{ … }` overrides included), milter_connect_timeout / milter_command_timeout /
// milter_content_timeout → `timeouts` (30 s, 30 s, 300 s), milter_default_action →
// `defaultAction` (tempfail), milter_<stage>_macros → `macros`.
export { MilterSession, connectEvent } from './session.js';
export type { ClientInfo, MessageContent, MessageResult, MessageVerdict, MilterVerdict, SessionOptions } from './session.js';
export { applyModifications, applyHeaderEdits, applyRecipientEdits, senderChange, replacedBody, milterHeader } from './modifications.js';
export type { Modification, EditedMessage, RecipientEdits } from './modifications.js';
export { milterSettings, MILTER_DEFAULTS, parseFilterList, parseFilterAddress, parsePostfixTime, DEFAULT_ACTIONS } from './settings.js';
export type { DefaultAction, FilterAddress, FilterSpec, FilterTimeouts, MilterSettings, ParseResult } from './settings.js';
export { DEFAULT_MACRO_LISTS } from './macros.js';
export type { MacroFacts } from './macros.js';
export type { MilterReply } from './protocol.js';
