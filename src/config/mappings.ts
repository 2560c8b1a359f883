// etc/mappings, Messaging Server's mapping file: a table name at column 1, then its entries on
// indented lines, each `pattern template` (white space inside either is written `$ `); `!`
// starts a comment line, a line ending in `\` goes on on the next, `<file` includes a file
// (three levels deep at most). Every pattern and template is compiled here so that an error is
// reported with file:line at load; the access tables' flags are checked too.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { checkAccessTemplate, isAccessTable, type AccessTable } from '../mappings/access.js';
import { compilePattern, PatternError } from '../mappings/pattern.js';
import { compileMappingTemplate, MappingTemplateError, type CompiledTemplate } from '../mappings/template.js';
import type { Diagnostic, MappingsConfig, MappingTable } from './types.js';

const MAX_INCLUDE_DEPTH = 3;
const TABLE_NAME = /^[A-Za-z][A-Za-z0-9_.-]*$/;

interface Line {
  text: string;
  file: string;
  line: number;
}

/** Parses `file` (null: no mappings file, no tables), adding every problem to `diagnostics`. */
export function parseMappings(file: string | null, diagnostics: Diagnostic[]): MappingsConfig {
  const config: MappingsConfig = { file, tables: new Map() };
  if (file === null) return config;
  const lines: Line[] = [];
  readLines(file, lines, diagnostics, 0, null);
  interface Where { file: string; line: number }
  const error = (at: Where, message: string) => diagnostics.push({ file: at.file, line: at.line, severity: 'error', message });
  const warning = (at: Where, message: string) => diagnostics.push({ file: at.file, line: at.line, severity: 'warning', message });
  const applied: Array<{ at: Line; table: string }> = [];
  const withErrors = new Set<MappingTable>(); // an entry was refused: "no entries" would say it twice

  let table: MappingTable | null = null;
  const refuse = (at: Where, message: string) => {
    error(at, message);
    if (table) withErrors.add(table);
  };
  for (const at of lines) {
    const trimmed = at.text.trim();
    if (!trimmed || trimmed.startsWith('!')) continue;
    if (!/^\s/.test(at.text)) {
      if (!TABLE_NAME.test(trimmed)) {
        error(at, `"${truncate(trimmed)}" at column 1 is no table name (a name starts with a letter and is alone on its line; indent entries)`);
        table = null;
        continue;
      }
      const key = trimmed.toUpperCase();
      const earlier = config.tables.get(key);
      if (earlier) {
        error(at, `table ${trimmed} is already defined at ${earlier.file}:${earlier.line}`);
        table = null;
        continue;
      }
      table = { name: trimmed, file: at.file, line: at.line, entries: [] };
      config.tables.set(key, table);
      continue;
    }
    if (!table) {
      error(at, 'entry outside a table (write the table name at column 1 above it)');
      continue;
    }
    const columns = splitColumns(trimmed);
    if (columns.length < 2) {
      refuse(at, `entry "${truncate(trimmed)}" has a pattern but no template`);
      continue;
    }
    if (columns.length > 2) {
      refuse(at, `entry has text after its template: "${truncate(columns.slice(2).join(' '))}" (write a space inside a pattern or template as "$ ")`);
      continue;
    }
    const [pattern, template] = columns as [string, string];
    const compiled = compileEntry(pattern, template);
    if (typeof compiled === 'string') {
      refuse(at, compiled);
      continue;
    }
    if (isAccessTable(table.name)) {
      const checked = checkAccessTemplate(table.name.toUpperCase() as AccessTable, compiled);
      for (const e of checked.errors) refuse(at, e);
      for (const w of checked.warnings) warning(at, w);
      if (checked.errors.length) continue;
    }
    for (const name of compiled.tables) applied.push({ at, table: name });
    table.entries.push({ pattern, template, file: at.file, line: at.line });
  }

  for (const t of config.tables.values()) if (t.entries.length === 0 && !withErrors.has(t)) warning(t, `table ${t.name} has no entries`);
  for (const { at, table: name } of applied) {
    if (!config.tables.has(name)) warning(at, `$|${name};…| names a table the file does not define (the substitution always fails)`);
  }
  return config;
}

/** Compiles one entry; a string is the error. */
function compileEntry(pattern: string, template: string): CompiledTemplate | string {
  try {
    const p = compilePattern(pattern);
    const t = compileMappingTemplate(template);
    if (t.maxField >= p.saved) {
      return `template uses $${t.maxField}, but the pattern saves ${p.saved === 0 ? 'no wildcard' : `only $0${p.saved > 1 ? `…$${p.saved - 1}` : ''}`}`;
    }
    return t;
  } catch (err) {
    if (err instanceof PatternError) return `pattern ${pattern}: ${err.message}`;
    if (err instanceof MappingTemplateError) return `template ${template}: ${err.message}`;
    throw err;
  }
}

/** Splits an entry at white space that is not quoted by `$`. */
function splitColumns(text: string): string[] {
  const columns: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '$' && i + 1 < text.length) {
      current += ch + text[i + 1];
      i++;
    } else if (ch === ' ' || ch === '\t') {
      if (current) columns.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  if (current) columns.push(current);
  return columns;
}

/** The logical lines of `file` and of the files it includes, continuations joined. */
function readLines(file: string, out: Line[], diagnostics: Diagnostic[], depth: number, from: Line | null): void {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const where = from ?? { file, line: 0 };
    diagnostics.push({ file: where.file, line: where.line, severity: 'error', message: `cannot read ${from ? `included file ${file}` : 'file'}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
    return;
  }
  const physical = text.split(/\r?\n/);
  for (let i = 0; i < physical.length; i++) {
    const at: Line = { text: physical[i]!, file, line: i + 1 };
    while (continues(at.text) && i + 1 < physical.length) {
      i++;
      at.text = at.text.slice(0, -1) + physical[i]!.trimStart();
    }
    if (at.text.startsWith('<')) {
      const target = at.text.slice(1).trim();
      if (!target) diagnostics.push({ file, line: at.line, severity: 'error', message: 'include line names no file' });
      else if (depth >= MAX_INCLUDE_DEPTH) diagnostics.push({ file, line: at.line, severity: 'error', message: `includes nest deeper than ${MAX_INCLUDE_DEPTH} levels` });
      else readLines(isAbsolute(target) ? target : resolve(dirname(file), target), out, diagnostics, depth + 1, at);
      continue;
    }
    out.push(at);
  }
}

/** A trailing `\` continues the line, unless it is the `$\` of a template (an odd run of `$` before it). */
function continues(text: string): boolean {
  if (!text.endsWith('\\')) return false;
  let dollars = 0;
  for (let i = text.length - 2; i >= 0 && text[i] === '$'; i--) dollars++;
  return dollars % 2 === 0;
}

function truncate(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
