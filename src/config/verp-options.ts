// option.dat VERP_DELIMITERS, the two characters of a VERP address (Postfix's
// default_verp_delimiters and verp_delimiter_filter): checked here with file:line, used by
// src/delivery/verp.ts to encode addresses and by the bounces channel to decode them.

/** Postfix's default_verp_delimiters. */
export const DEFAULT_VERP_DELIMITERS = '+=';
/** Postfix's verp_delimiter_filter: the characters a delimiter may be. */
const VERP_DELIMITER_CHARACTERS = '-=+';

/** Why `text` cannot be the delimiters (two characters of VERP_DELIMITER_CHARACTERS), or null when it can. */
export function verpDelimitersProblem(text: string): string | null {
  if (text.length !== 2) return `VERP_DELIMITERS must be two characters (such as +=), found "${text}"`;
  for (const c of text) if (!VERP_DELIMITER_CHARACTERS.includes(c)) return `VERP_DELIMITERS: "${c}" is not one of ${VERP_DELIMITER_CHARACTERS.split('').join(' ')}`;
  // The member's domain is what follows the last second delimiter: it cannot be a character of domain names.
  if (text[1] === '-') return 'VERP_DELIMITERS: the second delimiter cannot be "-" (domain names have it)';
  return null;
}
