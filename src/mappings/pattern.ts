// Mapping-entry patterns (the left column of etc/mappings): compiled once into tokens, then
// matched case-blind against a probe string, returning the text each saved wildcard took.
// Messaging Server's wildcards: `*` (greedy, or lazy after `$_`), `%`, globs `$A% $D* …`,
// character sets `$[a-z]%`, back matches `$0*`, IP networks `$(v4/prefix)`, `$<v4/ignored-bits>`
// and `${v6/prefix}`, `$@`/`$^` to stop/start saving the next wildcard, and `$` quoting the rest.
import net from 'node:net';
import { ipInCidrs, parseCidr, type Cidr } from '../common/cidr.js';

/** Thrown for a pattern that cannot be compiled; the message says why (the caller adds file:line). */
export class PatternError extends Error {}

/** Thrown while matching when a pattern with back matches takes too many steps on one probe. */
export class MatchBudgetError extends Error {}

type CharTest = (ch: string) => boolean;

export type PatternToken =
  | { kind: 'text'; text: string } // lower-cased
  | { kind: 'one'; test: CharTest | null; save: boolean } // `%`, `$D%`, `$[…]%`
  | { kind: 'run'; test: CharTest | null; save: boolean; lazy: boolean } // `*`, `$D*`, `$[…]*`
  | { kind: 'back'; n: number } // `$n*`: the text saved wildcard n took
  | { kind: 'ip'; networks: Cidr[]; family: 4 | 6; save: boolean };

export interface CompiledPattern {
  source: string;
  tokens: PatternToken[];
  /** How many wildcards save their text ($0 … $n-1 in the template). */
  saved: number;
}

const GLOBS: Record<string, CharTest> = {
  A: (c) => /^[a-z]$/i.test(c),
  B: (c) => c === '0' || c === '1',
  D: (c) => c >= '0' && c <= '9',
  H: (c) => /^[0-9a-f]$/i.test(c),
  O: (c) => c >= '0' && c <= '7',
  S: (c) => /^[0-9a-z_$]$/i.test(c),
  T: (c) => c === ' ' || c === '\t' || c === '\v',
  X: (c) => /^[0-9a-f]$/i.test(c),
};

/** A back match or a long run over a long probe: more steps than this is a refusal to go on. */
const MATCH_STEP_BUDGET = 50_000;

export function compilePattern(source: string): CompiledPattern {
  const tokens: PatternToken[] = [];
  let saved = 0;
  let save = true;
  let lazy = false;
  let text = '';
  const endText = () => {
    if (text) tokens.push({ kind: 'text', text: text.toLowerCase() });
    text = '';
  };
  const wildcard = (kind: 'one' | 'run', test: CharTest | null) => {
    endText();
    tokens.push(kind === 'one' ? { kind, test, save } : { kind, test, save, lazy });
    if (save) saved++;
    save = true;
    lazy = false;
  };
  let i = 0;
  while (i < source.length) {
    const ch = source[i]!;
    if (ch === '*' || ch === '%') {
      wildcard(ch === '*' ? 'run' : 'one', null);
      i++;
      continue;
    }
    if (ch !== '$') {
      text += ch;
      i++;
      continue;
    }
    const next = source[i + 1];
    if (next === undefined) throw new PatternError('pattern ends with a lone $ (write $$ for a dollar sign)');
    const upper = next.toUpperCase();
    if (/\d/.test(next)) {
      if (source[i + 2] !== '*') throw new PatternError(`$${next} in a pattern must be followed by * (a back match $${next}*)`);
      const n = Number(next);
      if (n >= saved) throw new PatternError(`back match $${n}* refers to wildcard ${n}, but only ${saved} wildcard${saved === 1 ? ' comes' : 's come'} before it`);
      endText();
      tokens.push({ kind: 'back', n });
      i += 3;
    } else if (GLOBS[upper] && next !== '$') {
      const kind = source[i + 2];
      if (kind !== '%' && kind !== '*') throw new PatternError(`glob $${next} must be followed by % or * ($${upper}% one, $${upper}* any number)`);
      wildcard(kind === '%' ? 'one' : 'run', GLOBS[upper]);
      i += 3;
    } else if (next === '[') {
      const { test, end } = readCharSet(source, i + 2);
      const kind = source[end + 1];
      if (kind !== '%' && kind !== '*') throw new PatternError(`character set ${source.slice(i, end + 1)} must be followed by % or *`);
      wildcard(kind === '%' ? 'one' : 'run', test);
      i = end + 2;
    } else if (next === '(' || next === '<' || next === '{') {
      const close = { '(': ')', '<': '>', '{': '}' }[next];
      const end = source.indexOf(close, i + 2);
      if (end < 0) throw new PatternError(`$${next} is not closed with ${close}`);
      endText();
      tokens.push(ipToken(next, source.slice(i + 2, end), save));
      if (save) saved++;
      save = true;
      lazy = false;
      i = end + 1;
    } else if (next === '_') {
      lazy = true;
      i += 2;
    } else if (next === '@') {
      save = false;
      i += 2;
    } else if (next === '^') {
      save = true;
      i += 2;
    } else if (/[a-z]/i.test(next)) {
      throw new PatternError(`unknown pattern sequence $${next} (globs are $A $B $D $H $O $S $T $X followed by % or *)`);
    } else {
      // `$$`, `$*`, `$%`, `$ ` (a space), `$|` …: the character itself.
      text += next;
      i += 2;
    }
  }
  endText();
  return { source, tokens, saved };
}

