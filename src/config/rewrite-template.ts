// The grammar of rewrite-rule templates (the right side of imta.cnf's rules): a template compiled
// into separators, substitutions and control sequences, or refused with the reason. It lives with
// the configuration because cnbuild checks every template when it reads imta.cnf; the rewriter
// expands the compiled form per address (src/rewrite/template.ts). Pure.

/** Where the host being rewritten was found (the `$S $A $P $X` controls). */
export type HostLocation = 'S' | 'A' | 'P' | 'X';

export type CaseMode = 'lower' | 'upper' | 'original';

export type Piece =
  | { kind: 'text'; text: string }
  | { kind: 'sep'; char: '@' | '%' }
  | { kind: 'case'; mode: CaseMode }
  | { kind: 'sub'; name: 'U' | '0U' | '1U' | 'D' | 'H' | 'L' | 'W'; skip: number }
  | { kind: 'field'; name: '&' | '!' | '*' | '#' | 'A' | 'X'; n: number | null };

export type Control =
  | { kind: 'envelope' | 'header' | 'forward' | 'backward' }
  | { kind: 'location'; where: HostLocation }
  | { kind: 'is-source' | 'not-source' | 'is-dest' | 'not-dest'; channel: string }
  | { kind: 'internal' | 'not-internal' }
  /** `$V` / `$Z`: the host being rewritten is / is not a hosted domain of the directory. */
  | { kind: 'hosted' | 'not-hosted' }
  | { kind: 'error'; text: string };

/** The shape the separators give a template (Messaging Server's template forms). */
export type TemplateForm =
  | 'error-only' // only `$?text`: fail the address with that text
  | 'meta' // U%D: rewrite to U@D and start over
  | 'user-at-channel' // U@C = U%C@C
  | 'user-percent-domain-at-channel' // U%D@C
  | 'route-via-channel' // U@D@C = U@D@C@C
  | 'route'; // U@D@R@C

export interface CompiledTemplate {
  form: TemplateForm;
  /** The parts between separators, in order (U, D, R, C as the form says). */
  parts: Piece[][];
  controls: Control[];
}

const DEST_LETTERS = 'MNQCT?';
const NO_ARG_CONTROLS: Record<string, Control> = {
  E: { kind: 'envelope' },
  B: { kind: 'header' },
  F: { kind: 'forward' },
  R: { kind: 'backward' },
  A: { kind: 'location', where: 'A' },
  P: { kind: 'location', where: 'P' },
  S: { kind: 'location', where: 'S' },
  X: { kind: 'location', where: 'X' },
  V: { kind: 'hosted' },
  Z: { kind: 'not-hosted' },
};

/** Thrown for a template that cannot be compiled; the message says why. */
class TemplateError extends Error {}

/**
 * Compiles a template. Channel arguments (`$Mchan` …) run until `@`, `%`, `$` or the end;
 * `$?text` runs until `@`, `%`, the next `$M $N $Q $C $T $?` or the end.
 */
