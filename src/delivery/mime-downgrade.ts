// 8-bit to 7-bit conversion of a message for a server without 8BITMIME (RFC 6152 §3, as Postfix
// does it), pure: every MIME leaf whose body has 8-bit octets is re-encoded, text parts in
// quoted-printable and others in base64, and its Content-Transfer-Encoding set to match;
// multipart and message/rfc822 containers are walked into (their encoding becomes 7bit), and a
// message/global part is base64-encoded whole (RFC 6532 §3.5). 8-bit octets in a header (of the
// message or of any part) cannot be converted: the message is not sendable there (5.6.3).
// Work is done on latin1 strings, one character per octet, so nothing else changes.
import { isAscii } from 'node:buffer';
import { encode as qpEncode, wrap as qpWrap } from 'nodemailer/lib/qp';
import { encode as b64Encode, wrap as b64Wrap } from 'nodemailer/lib/base64';

export type Downgrade = { ok: true; message: Buffer; converted: number } | { ok: false; reason: string };

/** MIME nesting deeper than this is refused rather than walked (a message built to exhaust the stack). */
const MAX_DEPTH = 40;

const EIGHT_BIT = /[\x80-\xff]/;

/** Whether any octet of `data` has the high bit set (node's SIMD check: a few µs for a typical message). */
export function hasEightBit(data: Buffer): boolean {
  return !isAscii(data);
}

/** Whether the header section of `message` (up to the first empty line) has an 8-bit octet. */
export function headerHasEightBit(message: Buffer): boolean {
  const end = message.indexOf('\r\n\r\n');
  return hasEightBit(end < 0 ? message : message.subarray(0, end));
}

class Unconvertible extends Error {}

/** The message in 7 bits, or why it cannot be. `converted`: how many parts were re-encoded. */
export function downgradeTo7bit(message: Buffer): Downgrade {
  const state = { converted: 0 };
  try {
    const text = convertEntity(message.toString('latin1'), { defaultType: 'text/plain', topLevel: true, depth: 0 }, state);
    return { ok: true, message: Buffer.from(text, 'latin1'), converted: state.converted };
  } catch (err) {
    if (err instanceof Unconvertible) return { ok: false, reason: err.message };
    throw err;
  }
}

interface EntityContext {
  /** Content type when the entity has no Content-Type (message/rfc822 inside multipart/digest). */
  defaultType: string;
  /** The message itself (not a part): without MIME headers it becomes a MIME text message. */
  topLevel: boolean;
  depth: number;
}

function convertEntity(entity: string, ctx: EntityContext, state: { converted: number }): string {
  if (ctx.depth > MAX_DEPTH) throw new Unconvertible(`MIME structure nested deeper than ${MAX_DEPTH} levels`);
  const { header, body } = splitEntity(entity);
  if (EIGHT_BIT.test(header)) throw new Unconvertible('8-bit characters in a message header (only SMTPUTF8 could carry them)');
  if (!EIGHT_BIT.test(body)) return entity; // nothing to do below this point
  const fields = headerFields(header);
  const contentType = fields.get('content-type');
  const type = contentType ? mediaType(contentType) : ctx.defaultType;
  const cte = (fields.get('content-transfer-encoding') ?? '7bit').trim().toLowerCase();
  const identity = cte === '7bit' || cte === '8bit' || cte === 'binary';

  if (type.startsWith('multipart/') && contentType) {
    const boundary = parameter(contentType, 'boundary');
    if (!boundary) throw new Unconvertible(`8-bit data in a ${type} without a boundary`);
    const converted = convertMultipart(body, boundary, type === 'multipart/digest' ? 'message/rfc822' : 'text/plain', ctx.depth, state);
    return join(identity && cte !== '7bit' ? setEncoding(header, '7bit') : header, converted);
  }
  if (type === 'message/rfc822' || type === 'message/news') {
    if (!identity) throw new Unconvertible(`8-bit data in a ${type} part encoded as ${cte}`);
    const inner = convertEntity(body, { defaultType: 'text/plain', topLevel: false, depth: ctx.depth + 1 }, state);
    return join(cte !== '7bit' ? setEncoding(header, '7bit') : header, inner);
  }
  if (!identity) throw new Unconvertible(`8-bit data in a part encoded as ${cte}`);
  state.converted++;
  const text = type.startsWith('text/');
  const encoded = text ? qpWrap(qpEncode(Buffer.from(body, 'latin1')), 76) : b64Wrap(b64Encode(Buffer.from(body, 'latin1')), 76) + (body.endsWith('\r\n') ? '\r\n' : '');
  let newHeader = setEncoding(header, text ? 'quoted-printable' : 'base64');
  if (ctx.topLevel && !contentType) {
    // A message without MIME headers: say what it now is (RFC 1428's unknown-8bit when not UTF-8).
    const charset = Buffer.from(body, 'latin1').toString('utf8').includes('\ufffd') ? 'unknown-8bit' : 'utf-8';
    newHeader = appendField(newHeader, `Content-Type: text/plain; charset=${charset}`);
    if (!fields.has('mime-version')) newHeader = appendField(newHeader, 'MIME-Version: 1.0');
  }
  return join(newHeader, encoded);
}

