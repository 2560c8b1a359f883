// Mapping-entry templates (the right column of etc/mappings), compiled once into pieces that
// are expanded left to right for each match: text, `$n` wildcard substitutions, case changes
// (`$\` lower, `$^` upper, `$_` as is), `$|table;argument|` sub-mappings, the processing
// controls `$C $E $L $R`, the entry conditions `$:x`, `$;x`, `$?n?`, and every other `$letter`
// (or `$<`, `$>`, `$!`, `$,`) as a flag for the table's user (the access tables read $Y, $N …).

/** Thrown for a template that cannot be compiled; the message says why (the caller adds file:line). */
export class MappingTemplateError extends Error {}

export type CaseMode = 'lower' | 'upper' | 'original';
export type Control = 'C' | 'E' | 'L' | 'R';

export type TemplatePiece =
  | { kind: 'text'; text: string }
  | { kind: 'field'; n: number }
  | { kind: 'case'; mode: CaseMode }
  | { kind: 'flag'; flag: string } // upper-case letter, or one of < > ! ,
  | { kind: 'control'; control: Control }
  | { kind: 'apply'; table: string; argument: TemplatePiece[] };

export type Condition =
  | { kind: 'flag-set'; flag: string } // `$:x`
  | { kind: 'flag-clear'; flag: string } // `$;x`
  | { kind: 'chance'; percent: number }; // `$?n?`

export interface CompiledTemplate {
  source: string;
  pieces: TemplatePiece[];
  conditions: Condition[];
  /** The highest `$n` used (-1 when none), to check against the pattern's saved wildcards. */
  maxField: number;
  /** Every flag the template sets, in order of appearance. */
  flags: string[];
  /** Tables named by `$|table;…|`. */
  tables: string[];
}

const CONTROLS = new Set(['C', 'E', 'L', 'R']);
const FLAG_PUNCTUATION = new Set(['<', '>', '!', ',']);
const UNSUPPORTED: Record<string, string> = {
  '{': '${…} (general database lookups)',
  ']': '$]…[ (LDAP lookups)',
  '[': '$[…] (site-supplied routines)',
  '#': '$#…# (sequence numbers)',
  '=': '$= (LDAP filter quoting)',
};

export function compileMappingTemplate(source: string): CompiledTemplate {
  const out: CompiledTemplate = { source, pieces: [], conditions: [], maxField: -1, flags: [], tables: [] };
  out.pieces = compilePieces(source, 0, source.length, out, false);
  return out;
}

function compilePieces(source: string, start: number, end: number, out: CompiledTemplate, inArgument: boolean): TemplatePiece[] {
  const pieces: TemplatePiece[] = [];
  let text = '';
  const endText = () => {
    if (text) pieces.push({ kind: 'text', text });
    text = '';
  };
  let i = start;
  while (i < end) {
    const ch = source[i]!;
    if (ch !== '$') {
      text += ch;
      i++;
      continue;
    }
    const next = source[i + 1];
    if (next === undefined || i + 1 >= end) throw new MappingTemplateError('template ends with a lone $ (write $$ for a dollar sign)');
    const upper = next.toUpperCase();
    if (/\d/.test(next)) {
      endText();
      pieces.push({ kind: 'field', n: Number(next) });
      out.maxField = Math.max(out.maxField, Number(next));
      i += 2;
    } else if (next === '\\' || next === '^' || next === '_') {
      endText();
      pieces.push({ kind: 'case', mode: next === '\\' ? 'lower' : next === '^' ? 'upper' : 'original' });
      i += 2;
    } else if (next === '|') {
      if (inArgument) throw new MappingTemplateError('$|…| cannot be nested inside the argument of another $|…|');
      const close = source.indexOf('|', i + 2);
      const semi = source.indexOf(';', i + 2);
      if (close < 0 || close >= end) throw new MappingTemplateError('$| is not closed with | (write $|TABLE;argument|)');
      if (semi < 0 || semi > close) throw new MappingTemplateError(`$|${source.slice(i + 2, close)}| names no argument (write $|TABLE;argument|)`);
      const table = source.slice(i + 2, semi).trim();
      if (!/^[A-Za-z][A-Za-z0-9_.-]*$/.test(table)) throw new MappingTemplateError(`"${table}" in $|…| is not a table name`);
      endText();
      pieces.push({ kind: 'apply', table: table.toUpperCase(), argument: compilePieces(source, semi + 1, close, out, true) });
      out.tables.push(table.toUpperCase());
      i = close + 1;
    } else if (next === ':' || next === ';') {
      const flag = source[i + 2];
      if (flag === undefined || i + 2 >= end || !/[a-z]/i.test(flag)) throw new MappingTemplateError(`$${next} must be followed by a flag letter`);
      out.conditions.push({ kind: next === ':' ? 'flag-set' : 'flag-clear', flag: flag.toUpperCase() });
      i += 3;
    } else if (next === '?') {
      const close = source.indexOf('?', i + 2);
      const n = close < 0 ? '' : source.slice(i + 2, close);
      if (close < 0 || close >= end || !/^\d{1,3}$/.test(n) || Number(n) > 100) throw new MappingTemplateError('$? must be written $?n? with n a percentage from 0 to 100');
      out.conditions.push({ kind: 'chance', percent: Number(n) });
      i = close + 1;
    } else if (UNSUPPORTED[next]) {
      throw new MappingTemplateError(`${UNSUPPORTED[next]} is not supported by tsubame`);
    } else if (/[a-z]/i.test(next)) {
      if (inArgument) throw new MappingTemplateError(`flag $${next} cannot appear inside the argument of $|…|`);
      endText();
      if (CONTROLS.has(upper)) pieces.push({ kind: 'control', control: upper as Control });
      else {
        pieces.push({ kind: 'flag', flag: upper });
        out.flags.push(upper);
      }
      i += 2;
    } else if (FLAG_PUNCTUATION.has(next)) {
      if (inArgument) throw new MappingTemplateError(`flag $${next} cannot appear inside the argument of $|…|`);
      endText();
      pieces.push({ kind: 'flag', flag: next });
      out.flags.push(next);
      i += 2;
    } else {
      // `$$`, `$ ` (a space), `$*` …: the character itself.
      text += next;
      i += 2;
    }
  }
  endText();
  return pieces;
}