export function compileTemplate(template: string): CompiledTemplate {
  const pieces: Piece[] = [];
  const controls: Control[] = [];
  let text = '';
  const endText = () => {
    if (text) pieces.push({ kind: 'text', text });
    text = '';
  };
  let i = 0;
  const readArg = (stopAtAnyDollar: boolean): string => {
    const start = i;
    while (i < template.length) {
      const ch = template[i]!;
      if (ch === '@' || ch === '%') break;
      if (ch === '$' && (stopAtAnyDollar || DEST_LETTERS.includes(template[i + 1] ?? ''))) break;
      i++;
    }
    return template.slice(start, i);
  };
  while (i < template.length) {
    const ch = template[i]!;
    if (ch === '@' || ch === '%') {
      endText();
      pieces.push({ kind: 'sep', char: ch });
      i++;
      continue;
    }
    if (ch !== '$') {
      text += ch;
      i++;
      continue;
    }
    i++;
    let digits = '';
    while (i < template.length && /[0-9]/.test(template[i]!)) digits += template[i++];
    const code = template[i];
    if (code === undefined) throw new TemplateError(`"$${digits}" at the end of the template`);
    i++;
    const n = digits === '' ? null : Number(digits);
    if (n !== null) {
      switch (code) {
        case 'U':
          if (n > 1) throw new TemplateError(`unknown substitution $${digits}U (only $0U and $1U)`);
          endText();
          pieces.push({ kind: 'sub', name: n === 0 ? '0U' : '1U', skip: 0 });
          continue;
        case 'D':
        case 'H':
          endText();
          pieces.push({ kind: 'sub', name: code, skip: n });
          continue;
        case 'A':
        case 'X':
          endText();
          pieces.push({ kind: 'field', name: code, n });
          continue;
        case 'M':
        case 'N':
          if (n !== 1) throw new TemplateError(`unknown control $${digits}${code}`);
          controls.push({ kind: code === 'M' ? 'internal' : 'not-internal' });
          continue;
        case '~':
          continue; // "run pending channel checks now": nothing is pending here
        default:
          throw new TemplateError(`unknown substitution $${digits}${code}`);
      }
    }
    switch (code) {
      case '$':
      case '%':
      case '@':
        text += code;
        continue;
      case '\\':
      case '^':
      case '_':
        endText();
        pieces.push({ kind: 'case', mode: code === '\\' ? 'lower' : code === '^' ? 'upper' : 'original' });
        continue;
      case 'U':
      case 'D':
      case 'H':
      case 'L':
      case 'W':
        endText();
        pieces.push({ kind: 'sub', name: code, skip: 0 });
        continue;
      case '&':
      case '!':
      case '*':
      case '#': {
        const d = template[i];
        if (d === undefined || !/[0-9]/.test(d)) throw new TemplateError(`$${code} needs a digit (e.g. $${code}0)`);
        i++;
        endText();
        pieces.push({ kind: 'field', name: code, n: Number(d) });
        continue;
      }
      case 'M':
      case 'N':
      case 'Q':
      case 'C': {
        const channel = readArg(true);
        if (!channel) throw new TemplateError(`$${code} needs a channel name`);
        const kind = code === 'M' ? 'is-source' : code === 'N' ? 'not-source' : code === 'Q' ? 'is-dest' : 'not-dest';
        controls.push({ kind, channel: channel.toLowerCase() });
        continue;
      }
      case '?':
        controls.push({ kind: 'error', text: readArg(false) });
        continue;
      case 'T':
        throw new TemplateError('rule tags ($T) are not supported');
      case '(':
      case '{':
      case '[':
      case ']':
      case '=':
        throw new TemplateError(`database, mapping, LDAP and site-routine lookups ($${code}) are not supported`);
      default: {
        const control = NO_ARG_CONTROLS[code];
        if (!control) throw new TemplateError(`unknown substitution or control $${code}`);
        controls.push(control);
      }
    }
  }
  endText();
  return { ...shape(pieces, template), controls };
}

function shape(pieces: Piece[], template: string): { form: TemplateForm; parts: Piece[][] } {
  const parts: Piece[][] = [[]];
  const seps: string[] = [];
  for (const p of pieces) {
    if (p.kind === 'sep') {
      seps.push(p.char);
      parts.push([]);
    } else parts[parts.length - 1]!.push(p);
  }
  const key = seps.join('');
  if (key === '' && parts[0]!.length === 0) return { form: 'error-only', parts: [] };
  const forms: Record<string, TemplateForm> = {
    '%': 'meta',
    '@': 'user-at-channel',
    '%@': 'user-percent-domain-at-channel',
    '@@': 'route-via-channel',
    '@@@': 'route',
  };
  const form = forms[key];
  if (!form) {
    throw new TemplateError(`"${template}" is not one of U%D@C, U@C, U%D, U@D@C, U@D@R@C`);
  }
  if (parts.some((part) => part.length === 0)) throw new TemplateError(`"${template}" has an empty part`);
  return { form, parts };
}

/** Whether a compiled template asks the directory's hosted domains (`$V`, `$Z`). */
export function asksHostedDomains(t: CompiledTemplate): boolean {
  return t.controls.some((c) => c.kind === 'hosted' || c.kind === 'not-hosted');
}

/** Checks a template; null when it compiles, else the problem (for `cnbuild`). */
export function checkTemplate(template: string): string | null {
  try {
    const t = compileTemplate(template);
    if (t.form === 'error-only' && !t.controls.some((c) => c.kind === 'error')) return 'the template is empty';
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}
