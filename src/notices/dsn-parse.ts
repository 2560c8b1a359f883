// Reading delivery status notifications (pure): the counterpart of dsn.ts for the bounces
// channel. RFC 3464: a multipart/report whose message/delivery-status part (RFC 6533:
// message/global-delivery-status) holds a per-message block (Reporting-MTA …) and one block per
// recipient (Final-Recipient, Action, Status, Remote-MTA, Diagnostic-Code …). The MIME tree is
// walked for that part wherever it is (a report inside a multipart/mixed, as some MTAs send it),
// never into a returned message (message/*), with its transfer encoding undone. A message that
// is no DSN is told apart as an auto-reply (RFC 3834 Auto-Submitted: auto-replied and the
// vacation programs' headers) or as another kind of bounce (qmail's, old Exim's), from whose text
// the first SMTP reply is taken as the diagnostic.
//
// Written here rather than with mailparser: mailparser is a development dependency whose
// run-time tree (html-to-text, linkify-it, tlds, iconv-lite …) would come along for one MIME
// part, and it does not read the RFC 3464 fields anyway.

export type DsnReportAction = 'failed' | 'delayed' | 'delivered' | 'relayed' | 'expanded';

export interface DsnReportRecipient {
  /** The address of Final-Recipient (its type, `rfc822;` or `utf-8;`, removed), or null. */
  finalRecipient: string | null;
  /** The address of Original-Recipient, or null. */
  originalRecipient: string | null;
  action: DsnReportAction | null;
  /** The Status field's code (`5.1.1`), or null. */
  status: string | null;
  /** Remote-MTA as written (`dns; mx.example.com`), or null. */
  remoteMta: string | null;
  /** Diagnostic-Code as written (`smtp; 550 5.1.1 <x@y>: user unknown`), or null. */
  diagnostic: string | null;
}

export type ParsedBounce =
  | { kind: 'dsn'; reportingMta: string | null; recipients: DsnReportRecipient[]; subject: string | null }
  | { kind: 'auto-reply'; subject: string | null }
  /** Not a DSN: the first SMTP reply found in its text, if any. */
  | { kind: 'other'; subject: string | null; status: string | null; diagnostic: string | null };

/** MIME nesting deeper than this is not walked. */
const MAX_DEPTH = 12;
/** Only this much of a non-DSN's text is searched for a reply. */
const TEXT_SCAN_OCTETS = 64 * 1024;

/** What a message received by the bounces channel is. */
export function parseBounce(message: Buffer): ParsedBounce {
  const text = message.toString('latin1');
  const top = splitEntity(text);
  const fields = headerFields(top.header);
  const subject = decodeSubject(fields.get('subject') ?? null);
  const report = findDeliveryStatus(top, fields, 0);
  if (report !== null) {
    const parsed = parseDeliveryStatus(report);
    if (parsed.recipients.length > 0) return { kind: 'dsn', reportingMta: parsed.reportingMta, recipients: parsed.recipients, subject };
  }
  if (isAutoReply(fields)) return { kind: 'auto-reply', subject };
  const reply = firstReply(top.body.slice(0, TEXT_SCAN_OCTETS));
  return { kind: 'other', subject, status: reply?.status ?? null, diagnostic: reply?.line ?? null };
}

/** The fields of a delivery-status body: the per-message block and each per-recipient block. */
function parseDeliveryStatus(body: string): { reportingMta: string | null; recipients: DsnReportRecipient[] } {
  const blocks = body
    .replace(/\r\n/g, '\n')
    .split(/\n[ \t]*\n/)
    .map((b) => b.trim())
    .filter(Boolean)
    .map((b) => headerFields(b.replace(/\n/g, '\r\n')));
  let reportingMta: string | null = null;
  const recipients: DsnReportRecipient[] = [];
  for (const f of blocks) {
    if (f.has('reporting-mta') && reportingMta === null) reportingMta = uncomment(f.get('reporting-mta')!);
    if (!f.has('final-recipient') && !f.has('action')) continue;
    const action = (uncomment(f.get('action') ?? '').toLowerCase().split(/\s/)[0] ?? '') as DsnReportAction;
    const status = /\b([245]\.\d{1,3}\.\d{1,3})\b/.exec(uncomment(f.get('status') ?? ''))?.[1] ?? null;
    recipients.push({
      finalRecipient: addressOf(f.get('final-recipient')),
      originalRecipient: addressOf(f.get('original-recipient')),
      action: ['failed', 'delayed', 'delivered', 'relayed', 'expanded'].includes(action) ? action : null,
      status,
      remoteMta: f.has('remote-mta') ? uncomment(f.get('remote-mta')!) : null,
      diagnostic: f.has('diagnostic-code') ? f.get('diagnostic-code')!.trim() : null,
    });
  }
  return { reportingMta, recipients };
}

// ------------------------------------------------------------------------ MIME

interface Entity {
  header: string;
  body: string;
}

function splitEntity(entity: string): Entity {
  const m = /\r?\n\r?\n/.exec(entity);
  if (entity.startsWith('\r\n') || entity.startsWith('\n')) return { header: '', body: entity.replace(/^\r?\n/, '') };
  if (!m) return { header: entity, body: '' };
  return { header: entity.slice(0, m.index), body: entity.slice(m.index + m[0].length) };
}

/** Unfolded header fields by lower-case name (the first of each name). */
function headerFields(header: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const field of header.split(/\r?\n(?![ \t])/)) {
    const colon = field.indexOf(':');
    if (colon <= 0) continue;
    const name = field.slice(0, colon).trim().toLowerCase();
    if (!out.has(name)) out.set(name, field.slice(colon + 1).replace(/\r?\n[ \t]+/g, ' ').trim());
  }
  return out;
}

