// The decision a policy check hands to an SMTP stage: accept, refuse with a reply line, or accept
// and hold the message; with the reason to log (the mail.log J line names what decided).
export type PolicyAction = 'accept' | 'refuse' | 'hold';

export type SmtpStage = 'connect' | 'helo' | 'mail' | 'rcpt' | 'data';

export interface PolicyDecision {
  action: PolicyAction;
  /** The whole reply line for a refusal (`550 5.7.1 text`); null otherwise. */
  reply: string | null;
  smtpCode: number | null;
  enhancedCode: string | null;
  /** A 4xx refusal: the client keeps the message and tries again later. */
  temporary: boolean;
  /** What decided and why, one line, for the log; null when there is nothing to say. */
  reason: string | null;
}

export function accept(reason: string | null = null): PolicyDecision {
  return { action: 'accept', reply: null, smtpCode: null, enhancedCode: null, temporary: false, reason };
}

export function hold(reason: string): PolicyDecision {
  return { action: 'hold', reply: null, smtpCode: null, enhancedCode: null, temporary: false, reason };
}

/** A refusal; the text is made one line of printable ASCII. */
export function refuse(smtpCode: number, enhancedCode: string, text: string, reason: string): PolicyDecision {
  const line = text.replace(/[^\x20-\x7e]/g, '?').trim();
  return { action: 'refuse', reply: `${smtpCode} ${enhancedCode} ${line}`, smtpCode, enhancedCode, temporary: smtpCode < 500, reason };
}
