// log/mail.log: one line per event, as DESIGN.md fixes:
//   ISO-time  event  message-id  source-channel  destination-channel  size  env-from  recipient  status
// A record of a TLS session ends its status with one ` tls=…` token (protocol/cipher, and for
// outbound deliveries /Verified, /Trusted or /Untrusted), and a record of an authenticated
// session (SMTP AUTH) with ` sasl_username=NAME` before it (Postfix's word; never a password),
// so the nine fields parse as before.
// Several processes append to the same file; each record is one write(2) on an O_APPEND fd,
// which Linux keeps whole for lines this short. The file is reopened by name on SIGHUP
// (logrotate, or the watcher's LOG_MAX_SIZE rotation).
import { openSync, closeSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { onLogReopen } from './logger.js';
import { writeFullySync } from './write-fully.js';

/**
 * E enqueued, D delivered, Q deferred, R returned, J rejected, X removed from the queue by the
 * operator (`imsimta qm delete`: neither delivered nor returned; Postfix logs `removed`).
 */
export type MailLogEvent = 'E' | 'D' | 'Q' | 'R' | 'J' | 'X';

export interface MailLogRecord {
  event: MailLogEvent;
  id: string;
  source: string;
  destination: string;
  size: number;
  from: string;
  recipient: string;
  status: string;
  /** TLS in use: `TLSv1.3/TLS_AES_256_GCM_SHA384` (outbound: `…/Verified`); absent in clear. */
  tls?: string;
  /** The SMTP AUTH user of the session the mail came in (or was refused) on; absent without AUTH. */
  user?: string;
  time?: Date;
}

/**
 * Fields are separated by single spaces; empty values are written as `-`; the status is last and
 * may contain spaces. Written for every recipient of every message: the common case (plain ASCII,
 * no white space) is checked with a loop over the characters, the regular expressions run only
 * for a value that has something to replace.
 */
export function formatMailLogRecord(r: MailLogRecord): string {
  return formatAt(r, (r.time ?? new Date()).toISOString());
}

/** The record with `time` (ISO text) as its time. */
function formatAt(r: MailLogRecord, time: string): string {
  const text = hasLineBreak(r.status) ? r.status.replace(/[\r\n]+/g, ' ').trim() : r.status.trim();
  const withUser = r.user ? `${text} sasl_username=${token(r.user)}`.trim() : text;
  const status = r.tls ? `${withUser} tls=${field(r.tls)}`.trim() : withUser;
  return `${time} ${r.event} ${field(r.id)} ${field(r.source)} ${field(r.destination)} ${r.size} ${r.from === '' ? '<>' : field(r.from)} ${field(r.recipient)} ${status === '' ? '-' : status}`;
}

/** A value as one field: `-` when empty, white space made `_`. */
function field(s: string): string {
  if (s === '') return '-';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // Control characters and space, and anything beyond ASCII (where \s has more spaces): the slow way.
    if (c <= 0x20 || c >= 0x7f) return s.replace(/\s+/g, '_');
  }
  return s;
}

function hasLineBreak(s: string): boolean {
  return s.includes('\n') || s.includes('\r');
}

/** A value as one printable token (a user name from LDAP may hold anything). */
function token(s: string): string {
  return s.replace(/[^\x21-\x7e]/g, '?').slice(0, 256);
}

export interface ParsedMailLogRecord extends Omit<MailLogRecord, 'time'> {
  time: Date;
}

export function parseMailLogLine(line: string): ParsedMailLogRecord | null {
  const m = /^(\S+) ([EDQRJX]) (\S+) (\S+) (\S+) (\d+) (\S+) (\S+) (.*)$/.exec(line);
  if (!m) return null;
  const unfield = (s: string) => (s === '-' ? '' : s);
  const tls = /(?:^| )tls=(\S+)$/.exec(m[9]!);
  const withUser = tls ? m[9]!.slice(0, tls.index) : m[9]!;
  const user = /(?:^| )sasl_username=(\S+)$/.exec(withUser);
  const status = user ? withUser.slice(0, user.index) : withUser;
  return {
    time: new Date(m[1]!),
    event: m[2] as MailLogEvent,
    id: unfield(m[3]!),
    source: unfield(m[4]!),
    destination: unfield(m[5]!),
    size: Number(m[6]),
    from: m[7] === '<>' ? '' : unfield(m[7]!),
    recipient: unfield(m[8]!),
    status: unfield(status),
    ...(tls ? { tls: tls[1]! } : {}),
    ...(user ? { user: user[1]! } : {}),
  };
}

export class MailLog {
  private fd: number | null = null;
  /** Set while the file is open: the SIGHUP registration. */
  private unregister: (() => void) | null = null;
  constructor(private readonly path: string) {}

  write(records: MailLogRecord[]): void {
    if (records.length === 0) return;
    if (this.fd === null) {
      mkdirSync(dirname(this.path), { recursive: true });
      this.fd = openSync(this.path, 'a');
      this.unregister = onLogReopen(() => this.reopen());
    }
    // A full disk may take part of the records: the rest is written after it, or the error thrown.
    // One clock reading for the records written together (their time unless they carry one).
    const now = new Date().toISOString();
    let text = '';
    for (const r of records) text += formatAt(r, r.time ? r.time.toISOString() : now) + '\n';
    writeFullySync(this.fd, [Buffer.from(text)]);
  }

  /** Reopen after logrotate moved the file: the next record opens log/mail.log by name again. */
  reopen(): void {
    this.close();
  }

  close(): void {
    this.unregister?.();
    this.unregister = null;
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
