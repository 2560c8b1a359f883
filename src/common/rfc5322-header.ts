// The header section of an RFC 5322 message (§2.2, §3.4), read as latin1 text with CRLF lines:
// the fields (folded lines kept) and the body apart, a field's unfolded value, the addresses of
// an address list. Used by local submission, the milter client, the loop check and DKIM.

export interface HeaderField {
  /** Lower-case field name. */
  name: string;
  /** The whole field as latin1 text, folded lines included, with its final CRLF. */
  raw: string;
}

export interface SplitMessage {
  fields: HeaderField[];
  /** Everything after the header section (without the empty line). */
  body: string;
}

const FIELD_START = /^([\x21-\x39\x3b-\x7e]+)[ \t]*:/;

/**
 * Splits the header section from the body (latin1 text, CRLF lines). The header ends at the first
 * empty line, or at the first line that is neither a field nor a continuation: that line starts
 * the body (sendmail does the same when a message has no empty line after its header).
 */
export function splitMessage(text: string): SplitMessage {
  const fields: HeaderField[] = [];
  let pos = 0;
  while (pos < text.length) {
    const eol = text.indexOf('\r\n', pos);
    const line = eol < 0 ? text.slice(pos) : text.slice(pos, eol);
    const next = eol < 0 ? text.length : eol + 2;
    if (line === '') return { fields, body: text.slice(next) };
    if ((line.startsWith(' ') || line.startsWith('\t')) && fields.length > 0) {
      fields[fields.length - 1]!.raw += eol < 0 ? line + '\r\n' : text.slice(pos, next);
    } else {
      const m = FIELD_START.exec(line);
      if (!m) break; // body without a separating empty line
      fields.push({ name: m[1]!.toLowerCase(), raw: eol < 0 ? line + '\r\n' : text.slice(pos, next) });
    }
    pos = next;
  }
  return { fields, body: text.slice(pos) };
}

/** The unfolded value of a field, decoded as UTF-8 (header addresses may be internationalised). */
export function fieldValue(f: HeaderField): string {
  const value = f.raw.slice(f.raw.indexOf(':') + 1).replace(/\r\n(?=[ \t])/g, '').replace(/\r\n$/, '');
  return Buffer.from(value, 'latin1').toString('utf8').trim();
}

/**
 * The addresses of an RFC 5322 address list: `a@b`, `Name <a@b>`, `"q u" <a@b>`, groups
 * `team: a@b, c@d;`, comments. Returns addr-specs without angle brackets.
 */
export function parseAddressList(value: string): string[] {
  const out: string[] = [];
  let plain = '';
  let angle: string | null = null;
  let inAngle = false;
  const finish = () => {
    const addr = (angle ?? plain).trim();
    if (addr) out.push(addr);
    plain = '';
    angle = null;
  };
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    if (ch === '"') {
      // quoted string: kept in the local part, dropped from display names (by the angle rule)
      let j = i + 1;
      let q = '"';
      for (; j < value.length && value[j] !== '"'; j++) {
        if (value[j] === '\\' && j + 1 < value.length) q += value[j++]!;
        q += value[j]!;
      }
      q += '"';
      if (inAngle) angle += q;
      else plain += q;
      i = j;
    } else if (ch === '(' && !inAngle) {
      let depth = 1;
      let j = i + 1;
      for (; j < value.length && depth > 0; j++) {
        if (value[j] === '\\') j++;
        else if (value[j] === '(') depth++;
        else if (value[j] === ')') depth--;
      }
      i = j - 1;
    } else if (ch === '<' && !inAngle) {
      inAngle = true;
      angle = '';
    } else if (ch === '>' && inAngle) {
      inAngle = false;
    } else if (inAngle) {
      angle += ch;
    } else if (ch === ',' || ch === ';') {
      finish();
    } else if (ch === ':') {
      plain = ''; // "group name:" — the members follow
    } else if (ch === ' ' || ch === '\t' || ch === '\r' || ch === '\n') {
      if (angle === null) plain += plain.endsWith(' ') || plain === '' ? '' : ' ';
    } else {
      plain += ch;
    }
  }
  finish();
  // A display name without angle brackets ("John Smith" alone) is not an address.
  return out.map((a) => a.replace(/^@[^:]*:/, '')).filter((a) => !/\s/.test(a.replace(/"[^"]*"/g, '')));
}
