// The access mapping tables: which flags each may use, how a matched entry's output is read
// (flag arguments taken from the output string in Messaging Server's reading order, `|` between
// them, the refusal text last), and the decision an SMTP stage applies, with its reply:
//   PORT_ACCESS at connect:  554 5.7.1 text (421 4.7.1 when temporary, whatever code the text has), then close
//   FROM_ACCESS at MAIL, the four recipient tables at RCPT:  550 5.7.1 text: address (450 4.7.1)
// A mapping that cannot be finished (a loop) refuses temporarily: 421/451 4.3.0.
import { applyMapping, type CompiledMappings, type MappingEntryRef, type MappingResult, type MappingStep } from './engine.js';
import type { CompiledTemplate } from './template.js';

export const ACCESS_TABLES = ['PORT_ACCESS', 'FROM_ACCESS', 'ORIG_SEND_ACCESS', 'ORIG_MAIL_ACCESS', 'SEND_ACCESS', 'MAIL_ACCESS'] as const;
export type AccessTable = (typeof ACCESS_TABLES)[number];

export function isAccessTable(name: string): name is AccessTable {
  return (ACCESS_TABLES as readonly string[]).includes(name.toUpperCase());
}

/** The SMTP stage a table decides at. */
export function accessStage(table: AccessTable): 'connect' | 'mail' | 'rcpt' {
  return table === 'PORT_ACCESS' ? 'connect' : table === 'FROM_ACCESS' ? 'mail' : 'rcpt';
}

/** Flags with an argument, in the order their arguments are read from the output ($N and $F share the last slot). */
const ARGUMENT_ORDER: Record<'port' | 'address', string[]> = {
  port: ['<', '>', 'N', 'T'],
  address: ['U', 'A', 'G', 'J', 'K', 'I', '<', '>', 'D', 'T', 'X', ',', 'N'],
};

/** Flags tsubame acts on (the decision carries them), per kind of table. */
const APPLIED: Record<'port' | 'address', Set<string>> = {
  port: new Set(['Y', 'N', 'F', 'T', '<', '>']),
  address: new Set(['Y', 'N', 'F', 'B', 'H', 'D', 'T', 'X', '<', '>']),
};

/** Flags Messaging Server defines for the address tables that tsubame reads but does not apply. */
const IGNORED: Record<string, string> = {
  U: 'selective debugging',
  A: 'adding a header line',
  G: 'setting a conversion tag',
  J: 'replacing the envelope From',
  K: 'replacing the Sender: address',
  I: 'checking a user group',
  V: 'forced discard',
  Z: 'forced jettison',
  '!': 'disabling vacation replies',
  ',': 'spam score adjustment',
};

/** The `$:x` flags each table's probes can have set. */
const CONDITION_FLAGS: Record<AccessTable, string> = {
  PORT_ACCESS: '',
  FROM_ACCESS: 'AT',
  ORIG_SEND_ACCESS: 'ATELSDF',
  SEND_ACCESS: 'ATELSDF',
  ORIG_MAIL_ACCESS: 'ATELSDF',
  MAIL_ACCESS: 'ATELSDF',
};

const kindOf = (table: AccessTable): 'port' | 'address' => (table === 'PORT_ACCESS' ? 'port' : 'address');

/** What is wrong with a template in an access table: errors refuse the file, warnings are reported. */
export function checkAccessTemplate(table: AccessTable, template: CompiledTemplate): { errors: string[]; warnings: string[] } {
  const errors: string[] = [];
  const warnings: string[] = [];
  const kind = kindOf(table);
  for (const flag of new Set(template.flags)) {
    if (APPLIED[kind].has(flag)) continue;
    if (kind === 'address' && IGNORED[flag]) warnings.push(`$${flag} (${IGNORED[flag]}) is not applied by tsubame (ignored)`);
    else errors.push(`$${flag} is not a ${table} flag (${table} knows ${[...APPLIED[kind]].map((f) => `$${f}`).join(' ')}${kind === 'address' ? ' and more' : ''})`);
  }
  const settable = CONDITION_FLAGS[table];
  for (const c of template.conditions) {
    if (c.kind !== 'chance' && !settable.includes(c.flag)) warnings.push(`$${c.kind === 'flag-set' ? ':' : ';'}${c.flag} tests a flag ${table} probes never have (${settable ? settable.split('').join(' ') : 'none'})`);
  }
  return { errors, warnings };
}