function mediaType(value: string | undefined, fallback: string): string {
  return (value?.split(';')[0] ?? '').trim().toLowerCase() || fallback;
}

function parameter(value: string, name: string): string | null {
  const m = new RegExp(`;\\s*${name}\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^\\s;]+))`, 'i').exec(value);
  if (!m) return null;
  return m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!;
}

/** The decoded body of the first delivery-status part under `entity`, or null. */
function findDeliveryStatus(entity: Entity, fields: Map<string, string>, depth: number): string | null {
  if (depth > MAX_DEPTH) return null;
  const type = mediaType(fields.get('content-type'), 'text/plain');
  if (type === 'message/delivery-status' || type === 'message/global-delivery-status') return decodeBody(entity.body, fields.get('content-transfer-encoding'));
  if (!type.startsWith('multipart/')) return null;
  const boundary = parameter(fields.get('content-type')!, 'boundary');
  if (!boundary) return null;
  for (const part of multipartParts(entity.body, boundary)) {
    const p = splitEntity(part);
    const found = findDeliveryStatus(p, headerFields(p.header), depth + 1);
    if (found !== null) return found;
  }
  return null;
}

function multipartParts(body: string, boundary: string): string[] {
  const delimiter = new RegExp(`(?:^|\\r?\\n)--${escapeRegExp(boundary)}(--)?[ \\t]*(?=\\r?\\n|$)`, 'g');
  const parts: string[] = [];
  let start = -1;
  for (let m = delimiter.exec(body); m; m = delimiter.exec(body)) {
    if (start >= 0) parts.push(body.slice(start, m.index));
    if (m[1] === '--') return parts;
    start = m.index + m[0].length;
    if (body.startsWith('\r\n', start)) start += 2;
    else if (body.startsWith('\n', start)) start += 1;
  }
  if (start >= 0) parts.push(body.slice(start));
  return parts;
}

function decodeBody(body: string, encoding: string | undefined): string {
  const cte = (encoding ?? '7bit').trim().toLowerCase();
  if (cte === 'base64') return Buffer.from(body.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64').toString('latin1');
  if (cte === 'quoted-printable') return body.replace(/=\r?\n/g, '').replace(/=([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  return body;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// ------------------------------------------------------------------- fields

/** A field value without RFC 5322 comments (`dns; mx.example.com (192.0.2.1)` keeps its comment out). */
function uncomment(value: string): string {
  let out = '';
  let depth = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '\\' && depth > 0) i++;
    else if (c === '(') depth++;
    else if (c === ')' && depth > 0) depth--;
    else if (depth === 0) out += c;
  }
  return out.replace(/\s+/g, ' ').trim();
}

/** The address of `type; address` (rfc822, or utf-8 with RFC 6533's \x{HEX} escapes), without angle brackets. */
function addressOf(value: string | undefined): string | null {
  if (value === undefined) return null;
  const v = uncomment(value);
  const semi = v.indexOf(';');
  const type = semi >= 0 ? v.slice(0, semi).trim().toLowerCase() : 'rfc822';
  let address = (semi >= 0 ? v.slice(semi + 1) : v).trim().replace(/^<(.*)>$/, '$1');
  if (type === 'utf-8') address = Buffer.from(address.replace(/\\x\{([0-9A-Fa-f]{1,6})\}/g, (_, h: string) => String.fromCodePoint(parseInt(h, 16))), 'latin1').toString('utf8');
  return address || null;
}

/** RFC 3834's Auto-Submitted: auto-replied, and the headers vacation programs add. */
function isAutoReply(fields: Map<string, string>): boolean {
  if (/^auto-replied\b/i.test(fields.get('auto-submitted') ?? '')) return true;
  if (fields.has('x-autoreply') || fields.has('x-autorespond')) return true;
  return /^auto[_-]reply$/i.test(fields.get('precedence') ?? '');
}

/** The first line of `text` that holds an SMTP reply (`550 5.1.1 …`, `Remote host said: 550 …`), with its enhanced code. */
function firstReply(text: string): { line: string; status: string | null } | null {
  const m = /(?:^|[\s:])([45]\d\d)[ -]((?:[45]\.\d{1,3}\.\d{1,3}\b)?[^\r\n]*)/m.exec(text);
  if (!m) return null;
  const line = `${m[1]} ${m[2]!.trim()}`.slice(0, 500);
  return { line, status: /^([45]\.\d{1,3}\.\d{1,3})\b/.exec(m[2]!)?.[1] ?? null };
}

/** A Subject: with RFC 2047 encoded words decoded (base64 and Q), for the record. */
function decodeSubject(raw: string | null): string | null {
  if (raw === null) return null;
  const decoded = raw.replace(/=\?([^?]+)\?([bBqQ])\?([^?]*)\?=/g, (_, charset: string, enc: string, data: string) => {
    const bytes = enc.toUpperCase() === 'B' ? Buffer.from(data, 'base64') : Buffer.from(data.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (__, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
    return /^utf-?8$/i.test(charset) ? bytes.toString('utf8') : bytes.toString('latin1');
  });
  // A raw UTF-8 Subject (SMTPUTF8) read as latin1: give it back its characters.
  return /[\x80-\xff]/.test(decoded) && !raw.includes('=?') ? Buffer.from(decoded, 'latin1').toString('utf8') : decoded;
}