/** `$[…]` from `start` (just after `[`): characters and `a-z` ranges, `\` quoting `-`, `]` and `\`. */
function readCharSet(source: string, start: number): { test: CharTest; end: number } {
  const singles = new Set<string>();
  const ranges: Array<[string, string]> = [];
  let i = start;
  const take = (): string => {
    const c = source[i];
    if (c === undefined) throw new PatternError('$[ is not closed with ]');
    if (c === '\\') {
      const q = source[i + 1];
      if (q === undefined) throw new PatternError('$[ is not closed with ]');
      i += 2;
      return q;
    }
    i++;
    return c;
  };
  while (true) {
    if (source[i] === undefined) throw new PatternError('$[ is not closed with ]');
    if (source[i] === ']') break;
    const c = take();
    if (source[i] === '-' && source[i + 1] !== undefined && source[i + 1] !== ']') {
      i++;
      const to = take();
      if (to < c) throw new PatternError(`range ${c}-${to} in $[…] runs backwards`);
      ranges.push([c, to]);
    } else {
      singles.add(c);
    }
  }
  if (singles.size === 0 && ranges.length === 0) throw new PatternError('empty character set $[]');
  const inSet = (c: string) => singles.has(c) || ranges.some(([a, b]) => c >= a && c <= b);
  // Matching is case-blind: either case of the probe's character may be the listed one.
  return { test: (c) => inSet(c) || inSet(c.toLowerCase()) || inSet(c.toUpperCase()), end: i };
}

function ipToken(open: '(' | '<' | '{', body: string, save: boolean): PatternToken {
  const family = open === '{' ? 6 : 4;
  const text = body.trim();
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  if (net.isIP(address) !== family) {
    throw new PatternError(`$${open}${body}${open === '(' ? ')' : open === '<' ? '>' : '}'} needs an IPv${family} address${family === 4 ? '' : ' (IPv4 networks are $(…) or $<…>)'}`);
  }
  const bits = family === 4 ? 32 : 128;
  let prefix = bits;
  if (slash >= 0) {
    const n = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(n) || Number(n) > bits) throw new PatternError(`bad bit count "${n}" in $${open}${body}… (0 to ${bits})`);
    // `$<a.b.c.d/n>` names the low bits to ignore; `$(…/n)` and `${…/n}` the prefix bits that count.
    prefix = open === '<' ? bits - Number(n) : Number(n);
  }
  const cidr = parseCidr(`${address}/${prefix}`);
  if (!cidr) throw new PatternError(`bad network in $${open}${body}…`);
  return { kind: 'ip', networks: [cidr], family, save };
}

/**
 * Matches `input` against the pattern: the saved wildcards' texts (original case), or null.
 * Throws MatchBudgetError when a pattern with back matches runs past MATCH_STEP_BUDGET steps.
 */
export function matchPattern(pattern: CompiledPattern, input: string): string[] | null {
  const lower = input.toLowerCase();
  const tokens = pattern.tokens;
  const hasBack = tokens.some((t) => t.kind === 'back');
  // Without back matches, whether the rest matches from (token, position) does not depend on
  // what was saved before: a failure there is remembered, which keeps `*a*a*a…b` polynomial.
  const width = input.length + 1;
  const failed = hasBack ? null : new Uint8Array(tokens.length * width);
  // Saved wildcards as [start, end) offsets, pushed and popped while backtracking.
  const starts: number[] = [];
  const ends: number[] = [];
  let steps = 0;

  const step = (ti: number, pos: number): boolean => {
    if (hasBack && ++steps > MATCH_STEP_BUDGET) throw new MatchBudgetError(`pattern ${pattern.source} took more than ${MATCH_STEP_BUDGET} steps`);
    if (ti === tokens.length) return pos === input.length;
    const key = ti * width + pos;
    if (failed?.[key] === 1) return false;
    const ok = tryToken(ti, pos);
    if (!ok && failed) failed[key] = 1;
    return ok;
  };

  const saving = (save: boolean, from: number, to: number, then: number): boolean => {
    if (!save) return step(then, to);
    starts.push(from);
    ends.push(to);
    if (step(then, to)) return true;
    starts.pop();
    ends.pop();
    return false;
  };

  const tryToken = (ti: number, pos: number): boolean => {
    const t = tokens[ti]!;
    switch (t.kind) {
      case 'text':
        return lower.startsWith(t.text, pos) && step(ti + 1, pos + t.text.length);
      case 'one': {
        const c = input[pos];
        if (c === undefined || (t.test && !t.test(c))) return false;
        return saving(t.save, pos, pos + 1, ti + 1);
      }
      case 'run': {
        let max = pos;
        if (t.test) while (max < input.length && t.test(input[max]!)) max++;
        else max = input.length;
        // When literal text follows, only the places where it starts are worth trying.
        const next = tokens[ti + 1];
        const worth = next?.kind === 'text' ? (end: number) => lower.startsWith(next.text, end) : () => true;
        if (t.lazy) {
          for (let end = pos; end <= max; end++) if (worth(end) && saving(t.save, pos, end, ti + 1)) return true;
        } else {
          for (let end = max; end >= pos; end--) if (worth(end) && saving(t.save, pos, end, ti + 1)) return true;
        }
        return false;
      }
      case 'back': {
        const want = lower.slice(starts[t.n], ends[t.n]);
        return lower.startsWith(want, pos) && step(ti + 1, pos + want.length);
      }
      case 'ip': {
        const chars = t.family === 4 ? /[0-9.]/ : /[0-9a-f:.]/i;
        let end = pos;
        while (end < input.length && chars.test(input[end]!)) end++;
        const address = input.slice(pos, end);
        if (!address || !ipInCidrs(address, t.networks)) return false;
        return saving(t.save, pos, end, ti + 1);
      }
    }
  };

  return step(0, 0) ? starts.map((from, i) => input.slice(from, ends[i])) : null;
}