export interface AccessDecision {
  table: AccessTable;
  probe: string;
  verdict: 'accept' | 'refuse';
  /** The line the SMTP stage answers with when refusing (`550 5.7.1 text: address`); null when accepting. */
  reply: string | null;
  smtpCode: number | null;
  enhancedCode: string | null;
  /** The refusal text (the entry's, else the default); null when accepting. */
  text: string | null;
  /** A 4xx refusal: the client may try again later. */
  temporary: boolean;
  /** `$D`: seconds to wait before answering; null when none. */
  delaySeconds: number | null;
  /** `$D` positive: the delay applies to every later command of the transaction; negative: to this one only. */
  delayEveryCommand: boolean;
  /** `$H`: keep the message as held. */
  hold: boolean;
  /** `$B`: accept but discard (the bitbucket). */
  discard: boolean;
  /** `$T` in the address tables: the tag Messaging Server prefixes to later probes; null when none. */
  tag: string | null;
  /** `$<` (on any match), `$>` (on refusal), PORT_ACCESS `$T` (the connection log): texts to log. */
  log: { onMatch: string | null; onRefusal: string | null; connection: string | null };
  /** The entry that decided (the last one matched); null when none matched (accepted: no restriction). */
  matched: MappingEntryRef | null;
  /** The mapping's output string and flags, and every entry it went through. */
  output: string;
  flags: string[];
  steps: MappingStep[];
  /** Arguments that could not be used (a `$D` that is no number …), for the operator. */
  problems: string[];
  /** Set when the mapping could not be finished; the verdict is then a temporary refusal. */
  error: string | null;
}

export interface AccessCheck {
  /** `$:x` flags of the session (see probes.ts sessionFlags). */
  flags?: ReadonlySet<string>;
  /** The address the reply names (MAIL: the sender, RCPT: the recipient); unused for PORT_ACCESS. */
  address?: string;
  random?: () => number;
}

/** Probes `table` (absent table: accept, nothing matched) and reads the result as an access decision. */
export function checkAccess(mappings: CompiledMappings, table: AccessTable, probe: string, check: AccessCheck = {}): AccessDecision {
  const result = applyMapping(mappings, table, probe, { flags: check.flags, random: check.random });
  return accessDecision(table, result, check.address ?? null);
}

/** Reads a mapping result of an access table. `address` is what the reply names after the text. */
export function accessDecision(table: AccessTable, result: MappingResult, address: string | null): AccessDecision {
  const decision: AccessDecision = {
    table,
    probe: result.input,
    verdict: 'accept',
    reply: null,
    smtpCode: null,
    enhancedCode: null,
    text: null,
    temporary: false,
    delaySeconds: null,
    delayEveryCommand: false,
    hold: false,
    discard: false,
    tag: null,
    log: { onMatch: null, onRefusal: null, connection: null },
    matched: result.steps.length ? result.steps[result.steps.length - 1]!.entry : null,
    output: result.output,
    flags: result.flags,
    steps: result.steps,
    problems: [],
    error: result.error,
  };
  const stage = accessStage(table);
  if (result.error) {
    // Never accept by default what the table might refuse: try again later.
    return refuse(decision, stage, { code: stage === 'connect' ? 421 : 451, enhanced: '4.3.0', text: 'temporary policy failure, try again later' }, address);
  }
  if (!result.matched) return decision;

  const flags = new Set(result.flags);
  const args = readArguments(result.output, flags, ARGUMENT_ORDER[kindOf(table)]);
  decision.log.onMatch = args.get('<') ?? null;
  if (table === 'PORT_ACCESS') {
    decision.log.connection = args.get('T') ?? null;
  } else {
    decision.tag = args.get('T') ?? null;
    decision.hold = flags.has('H');
    decision.discard = flags.has('B');
    const delay = args.get('D');
    if (delay !== undefined) {
      if (/^\s*[+-]?\d+\s*$/.test(delay)) {
        const hundredths = Number(delay.trim());
        if (hundredths !== 0) {
          decision.delaySeconds = Math.abs(hundredths) / 100;
          decision.delayEveryCommand = hundredths > 0;
        }
      } else {
        decision.problems.push(`$D argument "${delay}" is not a number of hundredths of seconds (no delay)`);
      }
    }
  }
  if (!flags.has('N') && !flags.has('F')) return decision;

  decision.log.onRefusal = args.get('>') ?? null;
  let enhanced: string | null = null;
  const x = args.get('X');
  if (x !== undefined) {
    if (/^[45]\.\d{1,3}\.\d{1,3}$/.test(x.trim())) enhanced = x.trim();
    else decision.problems.push(`$X argument "${x}" is not an enhanced status code such as 5.7.1 or 4.7.1 (ignored)`);
  }
  return refuse(decision, stage, refusalReply(stage, args.get('N') ?? '', enhanced), address);
}

