// The queue file format (version 1), readable with `cat`:
//
//   tsubame-queue 1
//   id 0MHXK3Z2A01F2K0001X7Q
//   channel tcp_local
//   from alice@example.com
//   body 8BITMIME                      (MAIL parameters: size, body, ret, envid, smtputf8, verp — when given)
//   source tcp_intranet
//   client-address 127.0.0.1
//   client-helo client.example
//   arrival 2026-01-01T00:00:00.000Z
//   attempts 0
//   next-attempt -
//   body-length 000000000001024        (fixed width: filled in at commit for streamed messages)
//   rcpt state=pending to=bob@example.net original=Bob@example.net orcpt=rfc822;Bob@example.net notify=FAILURE,DELAY warnings=0 status=-
//                                      (warnings, and mailbox=NAME on channel l after a list expansion: when set)
//   end-of-envelope
//   <the message, byte for byte>
//
// Values are encoded so that any string survives: `%XX` for '%', space, '=', ',' and control
// characters, `%uXXXX` for lone UTF-16 surrogates, other characters as UTF-8; `-` alone means
// null (a literal "-" is written `%2D`), an empty value is empty.
import type { Envelope, MailParams, QueuedRecipient, RecipientState } from './types.js';
import { verpDelimitersProblem } from '../config/verp-options.js';

const FORMAT_VERSION = 1;
const VERSION_LINE = `tsubame-queue ${FORMAT_VERSION}`;
const TERMINATOR = 'end-of-envelope';
const BODY_LENGTH_WIDTH = 15;
const TERMINATOR_BYTES = Buffer.from(`\n${TERMINATOR}\n`, 'latin1');
/** No sane envelope is this big (1000 recipients × 1 KiB is 1 MiB); beyond it the file is not ours. */
export const MAX_ENVELOPE_BYTES = 64 * 1024 * 1024;

// ------------------------------------------------------------------ values

/** A character that encodeValue writes as an escape (or a surrogate, which it looks at closely). */
const NEEDS_ESCAPE = /[\u0000-\u0020\u007f%=,\ud800-\udfff]/;

export function encodeValue(value: string | null): string {
  if (value === null) return '-';
  if (value === '-') return '%2D';
  // Most values (addresses, ids, host names) have nothing to escape.
  if (!NEEDS_ESCAPE.test(value)) return value;
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = value.charCodeAt(i + 1);
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        out += value[i]! + value[i + 1]!; // a valid pair: kept as UTF-8
        i++;
      } else {
        out += '%u' + c.toString(16).toUpperCase().padStart(4, '0');
      }
    } else if (c <= 0x20 || c === 0x7f || c === 0x25 /* % */ || c === 0x3d /* = */ || c === 0x2c /* , */) {
      out += '%' + c.toString(16).toUpperCase().padStart(2, '0');
    } else {
      out += value[i]!;
    }
  }
  return out;
}

export function decodeValue(text: string): string | null {
  if (text === '-') return null;
  if (!text.includes('%')) return text;
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch !== '%') {
      out += ch;
      continue;
    }
    if (text[i + 1] === 'u') {
      const hex = text.slice(i + 2, i + 6);
      if (!/^[0-9A-Fa-f]{4}$/.test(hex)) throw new Error(`bad escape "%u${hex}"`);
      out += String.fromCharCode(parseInt(hex, 16));
      i += 5;
    } else {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new Error(`bad escape "%${hex}"`);
      out += String.fromCharCode(parseInt(hex, 16));
      i += 2;
    }
  }
  return out;
}

function decodeRequired(text: string, what: string): string {
  const v = decodeValue(text);
  if (v === null) throw new Error(`${what} is missing`);
  return v;
}

// ----------------------------------------------------------------- encode

export interface EncodedEnvelope {
  /** Version line, records and terminator line. */
  header: Buffer;
  /** Byte offset of the body-length digits inside `header` (to fill them in later). */
  bodyLengthOffset: number;
}

