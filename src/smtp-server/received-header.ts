// The Received: trace field (RFC 5321 §4.4) the SMTP server prepends to every message. Only
// values the server checked go in: the client's IP address (never a reverse-DNS name, which the
// owner of the address controls), and the HELO argument reduced to harmless characters.
import { formatRfc5322Date } from '../common/rfc5322-date.js';

export interface ReceivedInfo {
  /** HELO/EHLO argument as the client gave it (null when none). */
  helo: string | null;
  clientAddress: string;
  /** This host's name (the banner name). */
  byHost: string;
  /** ESMTP, ESMTPS, ESMTPSA, SMTP, LMTP… (RFC 3848). */
  protocol: string;
  id: string;
  /** The recipient, when the message has exactly one. */
  recipient: string | null;
  /** TLS details when the session is encrypted. */
  tls: { version: string | null; cipher: string | null } | null;
  date: Date;
}

/** The whole field, folded, ending in CRLF. */
export function formatReceived(info: ReceivedInfo): string {
  const helo = info.helo ? safeToken(info.helo) : 'unknown';
  const ip = info.clientAddress.includes(':') ? `IPv6:${info.clientAddress}` : info.clientAddress;
  const lines = [`Received: from ${helo} ([${safeToken(ip)}])`];
  let by = `by ${safeToken(info.byHost)} (tsubame) with ${safeToken(info.protocol)} id ${safeToken(info.id)}`;
  if (info.tls) {
    const parts = [info.tls.version && `using ${safeToken(info.tls.version)}`, info.tls.cipher && `with cipher ${safeToken(info.tls.cipher)}`].filter(Boolean);
    if (parts.length) by += ` (${parts.join(' ')})`;
  }
  const date = formatRfc5322Date(info.date);
  if (info.recipient) lines.push(by, `for <${safeAddress(info.recipient)}>; ${date}`);
  else lines.push(`${by};`, date);
  return lines.join('\r\n\t') + '\r\n';
}

/** A token without spaces, comment or field syntax, printable ASCII only, bounded in length. */
function safeToken(s: string): string {
  return s.replace(/[^\x21-\x7e]|[()\\;<>"]/g, '?').slice(0, 255) || '?';
}

/** An address for `for <…>`: UTF-8 is fine (SMTPUTF8), controls and angle brackets are not. */
function safeAddress(s: string): string {
  return s.replace(/[\x00-\x20\x7f<>]/g, '?').slice(0, 320);
}
