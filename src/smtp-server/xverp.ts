// XVERP on MAIL FROM (Postfix's): a list server asks that each recipient of this one message get
// an envelope sender of its own, `owner+member=domain@list.example`, so a bounce names the member
// (src/delivery/verp.ts does it at delivery; the request is kept in the queue file's envelope).
// As Postfix: bare `XVERP` takes the delimiters of option.dat VERP_DELIMITERS, `XVERP=+=` its own
// two (checked as VERP_DELIMITERS is: `501 5.5.4`); XVERP with the null sender is `503 5.5.4`;
// only clients that may use it see it in the EHLO reply and may give it, others get the `555`
// of any parameter the server does not offer. Postfix's smtpd_authorized_verp_clients defaults to
// $mynetworks; here that is INTERNAL_IP, and an authenticated client too (the clients that may
// relay: a list server outside the network submits with AUTH).
import type { SMTPServerAddress } from 'smtp-server';
import { verpDelimitersProblem } from '../config/verp-options.js';
import type { SmtpReply } from './replies.js';

const XVERP = 'XVERP';

/** Whether the session's client may give XVERP (and sees it in the EHLO reply): INTERNAL_IP or authenticated. */
export function mayUseXverp(internal: boolean, authenticated: boolean): boolean {
  return internal || authenticated;
}

/** The refusal of a MAIL command's XVERP (a client allowed to give it), or null when it is fine or absent. */
export function xverpRefusal(mail: SMTPServerAddress): SmtpReply | null {
  const value = xverpValue(mail.args);
  if (value === undefined) return null;
  if (typeof value === 'string' && verpDelimitersProblem(value) !== null) {
    return { code: 501, enhanced: '5.5.4', text: `Error: ${XVERP} needs two characters from - = + (the second not -), such as ${XVERP}=+=` };
  }
  if (mail.address === '') return { code: 503, enhanced: '5.5.4', text: `Error: ${XVERP} requires non-null sender` };
  return null;
}

/** The delimiters an accepted MAIL command's XVERP asks for (bare: `defaults`), or undefined when it has none. */
export function xverpDelimiters(args: Record<string, string | true> | false, defaults: string): string | undefined {
  const value = xverpValue(args);
  return value === undefined ? undefined : value === true ? defaults : value;
}

/** smtp-server upper-cases the parameters' names in `args`. */
function xverpValue(args: Record<string, string | true> | false | undefined): string | true | undefined {
  return args ? args[XVERP] : undefined;
}
