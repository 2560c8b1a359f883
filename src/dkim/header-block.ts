// The header block of a message as DKIM sees it: its fields (name and raw bytes, continuation
// lines included), the RFC5322.From domain that picks the signing key, and the relaxed header
// canonicalization of RFC 6376 §3.4.2. Bytes are handled as latin1 strings, so 8-bit header
// bytes are signed exactly as they are on the wire.
import { domainToASCII } from 'node:url';
import { parseAddressList } from '../common/rfc5322-header.js';

export interface HeaderField {
  /** Lower-case field name. */
  name: string;
  /** The whole field as written: `Name: value` with its continuation lines, without the final CRLF. */
  raw: string;
}

/** Splits a header block (latin1) into fields; a line starting with white space continues the one before. */
export function headerFields(block: string): HeaderField[] {
  const fields: HeaderField[] = [];
  for (const line of block.replace(/\r?\n$/, '').split(/\r?\n/)) {
    if ((line.startsWith(' ') || line.startsWith('\t')) && fields.length > 0) {
      fields[fields.length - 1]!.raw += `\r\n${line}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue; // not a field (a stray line): it cannot be signed, nor named in h=
    fields.push({ name: line.slice(0, colon).trim().toLowerCase(), raw: line });
  }
  return fields;
}

/**
 * Where the body starts: the offset just past the empty line that ends the header block, or -1
 * when the block has not ended within `data`. A message that starts with an empty line has no
 * header (offset 2 or 1).
 */
export function bodyOffset(data: Buffer): number {
  // A line end before the first byte: an empty first line is an empty header block.
  const end = emptyLineEnd(Buffer.concat([LF, data]));
  return end < 0 ? -1 : end - 1;
}

const LF = Buffer.from('\n');

/** The offset just past the first empty line in `data` (a LF followed by LF or CRLF), or -1. */
export function emptyLineEnd(data: Buffer): number {
  for (let i = data.indexOf(0x0a); i >= 0 && i < data.length - 1; i = data.indexOf(0x0a, i + 1)) {
    if (data[i + 1] === 0x0a) return i + 2;
    if (data[i + 1] === 0x0d && data[i + 2] === 0x0a) return i + 3;
  }
  return -1;
}

/**
 * The domain of the first address of the first From: field (the RFC5322.From domain DMARC aligns
 * with), lower-case A-labels; null when there is no From: field or no domain in it.
 */
export function fromDomain(fields: HeaderField[]): string | null {
  const from = fields.find((f) => f.name === 'from');
  if (!from) return null;
  // Header bytes are latin1 here; an internationalised address is UTF-8 on the wire.
  const value = Buffer.from(from.raw.slice(from.raw.indexOf(':') + 1), 'latin1').toString('utf8');
  const first = parseAddressList(value.replace(/\r?\n/g, ''))[0];
  const at = first?.lastIndexOf('@') ?? -1;
  if (!first || at < 0) return null;
  const domain = domainToASCII(first.slice(at + 1).replace(/\.$/, '')).toLowerCase();
  return domain || null;
}

/** Relaxed canonical form of one field (RFC 6376 §3.4.2), without the final CRLF. */
export function relaxedField(raw: string): string {
  const colon = raw.indexOf(':');
  const name = raw.slice(0, colon).replace(/[ \t]+$/, '').toLowerCase();
  const value = raw
    .slice(colon + 1)
    .replace(/\r\n/g, '')
    .replace(/[ \t]+/g, ' ')
    .replace(/^ /, '')
    .replace(/ $/, '');
  return `${name}:${value}`;
}
