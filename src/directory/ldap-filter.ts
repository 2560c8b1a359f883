// LDAP search filters built from values that come from mail (an address at RCPT, a login name),
// with every value escaped as RFC 4515 §3 requires: `*`, `(`, `)`, `\` and NUL become `\2a`,
// `\28`, `\29`, `\5c`, `\00`, so `*)(uid=*` is a literal that matches nothing rather than a
// filter that matches everyone. Other ASCII control characters are escaped too (harmless, and
// some servers reject them raw); characters beyond ASCII stay as they are (UTF-8 on the wire,
// which RFC 4515 allows). Pure.

export function escapeFilterValue(value: string): string {
  let out = '';
  for (const ch of value) {
    const code = ch.codePointAt(0)!;
    if (ch === '*' || ch === '(' || ch === ')' || ch === '\\' || code < 0x20 || code === 0x7f) out += `\\${code.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out;
}

/** `(attribute=value)` with the value escaped; the attribute name comes from the configuration. */
export function equalityFilter(attribute: string, value: string): string {
  return `(${attribute}=${escapeFilterValue(value)})`;
}

/** `(|…)` of the filters (the filter itself when there is one). */
export function anyOf(filters: readonly string[]): string {
  return filters.length === 1 ? filters[0]! : `(|${filters.join('')})`;
}

/** `(&…)` of the filters (the filter itself when there is one). */
export function allOf(filters: readonly string[]): string {
  return filters.length === 1 ? filters[0]! : `(&${filters.join('')})`;
}

/** An entry of one of these object class sets: any set, every class of it. */
export function objectClassFilter(sets: ReadonlyArray<readonly string[]>): string {
  return anyOf(sets.map((set) => allOf(set.map((c) => equalityFilter('objectClass', c)))));
}

/** Whether an entry with these object classes belongs to one of the sets (case-insensitively). */
export function hasObjectClasses(entryClasses: readonly string[], sets: ReadonlyArray<readonly string[]>): boolean {
  const have = new Set(entryClasses.map((c) => c.toLowerCase()));
  return sets.some((set) => set.every((c) => have.has(c.toLowerCase())));
}
