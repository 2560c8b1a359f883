// The option-file format shared by dispatcher.cnf, job_controller.cnf and option.dat:
// `KEY=value` lines, comment lines, `[TYPE=NAME]` section headers, `<file` includes and `\`
// continuation. The `ini` package decodes values (quotes, escapes) but neither treats `!` as a
// comment nor keeps repeated keys or line numbers, so the lines are read here.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import ini from 'ini';
import type { Diagnostic } from './types.js';

export interface OptionEntry {
  key: string; // upper-case
  value: string;
  file: string;
  line: number;
}

export interface OptionSection {
  type: string; // upper-case, e.g. SERVICE, POOL, CHANNEL
  name: string; // as written
  file: string;
  line: number;
  entries: OptionEntry[];
}

export interface OptionFile {
  globals: OptionEntry[];
  sections: OptionSection[];
}

export interface OptionFileSyntax {
  /** Characters that start a comment line (after leading white space). */
  commentChars: string;
  /** Section types allowed in `[TYPE=NAME]`; empty = no sections. */
  sectionTypes: string[];
}

const MAX_INCLUDE_DEPTH = 3;

export function readOptionFile(file: string, syntax: OptionFileSyntax, diagnostics: Diagnostic[]): OptionFile {
  const result: OptionFile = { globals: [], sections: [] };
  readInto(file, syntax, result, diagnostics, 0, null);
  return result;
}

function readInto(file: string, syntax: OptionFileSyntax, out: OptionFile, diagnostics: Diagnostic[], depth: number, from: { file: string; line: number } | null): void {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const where = from ?? { file, line: 0 };
    diagnostics.push({ ...where, severity: 'error', message: `cannot read ${from ? 'included file ' + file : 'file'}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
    return;
  }
  const error = (line: number, message: string) => diagnostics.push({ file, line, severity: 'error', message });
  const physical = text.split(/\r?\n/);
  for (let i = 0; i < physical.length; i++) {
    const lineNo = i + 1;
    let line = physical[i]!;
    // `\` at the end continues the line; comment lines inside a continuation are skipped.
    while (line.endsWith('\\') && i + 1 < physical.length) {
      i++;
      const next = physical[i]!;
      if (isComment(next, syntax)) continue;
      line = line.slice(0, -1) + next.trim();
    }
    const trimmed = line.trim();
    if (!trimmed || isComment(trimmed, syntax)) continue;
    if (trimmed.startsWith('<')) {
      const target = trimmed.slice(1).trim();
      if (!target) error(lineNo, 'include line names no file');
      else if (depth >= MAX_INCLUDE_DEPTH) error(lineNo, `includes nest deeper than ${MAX_INCLUDE_DEPTH} levels`);
      else readInto(isAbsolute(target) ? target : resolve(dirname(file), target), syntax, out, diagnostics, depth + 1, { file, line: lineNo });
      continue;
    }
    if (trimmed.startsWith('[')) {
      const m = /^\[\s*([A-Za-z_]+)\s*=\s*([^\]\s]+)\s*\]$/.exec(trimmed);
      if (!m) {
        error(lineNo, `malformed section header "${trimmed}" (expected [TYPE=NAME])`);
        continue;
      }
      const type = m[1]!.toUpperCase();
      if (!syntax.sectionTypes.includes(type)) {
        error(lineNo, `unknown section type ${type} (expected ${syntax.sectionTypes.map((t) => `[${t}=…]`).join(', ') || 'none'})`);
        continue;
      }
      out.sections.push({ type, name: m[2]!, file, line: lineNo, entries: [] });
      continue;
    }
    const eq = trimmed.indexOf('=');
    const key = eq < 0 ? '' : trimmed.slice(0, eq).trim();
    if (eq < 0 || !/^[A-Za-z][A-Za-z0-9_.]*$/.test(key)) {
      error(lineNo, `expected OPTION=value, found "${truncate(trimmed)}"`);
      continue;
    }
    const entry: OptionEntry = { key: key.toUpperCase(), value: decodeValue(trimmed.slice(eq + 1).trim()), file, line: lineNo };
    const section = out.sections[out.sections.length - 1];
    (section ? section.entries : out.globals).push(entry);
  }
}

function isComment(line: string, syntax: OptionFileSyntax): boolean {
  const t = line.trimStart();
  return t.length > 0 && syntax.commentChars.includes(t[0]!);
}

/** Quoted values lose their quotes and escapes, as in INI files; bare values are kept as written. */
function decodeValue(raw: string): string {
  return raw.startsWith('"') || raw.startsWith("'") ? ini.unsafe(raw) : raw;
}

function truncate(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** Reads typed option values with file:line diagnostics. */
export class OptionReader {
  constructor(private readonly diagnostics: Diagnostic[]) {}

  error(entry: { file: string; line: number }, message: string): void {
    this.diagnostics.push({ file: entry.file, line: entry.line, severity: 'error', message });
  }

  warning(entry: { file: string; line: number }, message: string): void {
    this.diagnostics.push({ file: entry.file, line: entry.line, severity: 'warning', message });
  }

  /** Last value of each key (later lines override earlier ones), warning on keys not in `known`. */
  collect(entries: OptionEntry[], known: ReadonlySet<string>, where: string): Map<string, OptionEntry> {
    const map = new Map<string, OptionEntry>();
    for (const e of entries) {
      if (!known.has(e.key)) this.warning(e, `unknown option ${e.key}${where ? ` in ${where}` : ''} (ignored)`);
      else map.set(e.key, e);
    }
    return map;
  }

  integer(entry: OptionEntry | undefined, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
    if (!entry) return fallback;
    const v = parseIntegerValue(entry.value);
    if (v === null || v < min || v > max) {
      this.error(entry, `${entry.key} must be an integer${max === Number.MAX_SAFE_INTEGER ? ` ≥ ${min}` : ` from ${min} to ${max}`}, found "${entry.value}"`);
      return fallback;
    }
    return v;
  }
}

function parseIntegerValue(text: string): number | null {
  const t = text.trim();
  if (/^\d+$/.test(t)) return Number(t);
  const m = /^(\d+)%([0-9a-z]+)$/i.exec(t);
  if (!m) return null;
  const radix = Number(m[1]);
  if (radix < 2 || radix > 36) return null;
  // parseInt stops at the first digit outside the radix (`16%FZ` would be 15): check every digit.
  if ([...m[2]!.toLowerCase()].some((d) => parseInt(d, 36) >= radix)) return null;
  const v = parseInt(m[2]!, radix);
  return Number.isSafeInteger(v) ? v : null;
}
