// Delivery status notifications as RFC 3464 messages (pure): multipart/report;
// report-type=delivery-status with a human-readable part, the message/delivery-status part
// (per-message and per-recipient fields) and the returned message (message/rfc822 in full,
// or text/rfc822-headers for RET=HDRS, delay and success notices, and oversized messages).
// For a message sent with SMTPUTF8 the parts are the RFC 6533 ones, as Postfix writes them:
// message/global-delivery-status (UTF-8 addresses as `utf-8; …`), message/global or
// message/global-headers, and a UTF-8 human-readable part.
import { hostNameOf } from '../delivery/status.js';

export type DsnAction = 'failed' | 'delayed' | 'delivered' | 'relayed';

export interface DsnRecipient {
  address: string;
  /** ORCPT as given (`rfc822;user@example.com`), or null. */
  orcpt: string | null;
  action: DsnAction;
  /** Reply or reason with its code, e.g. `550 5.1.1 <x@y>: user unknown`. */
  status: string;
  remoteHost: string | null;
}

export interface DsnInput {
  /** LOCAL_HOST: Reporting-MTA and the postmaster's domain. */
  reportingMta: string;
  /** The notice's own From: address (postmaster@LOCAL_HOST). */
  postmaster: string;
  /** Who gets the notice (the original envelope From). */
  to: string;
  originalId: string;
  envid: string | null;
  arrival: Date;
  recipients: DsnRecipient[];
  /** The original message (header and body). */
  original: Buffer;
  /** Return the whole message (else headers only). */
  returnFull: boolean;
  now: Date;
  /** For Will-Retry-Until of delayed recipients. */
  willRetryUntil: Date | null;
  /** The original was sent with SMTPUTF8 (or has UTF-8 addresses): the RFC 6533 "global" forms. */
  smtputf8?: boolean;
  /** Unique text for Message-ID and the MIME boundary. */
  uniqueId: string;
  /** RFC 5322 date formatter. */
  formatDate: (d: Date) => string;
}

/** The enhanced status code of a reply (`5.1.1` from `550 5.1.1 …`), else one derived from its class. */
export function enhancedStatus(status: string, action: DsnAction): string {
  const m = /(?:^|\s)([245]\.\d{1,3}\.\d{1,3})(?=\s|$|[;:,])/.exec(status);
  if (m) return m[1]!;
  const code = /^([245])\d\d\b/.exec(status.trim());
  if (code) return `${code[1]}.0.0`;
  return action === 'failed' ? '5.0.0' : action === 'delayed' ? '4.0.0' : '2.0.0';
}

/** The header section of a message (up to the blank line), CRLF line ends. */
export function headerSection(message: Buffer): Buffer {
  const crlf = message.indexOf('\r\n\r\n');
  const lf = message.indexOf('\n\n');
  let end: number;
  if (crlf >= 0 && (lf < 0 || crlf <= lf)) end = crlf + 2;
  else if (lf >= 0) end = lf + 1;
  else end = message.length;
  return toCrlf(message.subarray(0, end));
}