/**
 * Takes the arguments of the flags set, in reading order, from the output string: each up to the
 * next `|`, except the last one set, which takes the rest (so a refusal text may contain `|`).
 */
function readArguments(output: string, flags: ReadonlySet<string>, order: string[]): Map<string, string> {
  const present = order.filter((f) => (f === 'N' ? flags.has('N') || flags.has('F') : flags.has(f)));
  const args = new Map<string, string>();
  let rest = output;
  present.forEach((flag, index) => {
    const bar = rest.indexOf('|');
    if (index === present.length - 1 || bar < 0) {
      args.set(flag, rest);
      rest = '';
    } else {
      args.set(flag, rest.slice(0, bar));
      rest = rest.slice(bar + 1);
    }
  });
  return args;
}

interface Reply {
  code: number;
  enhanced: string;
  text: string;
}

const DEFAULT_TEXT = { connect: 'connection refused by policy', mail: 'you are not allowed to use this address', rcpt: 'you are not allowed to use this address' };
const MAX_TEXT = 400;

/**
 * The reply for a refusal text: a text may start with its own code (`421 …`, `550 5.7.0 …`);
 * else `$X` gives the enhanced code (4.x.x makes it temporary); else 554/550 5.7.1.
 */
function refusalReply(stage: 'connect' | 'mail' | 'rcpt', raw: string, xCode: string | null): Reply {
  // Control characters could come from a probe field through `$n`: a reply stays one line.
  let text = raw.replace(/[\x00-\x1f\x7f]/g, '?').trim();
  let code: number | null = null;
  let enhanced: string | null = xCode;
  const own = /^([45]\d\d)(?:[ -]+|$)(?:([45]\.\d{1,3}\.\d{1,3})(?:\s+|$))?/.exec(text);
  if (own) {
    code = Number(own[1]);
    if (own[2]?.startsWith(own[1]![0]!)) enhanced = own[2];
    text = text.slice(own[0].length);
  }
  if (enhanced && code !== null && !enhanced.startsWith(String(code)[0]!)) enhanced = null;
  const temporary = code !== null ? code < 500 : enhanced?.startsWith('4') === true;
  // In place of the greeting only 554 and 421 are answers (RFC 5321 §3.1): the SMTP server sends
  // nothing else, so the decision (and `imsimta test -mapping`) says that code, not the text's.
  if (stage === 'connect') code = temporary ? 421 : 554;
  code ??= temporary ? 450 : 550;
  enhanced ??= temporary ? '4.7.1' : '5.7.1';
  if (text.length > MAX_TEXT) text = `${text.slice(0, MAX_TEXT)}...`;
  return { code, enhanced, text: text || DEFAULT_TEXT[stage] };
}

function refuse(decision: AccessDecision, stage: 'connect' | 'mail' | 'rcpt', reply: Reply, address: string | null): AccessDecision {
  decision.verdict = 'refuse';
  decision.smtpCode = reply.code;
  decision.enhancedCode = reply.enhanced;
  decision.text = reply.text;
  decision.temporary = reply.code < 500;
  const who = stage === 'connect' || address === null ? '' : `: ${address === '' ? '<>' : address}`;
  decision.reply = `${reply.code} ${reply.enhanced} ${reply.text}${who}`;
  return decision;
}

/** The first refusal among decisions taken in order (e.g. the recipient tables), else null. */
export function firstRefusal(decisions: AccessDecision[]): AccessDecision | null {
  return decisions.find((d) => d.verdict === 'refuse') ?? null;
}