/** The envelope part of a queue file. `bodyLength` may be 0 and filled in later with formatBodyLength(). */
export function encodeEnvelope(env: Envelope, bodyLength: number): EncodedEnvelope {
  const lines: string[] = [VERSION_LINE];
  lines.push(`id ${encodeValue(env.id)}`);
  lines.push(`channel ${encodeValue(env.channel)}`);
  lines.push(`from ${encodeValue(env.from)}`);
  const p = env.mailParams;
  if (p.size !== undefined) lines.push(`size ${integerText(p.size, 'SIZE')}`);
  if (p.body !== undefined) lines.push(`body ${encodeValue(p.body)}`);
  if (p.ret !== undefined) lines.push(`ret ${encodeValue(p.ret)}`);
  if (p.envid !== undefined) lines.push(`envid ${encodeValue(p.envid)}`);
  if (p.smtputf8 !== undefined) lines.push(`smtputf8 ${p.smtputf8 ? 1 : 0}`);
  if (p.verp !== undefined) lines.push(`verp ${encodeValue(verpText(p.verp))}`);
  lines.push(`source ${encodeValue(env.sourceChannel)}`);
  lines.push(`client-address ${encodeValue(env.clientAddress)}`);
  lines.push(`client-helo ${encodeValue(env.clientHelo)}`);
  lines.push(`arrival ${dateText(env.arrival, 'arrival')}`);
  lines.push(`attempts ${integerText(env.attempts, 'attempts')}`);
  lines.push(`next-attempt ${env.nextAttempt ? dateText(env.nextAttempt, 'next attempt') : '-'}`);
  const beforeLength = lines.join('\n') + '\nbody-length ';
  lines.push(`body-length ${formatBodyLength(bodyLength).toString('latin1')}`);
  for (const r of env.recipients) lines.push(encodeRecipient(r));
  lines.push(TERMINATOR);
  const header = Buffer.from(lines.join('\n') + '\n', 'utf8');
  return { header, bodyLengthOffset: Buffer.byteLength(beforeLength, 'utf8') };
}

export function formatBodyLength(n: number): Buffer {
  return Buffer.from(integerText(n, 'body length').padStart(BODY_LENGTH_WIDTH, '0'), 'latin1');
}

function encodeRecipient(r: QueuedRecipient): string {
  const parts = [
    `rcpt state=${r.state}`,
    `to=${encodeValue(r.address)}`,
    `original=${encodeValue(r.original)}`,
    `orcpt=${encodeValue(r.orcpt)}`,
    `notify=${r.notify === null ? '-' : r.notify.map((n) => encodeValue(n)).join(',')}`,
  ];
  if (r.warnings !== undefined) parts.push(`warnings=${integerText(r.warnings, 'warnings')}`);
  if (r.mailbox !== undefined) parts.push(`mailbox=${encodeValue(r.mailbox)}`);
  parts.push(`status=${encodeValue(r.status)}`);
  return parts.join(' ');
}

/** XVERP's delimiters, as the SMTP server checked them (the rule of VERP_DELIMITERS); anything else is not ours. */
function verpText(delimiters: string): string {
  if (verpDelimitersProblem(delimiters) !== null) throw new Error(`bad VERP delimiters "${delimiters}"`);
  return delimiters;
}

function integerText(n: number, what: string): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new TypeError(`queue envelope: ${what} must be a non-negative integer, got ${n}`);
  return String(n);
}

function dateText(d: Date, what: string): string {
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) throw new TypeError(`queue envelope: ${what} is not a valid date`);
  return d.toISOString();
}

// ------------------------------------------------------------------ parse

export interface ParsedQueueFile {
  envelope: Envelope;
  /** Bytes before the message (version line through terminator line). */
  headerLength: number;
  bodyLength: number;
}

/** Where the envelope ends in `buf` (offset just after the terminator line), or -1 when not (yet) seen. */
export function findHeaderEnd(buf: Buffer): number {
  const i = buf.indexOf(TERMINATOR_BYTES);
  return i < 0 ? -1 : i + TERMINATOR_BYTES.length;
}

/**
 * Parses the envelope in `head` (the file's first bytes, through the terminator). Throws an Error
 * whose message says what is wrong; the caller turns it into a QueueFileError with the path.
 * `held` comes from the file name, not from the contents.
 */
export function parseEnvelope(head: Buffer, held: boolean): ParsedQueueFile {
  const end = findHeaderEnd(head);
  if (end < 0) throw new Error('no end-of-envelope line (truncated or not a queue file)');
  const text = head.subarray(0, end).toString('utf8');
  const lines = text.split('\n');
  lines.pop(); // after the final newline
  checkVersionLine(lines[0]);
  const fields = new Map<string, string>();
  const recipients: QueuedRecipient[] = [];
  for (let n = 1; n < lines.length - 1; n++) {
    const line = lines[n]!;
    const sp = line.indexOf(' ');
    const key = sp < 0 ? line : line.slice(0, sp);
    const value = sp < 0 ? '' : line.slice(sp + 1);
    if (key === 'rcpt') {
      recipients.push(parseRecipient(value, n + 1));
    } else {
      if (fields.has(key)) throw new Error(`line ${n + 1}: "${key}" given twice`);
      fields.set(key, value); // unknown keys are kept out of the envelope: forward compatible within version 1
    }
  }
  const need = (key: string): string => {
    const v = fields.get(key);
    if (v === undefined) throw new Error(`no "${key}" record`);
    return v;
  };
  const mailParams: MailParams = {};
  if (fields.has('size')) mailParams.size = parseInteger(need('size'), 'size');
  if (fields.has('body')) {
    const b = decodeRequired(need('body'), 'body');
    if (b !== '7BIT' && b !== '8BITMIME' && b !== 'BINARYMIME') throw new Error(`bad BODY value "${b}"`);
    mailParams.body = b;
  }
  if (fields.has('ret')) {
    const r = decodeRequired(need('ret'), 'ret');
    if (r !== 'FULL' && r !== 'HDRS') throw new Error(`bad RET value "${r}"`);
    mailParams.ret = r;
  }
  if (fields.has('envid')) mailParams.envid = decodeRequired(need('envid'), 'envid');
  if (fields.has('smtputf8')) mailParams.smtputf8 = parseFlag(need('smtputf8'), 'smtputf8');
  // Files written before XVERP have no such record: not VERPed by the message (the channel may still be).
  if (fields.has('verp')) mailParams.verp = verpText(decodeRequired(need('verp'), 'verp'));
  const nextAttemptText = need('next-attempt');
  const envelope: Envelope = {
    id: decodeRequired(need('id'), 'id'),
    channel: decodeRequired(need('channel'), 'channel'),
    from: decodeRequired(need('from'), 'from'),
    mailParams,
    sourceChannel: decodeRequired(need('source'), 'source'),
    clientAddress: decodeValue(need('client-address')),
    clientHelo: decodeValue(need('client-helo')),
    arrival: parseDate(need('arrival'), 'arrival'),
    attempts: parseInteger(need('attempts'), 'attempts'),
    nextAttempt: nextAttemptText === '-' ? null : parseDate(nextAttemptText, 'next-attempt'),
    recipients,
    held,
  };
  if (recipients.length === 0) throw new Error('no recipients');
  return { envelope, headerLength: Buffer.byteLength(text, 'utf8'), bodyLength: parseInteger(need('body-length'), 'body-length') };
}