function toCrlf(b: Buffer): Buffer {
  return Buffer.from(b.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');
}

/** A header field value of the original (unfolded), or null. */
function originalHeader(message: Buffer, name: string): string | null {
  const text = headerSection(message).toString('latin1').replace(/\r\n[ \t]+/g, ' ');
  const re = new RegExp(`^${name}:[ \\t]*(.*)$`, 'im');
  const m = re.exec(text);
  return m ? m[1]!.trim() : null;
}

const NON_ASCII = /[^\x00-\x7f]/;

/** One line of printable text; `utf8` keeps non-ASCII characters (global parts), else they become `?`. */
function oneLine(s: string, utf8 = false): string {
  return s
    .replace(/[\r\n]+/g, ' ')
    .replace(utf8 ? /[\x00-\x1f\x7f]/g : /[^\x20-\x7e]/g, '?')
    .trim();
}

/** RFC 6533 utf-8-addr-xtext: printable ASCII but `+`, `=` and `\` as is, anything else `\x{HEX}`. */
export function utf8AddrXtext(address: string): string {
  let out = '';
  for (const ch of address) {
    const cp = ch.codePointAt(0)!;
    out += cp >= 0x21 && cp <= 0x7e && ch !== '+' && ch !== '=' && ch !== '\\' ? ch : `\\x{${cp.toString(16).toUpperCase()}}`;
  }
  return out;
}

/**
 * An address field value (`rfc822; a@b`, or for a UTF-8 address `utf-8; …`, RFC 6533 §3): in a
 * global report the address as it is, in a plain one its utf-8-addr-xtext form.
 */
export function addressField(address: string, global: boolean): string {
  if (!NON_ASCII.test(address)) return `rfc822; ${oneLine(address)}`;
  return `utf-8; ${global ? oneLine(address, true) : utf8AddrXtext(oneLine(address, true))}`;
}

/** Whether the report uses the RFC 6533 global forms (and so is sent with SMTPUTF8). */
export function isGlobal(input: Pick<DsnInput, 'smtputf8' | 'to' | 'recipients'>): boolean {
  return Boolean(input.smtputf8) || NON_ASCII.test(input.to) || input.recipients.some((r) => NON_ASCII.test(r.address) || NON_ASCII.test(r.orcpt ?? ''));
}

function subjectFor(actions: Set<DsnAction>): string {
  if (actions.has('failed')) return 'Undelivered Mail Returned to Sender';
  if (actions.has('delayed')) return 'Delayed Mail (still being retried)';
  return 'Successful Mail Delivery Report';
}

function humanText(input: DsnInput, global: boolean): string {
  const line = (t: string) => oneLine(t, global);
  const lines: string[] = [];
  const failed = input.recipients.filter((r) => r.action === 'failed');
  const delayed = input.recipients.filter((r) => r.action === 'delayed');
  const done = input.recipients.filter((r) => r.action === 'delivered' || r.action === 'relayed');
  const rawSubject = originalHeader(input.original, 'Subject');
  // The header is read as latin1 (bytes); a global report shows a raw UTF-8 subject as UTF-8.
  const subject = rawSubject !== null && global ? Buffer.from(rawSubject, 'latin1').toString('utf8') : rawSubject;
  lines.push(`This is the mail system at ${input.reportingMta}.`, '');
  lines.push(`Your message${subject ? ` "${line(subject)}"` : ''} (queue id ${input.originalId}), received ${input.formatDate(input.arrival)}:`, '');
  if (failed.length) {
    lines.push('could NOT be delivered to these recipients; it will not be tried again:', '');
    for (const r of failed) lines.push(`  <${line(r.address)}>: ${line(r.status)}`);
    lines.push('');
  }
  if (delayed.length) {
    lines.push('has NOT yet been delivered to these recipients; delivery is still being tried:', '');
    for (const r of delayed) lines.push(`  <${line(r.address)}>: ${line(r.status)}`);
    if (input.willRetryUntil) lines.push('', `The mail system will keep trying until ${input.formatDate(input.willRetryUntil)}.`);
    lines.push('', 'You do not need to resend the message.', '');
  }
  if (done.length) {
    lines.push('was delivered to these recipients:', '');
    for (const r of done) lines.push(`  <${line(r.address)}>: ${line(r.status)}`);
    lines.push('');
  }
  lines.push(`For help, write to <${input.postmaster}> and include this notice.`);
  return lines.join('\r\n') + '\r\n';
}

function deliveryStatus(input: DsnInput, global: boolean): string {
  // ENVID and ORCPT are kept as the SMTP server decoded them from xtext (once); they are shown as
  // they are, never decoded again (`ENVID=id+2B41` is `id+41`, not `idA`).
  const fields: string[] = [];
  fields.push(`Reporting-MTA: dns; ${input.reportingMta}`);
  if (input.envid) fields.push(`Original-Envelope-Id: ${oneLine(input.envid, global)}`);
  fields.push(`X-Tsubame-Queue-ID: ${input.originalId}`);
  fields.push(`Arrival-Date: ${input.formatDate(input.arrival)}`);
  const blocks = [fields.join('\r\n')];
  for (const r of input.recipients) {
    const f: string[] = [];
    if (r.orcpt) {
      const semi = r.orcpt.indexOf(';');
      const type = semi > 0 ? r.orcpt.slice(0, semi).trim() : 'rfc822';
      const value = semi > 0 ? r.orcpt.slice(semi + 1).trim() : r.orcpt.trim();
      const shown = global || !NON_ASCII.test(value) ? oneLine(value, global) : utf8AddrXtext(oneLine(value, true));
      f.push(`Original-Recipient: ${NON_ASCII.test(value) ? 'utf-8' : type}; ${shown}`);
    }
    f.push(`Final-Recipient: ${addressField(r.address, global)}`);
    f.push(`Action: ${r.action}`);
    f.push(`Status: ${enhancedStatus(r.status, r.action)}`);
    if (r.remoteHost) f.push(`Remote-MTA: dns; ${oneLine(hostNameOf(r.remoteHost))}`);
    if (/^[245]\d\d\b/.test(r.status.trim())) f.push(`Diagnostic-Code: smtp; ${oneLine(r.status, global)}`);
    else f.push(`Diagnostic-Code: X-Tsubame; ${oneLine(r.status, global)}`);
    f.push(`Last-Attempt-Date: ${input.formatDate(input.now)}`);
    if (r.action === 'delayed' && input.willRetryUntil) f.push(`Will-Retry-Until: ${input.formatDate(input.willRetryUntil)}`);
    blocks.push(f.join('\r\n'));
  }
  return blocks.join('\r\n\r\n') + '\r\n';
}

/** The notice as it is queued: header and body, CRLF line ends. */
export function buildDsn(input: DsnInput): Buffer {
  const boundary = `${input.uniqueId}/${input.reportingMta}`;
  const actions = new Set(input.recipients.map((r) => r.action));
  const global = isGlobal(input);
  const returned = input.returnFull ? toCrlf(input.original) : headerSection(input.original);
  const human = Buffer.from(humanText(input, global), 'utf8');
  const status = Buffer.from(deliveryStatus(input, global), 'utf8');
  const eightBit = (b: Buffer) => b.some((x) => x >= 0x80);
  const cte = (b: Buffer) => (eightBit(b) ? 'Content-Transfer-Encoding: 8bit\r\n' : '');
  const anyEightBit = eightBit(returned) || eightBit(human) || eightBit(status);
  const returnedType = input.returnFull ? (global ? 'message/global' : 'message/rfc822') : global ? 'message/global-headers' : 'text/rfc822-headers';
  const head = [
    `From: Mail Delivery System <${input.postmaster}>`,
    `To: <${oneLine(input.to, true)}>`,
    `Subject: ${subjectFor(actions)}`,
    `Date: ${input.formatDate(input.now)}`,
    `Message-ID: <${input.uniqueId}@${input.reportingMta}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="${boundary}"`,
    ...(anyEightBit ? ['Content-Transfer-Encoding: 8bit'] : []),
  ].join('\r\n');
  let tail = returned;
  if (tail.length > 0 && !tail.subarray(-2).equals(Buffer.from('\r\n'))) tail = Buffer.concat([tail, Buffer.from('\r\n')]);
  return Buffer.concat([
    Buffer.from(`${head}\r\n\r\nThis is a MIME-encapsulated message.\r\n\r\n`, 'utf8'),
    Buffer.from(`--${boundary}\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=${eightBit(human) ? 'utf-8' : 'us-ascii'}\r\n${cte(human)}\r\n`, 'latin1'),
    human,
    Buffer.from(`\r\n--${boundary}\r\nContent-Description: Delivery report\r\nContent-Type: message/${global ? 'global-' : ''}delivery-status\r\n${cte(status)}\r\n`, 'latin1'),
    status,
    Buffer.from(`\r\n--${boundary}\r\nContent-Description: ${input.returnFull ? 'Undelivered Message' : 'Message Headers'}\r\nContent-Type: ${returnedType}\r\n${cte(returned)}\r\n`, 'latin1'),
    tail,
    Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1'),
  ]);
}
