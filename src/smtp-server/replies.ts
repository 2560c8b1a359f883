// SMTP replies the inbound service gives, as plain data, and the error objects smtp-server turns
// into replies. Every refusal carries an enhanced status code (RFC 3463) in its text; the
// connection (connection.ts) sees the code there and does not add the library's default one.

export interface SmtpReply {
  code: number;
  /** Enhanced status code, e.g. `5.7.1`. */
  enhanced: string;
  text: string;
}

/** What smtp-server hooks take as an error: `responseCode` is the reply code, `message` its text. */
export type SmtpHookError = Error & { responseCode: number };

/** Matches a reply text that starts with its own enhanced status code. */
export const ENHANCED_CODE_PREFIX = /^[245]\.\d{1,3}\.\d{1,3} /;

export function replyText(r: SmtpReply): string {
  return `${r.enhanced} ${r.text}`;
}

export function formatReply(r: SmtpReply): string {
  return `${r.code} ${replyText(r)}`;
}

export function hookError(r: SmtpReply): SmtpHookError {
  return Object.assign(new Error(replyText(r)), { responseCode: r.code });
}

export const REPLIES = {
  relayDenied: { code: 550, enhanced: '5.7.1', text: 'Relaying denied' },
  userUnknown: { code: 550, enhanced: '5.1.1', text: 'User unknown' },
  /** RCPT to an SRS address of ours that does not verify (forged, altered, expired): src/srs srsReverse → invalid. */
  srsInvalid: { code: 550, enhanced: '5.1.1', text: 'Invalid or expired SRS address' },
  tlsRequired: { code: 530, enhanced: '5.7.0', text: 'Must issue a STARTTLS command first' },
  /** mustsaslserver, in Messaging Server's words. */
  authRequired: { code: 530, enhanced: '5.7.0', text: 'No AUTH command has been given.' },
  tooManyMessages: { code: 421, enhanced: '4.7.0', text: 'Too many messages in this session, closing connection' },
  tooManyConnections: { code: 421, enhanced: '4.7.0', text: 'Too many connections from your address, try again later' },
  shuttingDown: { code: 421, enhanced: '4.3.2', text: 'Service shutting down, try again later' },
  bareNewline: { code: 550, enhanced: '5.5.2', text: 'Message contains bare CR or LF' },
  storageFull: { code: 452, enhanced: '4.3.1', text: 'Insufficient system storage' },
  localError: { code: 451, enhanced: '4.3.0', text: 'Local error in processing, try again later' },
  /** The directory (LDAP) could not answer: RFC 3463 4.4.3, directory server failure. */
  directoryUnavailable: { code: 451, enhanced: '4.4.3', text: 'Directory server failure, try again later' },
  connectionLost: { code: 451, enhanced: '4.4.2', text: 'Connection lost during DATA' },
} satisfies Record<string, SmtpReply>;

export function unroutable(error: string | null): SmtpReply {
  return { code: 550, enhanced: '5.1.2', text: error ? oneLine(error) : 'Bad destination system address' };
}

export function unknownUser(address: string): SmtpReply {
  return { ...REPLIES.userUnknown, text: `<${oneLine(address)}>: User unknown` };
}

export function relayDenied(address: string): SmtpReply {
  return { ...REPLIES.relayDenied, text: `<${oneLine(address)}>: Relaying denied` };
}

export function lineTooLong(max: number): SmtpReply {
  return { code: 550, enhanced: '5.5.2', text: `Message contains a line longer than ${max} octets` };
}

export function messageTooBig(max: number): SmtpReply {
  return { code: 552, enhanced: '5.3.4', text: `Message size exceeds fixed maximum message size of ${max} octets` };
}

/** RFC 5321 §6.3: a message with too many Received: fields is taken for a mail loop (RFC 3463 5.4.6: routing loop detected). */
export function tooManyHops(maxReceivedLines: number): SmtpReply {
  return { code: 554, enhanced: '5.4.6', text: `Too many hops: more than ${maxReceivedLines} Received: header lines, mail loop?` };
}

export function nonAsciiAddress(): SmtpReply {
  return { code: 553, enhanced: '5.6.7', text: 'Non-ASCII address requires the SMTPUTF8 parameter' };
}

export function invalidUtf8Address(): SmtpReply {
  return { code: 553, enhanced: '5.6.7', text: 'Address is not valid UTF-8' };
}

export function badAddressSyntax(): SmtpReply {
  return { code: 501, enhanced: '5.1.3', text: 'Bad address syntax' };
}

/** Text from elsewhere (rewrite errors, system messages) on one safe line. */
export function oneLine(text: string): string {
  return text.replace(/[\x00-\x1f\x7f]+/g, ' ').trim().slice(0, 400);
}
