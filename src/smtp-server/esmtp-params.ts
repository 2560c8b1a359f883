// The ESMTP parameters a client may give on MAIL and RCPT: those the EHLO reply offers (SIZE,
// 8BITMIME, SMTPUTF8, DSN). smtp-server validates the ones it knows and keeps any other in
// `args` without a word (and XVERP, Postfix's, to the clients that may use it: xverp.ts); RFC 5321 §4.1.1.11 asks for 555 for a parameter the server does not
// recognize (Postfix: `555 5.5.4 Unsupported option`), and a MAIL-only parameter on RCPT is one.
import type { SmtpReply } from './replies.js';

export const MAIL_PARAMETERS: ReadonlySet<string> = new Set(['SIZE', 'BODY', 'SMTPUTF8', 'RET', 'ENVID']);
export const MAIL_PARAMETERS_WITH_XVERP: ReadonlySet<string> = new Set([...MAIL_PARAMETERS, 'XVERP']);
export const RCPT_PARAMETERS: ReadonlySet<string> = new Set(['NOTIFY', 'ORCPT']);

/** The refusal for the first parameter not in `allowed` (names are upper-case in `args`), or null. */
export function unsupportedParameter(args: Record<string, string | true> | false | undefined, allowed: ReadonlySet<string>): SmtpReply | null {
  if (!args) return null;
  const name = Object.keys(args).find((k) => !allowed.has(k.toUpperCase()));
  if (name === undefined) return null;
  const shown = name.replace(/[^\x21-\x7e]/g, '?').slice(0, 40);
  return { code: 555, enhanced: '5.5.4', text: `Unsupported parameter ${shown}` };
}
