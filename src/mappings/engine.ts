// Applying a mapping table to an input string, as Messaging Server does: entries are tried top
// to bottom, the first whose pattern matches (case-blind) and whose conditions hold expands its
// template; the mapping then ends ($E, the default), goes on with the next entry ($C), goes on
// and makes one more pass at the end ($L), or starts over ($R), the output being the new input.
// Pure: the caller gives the compiled tables and the session's flags; nothing is read or logged.
import type { MappingsConfig } from './types.js';
import { compilePattern, matchPattern, MatchBudgetError, type CompiledPattern } from './pattern.js';
import { compileMappingTemplate, type CaseMode, type CompiledTemplate, type Condition, type Control, type TemplatePiece } from './template.js';

/** Where an entry was written, for reports and for the SMTP stages' log lines. */
export interface MappingEntryRef {
  table: string;
  file: string;
  line: number;
  pattern: string;
  template: string;
}

export interface CompiledEntry {
  ref: MappingEntryRef;
  pattern: CompiledPattern;
  template: CompiledTemplate;
}

export interface CompiledMappings {
  /** etc/mappings, or null when there is none (then there are no tables). */
  file: string | null;
  /** Upper-case table name → entries in file order. */
  tables: Map<string, CompiledEntry[]>;
}

export interface MappingContext {
  /** Flags `$:x` / `$;x` test (upper-case letters), e.g. T when TLS is in use. */
  flags?: ReadonlySet<string>;
  /** For `$?n?`; Math.random by default. */
  random?: () => number;
}

export interface MappingStep {
  entry: MappingEntryRef;
  input: string;
  output: string;
  /** Flags this entry set, in template order. */
  flags: string[];
  control: Control;
  /** Why a `$|table;…|` substitution failed (the output is then the entry's input); null when none did. */
  failedSubstitution: string | null;
}

export interface MappingResult {
  table: string;
  input: string;
  /** Whether the table exists at all. */
  tableFound: boolean;
  /** Whether any entry matched. */
  matched: boolean;
  /** The final output string (the input when nothing matched). */
  output: string;
  /** Every flag set by the matched entries, without repeats, in order of first appearance. */
  flags: string[];
  steps: MappingStep[];
  /** The mapping could not be finished (a loop, a pattern too costly): the result must not be trusted. */
  error: string | null;
}

/** Matched entries one mapping may go through ($C, $L and $R chains) before it is called a loop. */
export const MAX_MAPPING_STEPS = 100;
/** `$|table;…|` inside `$|table;…|` … deeper than this fails the substitution. */
const MAX_SUBSTITUTION_DEPTH = 8;

/** Compiles the tables of a validated configuration (config/mappings.ts has reported any error). */
export function compileMappings(config: MappingsConfig): CompiledMappings {
  const tables = new Map<string, CompiledEntry[]>();
  for (const table of config.tables.values()) {
    tables.set(
      table.name.toUpperCase(),
      table.entries.map((e) => ({
        ref: { table: table.name, file: e.file, line: e.line, pattern: e.pattern, template: e.template },
        pattern: compilePattern(e.pattern),
        template: compileMappingTemplate(e.template),
      })),
    );
  }
  return { file: config.file, tables };
}

export function applyMapping(mappings: CompiledMappings, table: string, input: string, context: MappingContext = {}): MappingResult {
  return apply(mappings, table.toUpperCase(), input, context, 0);
}

