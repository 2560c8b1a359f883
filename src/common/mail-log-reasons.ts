// What a mail.log status says, reduced for grouping: the remote host a delivery's status ends
// with (`… (mx.example.com[192.0.2.1]:25)`), the reason text without the parts that differ from
// message to message (addresses, times), and for a rejection the rule that decided. The report and the
// status page group deferrals, returns and rejections with these, so both show the same groups.
// Pure.

/** A status reduced for grouping. */
export interface StatusReason {
  /** The reason text, addresses replaced by `<…>` and times by `…`, at most REASON_LENGTH characters. */
  reason: string;
  /** The remote host's name from the trailing `(host[ip]:port)`, `` when the status names none. */
  host: string;
}

const REASON_LENGTH = 160;

/** `… (mx.example.com[192.0.2.1]:2525)` at the end of a delivery status: the host that answered. */
const TRAILING_HOST = / \(([A-Za-z0-9._-]+)(?:\[[0-9A-Fa-f.:]+\])?(?::\d+)?\)$/;
const ANGLE_ADDRESS = /<[^<>\s]*>/g;
const ISO_TIME = /\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?/g;

export function statusReason(status: string): StatusReason {
  const m = TRAILING_HOST.exec(status);
  const text = m ? status.slice(0, m.index) : status;
  const reason = text.replace(ANGLE_ADDRESS, '<…>').replace(ISO_TIME, '…').replace(/\s+/g, ' ').trim();
  return { reason: reason.length > REASON_LENGTH ? `${reason.slice(0, REASON_LENGTH - 1)}…` : reason || '(no reason given)', host: m ? m[1]!.toLowerCase() : '' };
}

/**
 * The rule that refused a recipient (a J record): the status's leading rule name when it has one
 * (`SEND_ACCESS: 550 5.7.1 …`, `rbl:zen.example.org: …`), else a name for the refusals the SMTP
 * server makes itself (`relay`, `unknown user`, …), else the reply's enhanced code (`5.5.2`).
 */
export function rejectionRule(status: string): string {
  const leading = /^([A-Za-z][A-Za-z0-9_.\-/]*(?::[A-Za-z0-9_.\-/]+)*):(?:\s|$)/.exec(status);
  if (leading) return leading[1]!;
  for (const [pattern, name] of BUILT_IN_RULES) if (pattern.test(status)) return name;
  const code = /^(\d{3})(?: (\d\.\d{1,3}\.\d{1,3}))?/.exec(status);
  if (code) return code[2] ?? code[1]!;
  return 'other';
}

/** The SMTP server's own refusals (src/smtp-server/replies.ts), by their text. */
const BUILT_IN_RULES: ReadonlyArray<readonly [RegExp, string]> = [
  [/Relaying denied/i, 'relay'],
  [/User unknown/i, 'unknown user'],
  [/^\d{3} 5\.1\.2 /, 'unroutable'],
  [/^\d{3} 5\.1\.3 /, 'bad address'],
  [/^\d{3} 5\.6\.7 /, 'SMTPUTF8'],
  [/^\d{3} 5\.5\.2 /, 'bad message'],
  [/^\d{3} 5\.3\.4 /, 'message too big'],
  [/^\d{3} 5\.4\.6 /, 'mail loop'],
  [/^\d{3} 5\.7\.0 .*STARTTLS/i, 'TLS required'],
  [/^4\d\d 4\.3\.[01] /, 'local error'],
];
