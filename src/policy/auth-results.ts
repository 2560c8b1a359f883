// The Authentication-Results header (RFC 8601), pure: tsubame's one header with its authserv-id
// and a result row per method, and the removal of incoming headers that claim that authserv-id
// (§5: a receiving host must not let a forged one stand as its own).

/** Longest result row kept as it is; a longer one (hostile signature tags) is replaced by its method=result. */
const MAX_ROW = 900;

/** `Authentication-Results: id;` and one row per line (folded with a tab), without the final CRLF; `none` when there are no rows. */
export function authResultsHeader(authservId: string, rows: readonly string[]): string {
  const kept = rows.map(boundedRow).filter(Boolean);
  return `Authentication-Results: ${authservId};${kept.length ? `\r\n\t${kept.join(';\r\n\t')}` : ' none'}`;
}

/** A row as one line of printable ASCII; an overlong one keeps only its `method=result`. */
export function boundedRow(row: string): string {
  const line = row.replace(/[\r\n]+[ \t]*/g, ' ').replace(/[^\x20-\x7e]/g, '?').trim();
  if (line.length <= MAX_ROW) return line;
  const head = /^[a-z0-9-]+=[a-z0-9-]+/i.exec(line)?.[0] ?? '';
  return head ? `${head} (details left out: too long)` : '';
}

/** The authserv-id an Authentication-Results field value starts with (after comments and white space), or null. */
export function authservIdOf(value: string): string | null {
  let i = skipCfws(value, 0);
  if (value[i] === '"') {
    let out = '';
    for (i++; i < value.length; i++) {
      const c = value[i]!;
      if (c === '\\') out += value[++i] ?? '';
      else if (c === '"') return out;
      else out += c;
    }
    return null; // unterminated
  }
  const m = /^[^\s()<>@,;:\\"/[\]?=\x00-\x1f\x7f]+/.exec(value.slice(i));
  return m ? m[0] : null;
}

/** Skips white space and (nested, quoted-pair aware) comments. */
function skipCfws(s: string, from: number): number {
  let i = from;
  for (;;) {
    while (i < s.length && /\s/.test(s[i]!)) i++;
    if (s[i] !== '(') return i;
    let depth = 0;
    for (; i < s.length; i++) {
      const c = s[i]!;
      if (c === '\\') i++;
      else if (c === '(') depth++;
      else if (c === ')' && --depth === 0) {
        i++;
        break;
      }
    }
  }
}

/**
 * Removes every Authentication-Results field whose authserv-id is `authservId` (case-blind) from a
 * header block (or a whole message: the body is left alone); everything else is kept byte for byte.
 */
export function removeOwnAuthResults(headerBlock: Buffer, authservId: string): { headers: Buffer; removed: number } {
  const text = headerBlock.toString('latin1');
  const own = authservId.toLowerCase().replace(/\.$/, '');
  const lines = text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
  const out: string[] = [];
  let removed = 0;
  let field: string[] = [];
  const endField = () => {
    if (!field.length) return;
    const whole = field.join('');
    const colon = whole.indexOf(':');
    const name = colon > 0 ? whole.slice(0, colon).trim().toLowerCase() : '';
    const id = name === 'authentication-results' ? authservIdOf(whole.slice(colon + 1).replace(/\r?\n/g, '')) : null;
    if (id !== null && id.toLowerCase().replace(/\.$/, '') === own) removed++;
    else out.push(whole);
    field = [];
  };
  let i = 0;
  for (; i < lines.length; i++) {
    const line = lines[i]!;
    const continuation = (line.startsWith(' ') || line.startsWith('\t')) && field.length > 0;
    if (!continuation) endField();
    if (/^\r?\n$/.test(line)) break; // the empty line ending the block: it and what follows (a body) stay as they are
    field.push(line);
  }
  endField();
  out.push(...lines.slice(i));
  return { headers: removed ? Buffer.from(out.join(''), 'latin1') : headerBlock, removed };
}