function apply(mappings: CompiledMappings, table: string, input: string, context: MappingContext, depth: number): MappingResult {
  const entries = mappings.tables.get(table);
  const result: MappingResult = { table, input, tableFound: entries !== undefined, matched: false, output: input, flags: [], steps: [], error: null };
  if (!entries) return result;
  const flags = new Set<string>();
  let current = input;
  let extraPass = false;
  let i = 0;
  while (i < entries.length || extraPass) {
    if (i >= entries.length) {
      extraPass = false;
      i = 0;
    }
    const entry = entries[i]!;
    let captures: string[] | null;
    try {
      captures = matchPattern(entry.pattern, current);
    } catch (err) {
      if (!(err instanceof MatchBudgetError)) throw err;
      result.error = `${entry.ref.file}:${entry.ref.line}: ${err.message}`;
      break;
    }
    if (!captures || !conditionsHold(entry.template.conditions, context)) {
      i++;
      continue;
    }
    if (result.steps.length >= MAX_MAPPING_STEPS) {
      result.error = `mapping ${table} did not end after ${MAX_MAPPING_STEPS} matched entries (a $C/$L/$R loop; last ${entry.ref.file}:${entry.ref.line})`;
      break;
    }
    const expanded = expand(mappings, entry, current, captures, context, depth);
    if (expanded.error) {
      result.error = expanded.error;
      break;
    }
    result.matched = true;
    result.steps.push({ entry: entry.ref, input: current, output: expanded.output, flags: expanded.flags, control: expanded.control, failedSubstitution: expanded.failedSubstitution });
    for (const f of expanded.flags) flags.add(f);
    current = expanded.output;
    if (expanded.control === 'E') break;
    if (expanded.control === 'R') {
      extraPass = false;
      i = 0;
      continue;
    }
    extraPass = expanded.control === 'L';
    i++;
  }
  result.output = current;
  result.flags = [...flags];
  return result;
}

function conditionsHold(conditions: Condition[], context: MappingContext): boolean {
  for (const c of conditions) {
    if (c.kind === 'flag-set' && !context.flags?.has(c.flag)) return false;
    if (c.kind === 'flag-clear' && context.flags?.has(c.flag)) return false;
    if (c.kind === 'chance' && !((context.random ?? Math.random)() * 100 < c.percent)) return false;
  }
  return true;
}

interface Expansion {
  output: string;
  flags: string[];
  control: Control;
  failedSubstitution: string | null;
  error: string | null;
}

/** Expands one entry's template left to right; a failed `$|…|` stops it with the entry's input as output. */
function expand(mappings: CompiledMappings, entry: CompiledEntry, input: string, captures: string[], context: MappingContext, depth: number): Expansion {
  const out: Expansion = { output: '', flags: [], control: 'E', failedSubstitution: null, error: null };
  let mode: CaseMode = 'original';
  let text = '';
  for (const piece of entry.template.pieces) {
    switch (piece.kind) {
      case 'flag':
        out.flags.push(piece.flag);
        break;
      case 'control':
        out.control = piece.control;
        break;
      case 'case':
        mode = piece.mode;
        break;
      case 'apply': {
        const argument = expandArgument(piece.argument, captures);
        const failure = depth + 1 > MAX_SUBSTITUTION_DEPTH
          ? `$|${piece.table};…| nested deeper than ${MAX_SUBSTITUTION_DEPTH}`
          : null;
        const sub = failure ? null : apply(mappings, piece.table, argument, context, depth + 1);
        if (sub?.error) {
          out.error = sub.error;
          return out;
        }
        const why = failure
          ?? (!sub!.tableFound ? `table ${piece.table} does not exist`
            : !sub!.matched ? `${piece.table} has no entry matching "${argument}"`
              : !sub!.flags.includes('Y') ? `${piece.table} did not answer $Y for "${argument}"`
                : null);
        if (why) {
          out.failedSubstitution = why;
          out.output = input;
          return out;
        }
        text += withCase(sub!.output, mode);
        break;
      }
      default:
        text += withCase(pieceText(piece, captures), mode);
    }
  }
  out.output = text;
  return out;
}

function expandArgument(pieces: TemplatePiece[], captures: string[]): string {
  let mode: CaseMode = 'original';
  let text = '';
  for (const piece of pieces) {
    if (piece.kind === 'case') mode = piece.mode;
    else text += withCase(pieceText(piece, captures), mode);
  }
  return text;
}

function pieceText(piece: TemplatePiece, captures: string[]): string {
  if (piece.kind === 'text') return piece.text;
  if (piece.kind === 'field') return captures[piece.n] ?? '';
  return '';
}

function withCase(text: string, mode: CaseMode): string {
  return mode === 'lower' ? text.toLowerCase() : mode === 'upper' ? text.toUpperCase() : text;
}
