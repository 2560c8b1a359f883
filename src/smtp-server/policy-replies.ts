// The replies of the policy checks as the SMTP stages send them: an access table's or a policy
// decision's reply line (`550 5.7.1 text`) and a milter's reply (code, enhanced code, lines) made
// into the service's SmtpReply; a refusal given at connect keeps to the codes RFC 5321 allows
// there (554, or 421 for a temporary one). Pure.
import type { MilterReply } from '../milter/index.js';
import { oneLine, type SmtpReply } from './replies.js';

/** `550 5.7.1 text` → {550, 5.7.1, text}; a line without an enhanced code gets the class's x.7.1. */
export function replyFromLine(line: string): SmtpReply {
  const m = /^([245]\d\d)(?:[ -]([245]\.\d{1,3}\.\d{1,3}))?(?:\s+(.*))?$/s.exec(line.trim());
  if (!m) return { code: 451, enhanced: '4.3.0', text: oneLine(line) || 'policy failure, try again later' };
  const code = Number(m[1]);
  return { code, enhanced: m[2] ?? `${m[1]![0]}.7.1`, text: oneLine(m[3] ?? '') || 'refused by policy' };
}

/** A filter's reply on one line (a multi-line reply's lines joined). */
export function replyFromMilter(r: MilterReply): SmtpReply {
  return { code: r.code, enhanced: r.enhanced, text: oneLine(r.lines.join(' ')) || (r.code < 500 ? 'try again later' : 'refused by content filter') };
}

/** The reply as a refusal of the connection (before the greeting): 421 when temporary, else 554. */
export function atConnect(r: SmtpReply): SmtpReply {
  if (r.code < 500) return { code: 421, enhanced: r.enhanced.startsWith('4') ? r.enhanced : '4.7.1', text: r.text };
  return { code: 554, enhanced: r.enhanced.startsWith('5') ? r.enhanced : '5.7.1', text: r.text };
}
