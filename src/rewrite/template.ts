// Rewrite-rule templates expanded per address: the substitutions of a compiled template
// (src/config/rewrite-template.ts) filled in from one match. Pure (except `$W`, a random string).
import { randomBytes } from 'node:crypto';
import type { CaseMode, CompiledTemplate } from '../config/rewrite-template.js';

/** What the substitutions draw on for one match. */
export interface ExpansionInput {
  user: string; // $U
  matched: string; // $D
  unmatched: string; // $H
  literalRest: string; // $L
  wildLabels: string[]; // $&n $!n
  fixedLabels: string[]; // $*n $#n
  address: string; // $nA: the address being rewritten
  mailhost: string; // $nX: the local host
}

function dropLabels(value: string, n: number): string {
  if (n === 0) return value;
  const lead = value.startsWith('.') ? '.' : '';
  const labels = (lead ? value.slice(1) : value).split('.');
  return labels.length > n ? lead + labels.slice(n).join('.') : '';
}

function subaddress(user: string): [string, string] {
  if (user.startsWith('"')) return [user, ''];
  const plus = user.indexOf('+');
  return plus < 0 ? [user, ''] : [user.slice(0, plus), user.slice(plus + 1)];
}

/**
 * Expands the parts of a template. Returns null when a single-field substitution names a
 * label that does not exist (the rule then fails, as in Messaging Server).
 */
export function expandParts(t: CompiledTemplate, input: ExpansionInput): string[] | null {
  let mode: CaseMode = 'original';
  const apply = (s: string) => (mode === 'lower' ? s.toLowerCase() : mode === 'upper' ? s.toUpperCase() : s);
  const out: string[] = [];
  for (const part of t.parts) {
    let s = '';
    for (const p of part) {
      if (p.kind === 'case') mode = p.mode;
      else if (p.kind === 'text') s += apply(p.text);
      else if (p.kind === 'sub') {
        let v: string;
        switch (p.name) {
          case 'U': v = input.user; break;
          case '0U': v = subaddress(input.user)[0]; break;
          case '1U': v = subaddress(input.user)[1]; break;
          case 'D': v = dropLabels(input.matched, p.skip); break;
          case 'H': v = dropLabels(input.unmatched, p.skip); break;
          case 'L': v = input.literalRest; break;
          case 'W': v = randomBytes(8).toString('hex'); break;
        }
        s += apply(v);
      } else if (p.kind === 'field') {
        let v: string | undefined;
        const n = p.n ?? 0;
        switch (p.name) {
          case '&': v = input.wildLabels[n]; break;
          case '!': v = input.wildLabels[input.wildLabels.length - 1 - n]; break;
          case '*': v = input.fixedLabels[n]; break;
          case '#': v = input.fixedLabels[input.fixedLabels.length - 1 - n]; break;
          case 'A': v = input.address[n]; break;
          case 'X': v = input.mailhost.split('.')[n]; break;
        }
        if (v === undefined) return null;
        s += apply(v);
      }
    }
    out.push(s);
  }
  return out;
}