/** Throws unless `line` is the version line this code reads. */
function checkVersionLine(line: string | undefined): void {
  if (line === VERSION_LINE) return;
  const m = /^tsubame-queue (\S+)$/.exec(line ?? '');
  throw new Error(m ? `unsupported queue file version ${m[1]}` : 'not a tsubame queue file (no version line)');
}

const BODY_LENGTH_RE = /\nbody-length ([0-9]{1,16})\n/;

/**
 * Where the message starts and how long it is, without parsing the rest of the envelope: for
 * sending a message whose envelope the sender has already. The same version check as
 * parseEnvelope; throws an Error saying what is wrong.
 */
export function parseFraming(head: Buffer): { headerLength: number; bodyLength: number } {
  const firstLine = head.indexOf(0x0a);
  checkVersionLine(head.subarray(0, firstLine < 0 ? Math.min(head.length, VERSION_LINE.length + 1) : firstLine).toString('latin1'));
  const end = findHeaderEnd(head);
  if (end < 0) throw new Error('no end-of-envelope line (truncated or not a queue file)');
  const m = BODY_LENGTH_RE.exec(head.subarray(0, end).toString('latin1'));
  if (!m) throw new Error('no "body-length" record');
  return { headerLength: end, bodyLength: Number(m[1]) };
}

const STATES: ReadonlySet<string> = new Set<RecipientState>(['pending', 'delivered', 'failed']);

function parseRecipient(value: string, lineNo: number): QueuedRecipient {
  const attrs = new Map<string, string>();
  for (const token of value.split(' ')) {
    const eq = token.indexOf('=');
    if (eq <= 0) throw new Error(`line ${lineNo}: bad recipient field "${token}"`);
    attrs.set(token.slice(0, eq), token.slice(eq + 1));
  }
  const need = (k: string) => {
    const v = attrs.get(k);
    if (v === undefined) throw new Error(`line ${lineNo}: recipient without "${k}"`);
    return v;
  };
  const state = need('state');
  if (!STATES.has(state)) throw new Error(`line ${lineNo}: bad recipient state "${state}"`);
  const notifyText = need('notify');
  const r: QueuedRecipient = {
    address: decodeRequired(need('to'), 'recipient address'),
    original: decodeRequired(need('original'), 'original recipient'),
    orcpt: decodeValue(need('orcpt')),
    notify: notifyText === '-' ? null : notifyText === '' ? [] : notifyText.split(',').map((n) => decodeRequired(n, 'NOTIFY')),
    state: state as RecipientState,
    status: decodeValue(need('status')),
  };
  if (attrs.has('warnings')) r.warnings = parseInteger(need('warnings'), 'warnings');
  if (attrs.has('mailbox')) r.mailbox = decodeRequired(need('mailbox'), 'mailbox');
  return r;
}

function parseInteger(text: string, what: string): number {
  if (!/^[0-9]{1,16}$/.test(text)) throw new Error(`bad ${what} "${text}"`);
  return Number(text);
}

function parseFlag(text: string, what: string): boolean {
  if (text === '1') return true;
  if (text === '0') return false;
  throw new Error(`bad ${what} "${text}"`);
}

function parseDate(text: string, what: string): Date {
  const d = new Date(text);
  if (!/^\d{4}-\d\d-\d\dT/.test(text) || Number.isNaN(d.getTime())) throw new Error(`bad ${what} time "${text}"`);
  return d;
}
