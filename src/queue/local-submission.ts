// Local submission (`imsimta submit`, sendmail-like), the pure part: line endings, the header
// fields a local message gets when missing, and recipients taken from headers (the command-line
// options are read by src/cli/submit-args.ts).
// Everything works on bytes (latin1 strings), so 8-bit data, NUL bytes and long lines pass through
// unchanged; the one normalisation is LF → CRLF, as sendmail does for local input.
import { fieldValue, parseAddressList, splitMessage } from '../common/rfc5322-header.js';

/** What `imsimta submit` was asked to do (its command line, read by src/cli/submit-args.ts). */
export interface SubmitOptions {
  root: string | null;
  /** -f / -r: envelope sender; '' = null sender (`-f '<>'`); null = the invoking user. */
  from: string | null;
  /** -F: full name for a From: header that submit adds. */
  fullName: string | null;
  /** -t: recipients from To/Cc/Bcc as well. */
  extract: boolean;
  /** -i / -oi: a line with a lone dot is data, not the end of the message. */
  ignoreDots: boolean;
  recipients: string[];
}

// ------------------------------------------------------------------ bytes

/** Bare LF → CRLF. CRLF stays; a bare CR is kept as it is. */
export function normalizeLineEndings(data: Buffer): Buffer {
  const s = data.toString('latin1');
  return Buffer.from(s.replace(/(?<!\r)\n/g, '\r\n'), 'latin1');
}

/** Without -i, sendmail ends the input at a line holding a single dot. */
export function cutAtDotLine(data: Buffer): Buffer {
  if (data.subarray(0, 3).equals(Buffer.from('.\r\n')) || data.equals(Buffer.from('.'))) return Buffer.alloc(0);
  const i = data.indexOf('\r\n.\r\n');
  if (i >= 0) return data.subarray(0, i + 2);
  if (data.subarray(-3).equals(Buffer.from('\r\n.'))) return data.subarray(0, data.length - 1);
  return data;
}

// ---------------------------------------------------------- composition

export interface SubmissionInput {
  /** The message as read from stdin (any line endings). */
  message: Buffer;
  options: SubmitOptions;
  /** The invoking user's login name. */
  user: string;
  uid: number;
  /** This host's name (option.dat LOCAL_HOST). */
  localHost: string;
  now: Date;
  /** The unique part of a new Message-ID. */
  uniqueId: string;
  formatDate(d: Date): string;
}

export interface Submission {
  /** Envelope From ('' = null sender). */
  from: string;
  /** Recipients as given (command line first, then headers with -t), duplicates removed. */
  recipients: string[];
  /** The final message bytes: Received: line, the header with the fields added (Bcc removed with -t), the body. */
  message: Buffer;
}

/** Qualifies a bare local part with this host, as sendmail does with $j. */
export function qualify(address: string, localHost: string): string {
  if (address === '' || address.includes('@')) return address;
  return `${address}@${localHost}`;
}

export function composeSubmission(input: SubmissionInput): Submission {
  const { options, localHost } = input;
  let data = normalizeLineEndings(input.message);
  if (!options.ignoreDots) data = cutAtDotLine(data);
  const { fields, body } = splitMessage(data.toString('latin1'));

  const recipients: string[] = [];
  const seen = new Set<string>();
  const add = (a: string) => {
    const key = a.toLowerCase();
    if (!seen.has(key)) {
      seen.add(key);
      recipients.push(a);
    }
  };
  for (const arg of options.recipients) for (const a of parseAddressList(arg)) add(a);
  if (options.extract) {
    for (const f of fields) if (f.name === 'to' || f.name === 'cc' || f.name === 'bcc') for (const a of parseAddressList(fieldValue(f))) add(a);
  }

  const kept = options.extract ? fields.filter((f) => f.name !== 'bcc') : fields;
  const has = (name: string) => kept.some((f) => f.name === name);
  const added: string[] = [];
  if (!has('from')) {
    const name = options.fullName ? `${quotePhrase(options.fullName)} ` : '';
    added.push(latin1Field('From', name ? `${name}<${qualify(input.user, localHost)}>` : qualify(input.user, localHost)));
  }
  if (!has('date')) added.push(`Date: ${input.formatDate(input.now)}\r\n`);
  if (!has('message-id')) added.push(`Message-ID: <${input.uniqueId}@${localHost}>\r\n`);
  // A message without any recipient header gets none added: RFC 5322 allows it, and an
  // "undisclosed-recipients" line would be invented text.

  const received = `Received: by ${localHost} (tsubame submit, from userid ${input.uid});\r\n\t${input.formatDate(input.now)}\r\n`;
  const text = received + kept.map((f) => f.raw).join('') + added.join('') + '\r\n' + body;
  return {
    from: options.from === null ? qualify(input.user, localHost) : options.from === '' ? '' : qualify(options.from, localHost),
    recipients,
    message: Buffer.from(text, 'latin1'),
  };
}

/** A header field from a (possibly non-ASCII) JS string, as UTF-8 bytes in latin1 form. */
function latin1Field(name: string, value: string): string {
  return `${name}: ${Buffer.from(value, 'utf8').toString('latin1')}\r\n`;
}

function quotePhrase(name: string): string {
  // atoms separated by spaces need no quotes; anything else (a dot, a comma, non-ASCII…) is quoted
  return /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+( [A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*$/.test(name) ? name : `"${name.replace(/(["\\])/g, '\\$1')}"`;
}
