// etc/aliases: `name: target, target…` as sendmail writes it; `#` comments, continuation lines
// start with white space. Local parts are case-insensitive; a quoted name is read as the
// local channel reads a recipient (`"Al\ice"` is alice).
import { readFileSync } from 'node:fs';
import { unquoteLocalPart } from '../common/address.js';
import type { Diagnostic } from './types.js';

export function parseAliases(file: string | null, diagnostics: Diagnostic[]): Map<string, string[]> {
  const aliases = new Map<string, string[]>();
  if (!file) return aliases;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    diagnostics.push({ file, line: 0, severity: 'error', message: `cannot read file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` });
    return aliases;
  }
  for (const e of aliasEntries(text)) {
    if ('error' in e) {
      diagnostics.push({ file, line: e.line, severity: 'error', message: e.error });
      continue;
    }
    if (aliases.has(e.name)) diagnostics.push({ file, line: e.line, severity: 'warning', message: `alias ${e.name} is defined again; the later definition wins` });
    aliases.set(e.name, e.targets);
  }
  return aliases;
}

export type AliasEntry = { line: number; name: string; targets: string[] } | { line: number; error: string };

/** The entries of an aliases file in order, each with the line it starts on (names lower case, unquoted). */
export function aliasEntries(text: string): AliasEntry[] {
  const entries: Array<{ line: number; text: string }> = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    if (/^\s*#/.test(raw) || raw.trim() === '') return;
    if (/^\s/.test(raw) && entries.length > 0) entries[entries.length - 1]!.text += ` ${raw.trim()}`;
    else entries.push({ line: i + 1, text: raw });
  });
  return entries.map((e): AliasEntry => {
    const m = /^\s*("[^"]+"|[^:\s]+)\s*:\s*(.*)$/.exec(e.text);
    const targets = m ? m[2]!.split(',').map((t) => t.trim()).filter(Boolean) : [];
    if (!m || targets.length === 0) return { line: e.line, error: `expected "name: target, …", found "${e.text.trim().slice(0, 60)}"` };
    return { line: e.line, name: unquoteLocalPart(m[1]!).toLowerCase(), targets };
  });
}