/** Header (without its final CRLF) and body. Without an empty line it is all header. */
function splitEntity(entity: string): { header: string; body: string } {
  if (entity.startsWith('\r\n')) return { header: '', body: entity.slice(2) };
  const end = entity.indexOf('\r\n\r\n');
  if (end < 0) return { header: entity, body: '' };
  return { header: entity.slice(0, end), body: entity.slice(end + 4) };
}

/** An entity again (only entities with a body are rebuilt: the unchanged ones are returned as they were). */
function join(header: string, body: string): string {
  return header === '' ? `\r\n${body}` : `${header}\r\n\r\n${body}`;
}

/** Unfolded header fields by lower-case name (the first of each name). */
function headerFields(header: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const field of header.split(/\r\n(?![ \t])/)) {
    const colon = field.indexOf(':');
    if (colon <= 0) continue;
    const name = field.slice(0, colon).trim().toLowerCase();
    if (!out.has(name)) out.set(name, field.slice(colon + 1).replace(/\r\n[ \t]/g, ' ').trim());
  }
  return out;
}

function mediaType(value: string): string {
  return (value.split(';')[0] ?? '').trim().toLowerCase() || 'text/plain';
}

function parameter(value: string, name: string): string | null {
  const m = new RegExp(`;\\s*${name}\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^\\s;]+))`, 'i').exec(value);
  if (!m) return null;
  return m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!;
}

/** The header with its Content-Transfer-Encoding fields replaced by one saying `encoding`. */
function setEncoding(header: string, encoding: string): string {
  const fields = header === '' ? [] : header.split(/\r\n(?![ \t])/);
  const kept = fields.filter((f) => !/^content-transfer-encoding[ \t]*:/i.test(f));
  kept.push(`Content-Transfer-Encoding: ${encoding}`);
  return kept.join('\r\n');
}

function appendField(header: string, field: string): string {
  return header === '' ? field : `${header}\r\n${field}`;
}

/**
 * The body of a multipart with each part converted. Delimiter lines (`--boundary`, the last
 * `--boundary--`) and the CRLF before them stay as they are; the preamble and epilogue must
 * already be 7-bit (they carry no part to re-encode).
 */
function convertMultipart(body: string, boundary: string, partType: string, depth: number, state: { converted: number }): string {
  const delimiter = new RegExp(`(^|\\r\\n)--${escapeRegExp(boundary)}(--)?[ \\t]*(?=\\r\\n|$)`, 'g');
  const marks: Array<{ start: number; end: number; last: boolean }> = [];
  for (let m = delimiter.exec(body); m; m = delimiter.exec(body)) {
    marks.push({ start: m.index, end: m.index + m[0].length, last: m[2] === '--' });
    if (m[2] === '--') break;
  }
  if (marks.length === 0) throw new Unconvertible('8-bit data in a multipart whose boundary never occurs');
  const preamble = body.slice(0, marks[0]!.start);
  const epilogueStart = marks[marks.length - 1]!.last ? marks[marks.length - 1]!.end : body.length;
  if (EIGHT_BIT.test(preamble) || (marks[marks.length - 1]!.last && EIGHT_BIT.test(body.slice(epilogueStart)))) {
    throw new Unconvertible('8-bit data outside the parts of a multipart (preamble or epilogue)');
  }
  let out = preamble;
  for (let i = 0; i < marks.length; i++) {
    const mark = marks[i]!;
    out += body.slice(mark.start, mark.end);
    if (mark.last) break;
    // The part runs from the CRLF after the delimiter line to the next delimiter (its CRLF excluded).
    const partStart = body.startsWith('\r\n', mark.end) ? mark.end + 2 : mark.end;
    const partEnd = i + 1 < marks.length ? marks[i + 1]!.start : body.length;
    out += body.slice(mark.end, partStart);
    out += convertEntity(body.slice(partStart, partEnd), { defaultType: partType, topLevel: false, depth: depth + 1 }, state);
  }
  return out + body.slice(epilogueStart);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
