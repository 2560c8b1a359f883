// SASL PLAIN (RFC 4616) and LOGIN as SMTP AUTH (RFC 4954) carries them: the base64 of the
// client's lines read strictly (smtp-server's own reading takes any garbage, Node's base64
// decoder skips what it does not know), a PLAIN message split into its three fields, and the
// replies of the exchange. Pure: the connection (connection.ts) drives the exchange, the AUTH
// stage (auth-stage.ts) checks what it reads.
import type { SmtpReply } from './replies.js';

export const SASL_MECHANISMS = ['PLAIN', 'LOGIN'] as const;
export type SaslMechanism = (typeof SASL_MECHANISMS)[number];

/** What the client gave: the login (authentication identity), the authorization identity it asked for ('' = itself), the password. */
export interface SaslCredentials {
  mechanism: SaslMechanism;
  login: string;
  authzid: string;
  password: string;
}

/** A field longer than this is not a login or a password anyone has (and bounds the work per attempt). */
const MAX_SASL_FIELD_BYTES = 1024;

export const SASL_REPLIES = {
  /** Before STARTTLS on a service that has it (Postfix's words). */
  needsTls: { code: 530, enhanced: '5.7.0', text: 'Must issue a STARTTLS command first' },
  notOffered: { code: 503, enhanced: '5.5.1', text: 'Error: authentication not enabled' },
  already: { code: 503, enhanced: '5.5.1', text: 'Error: already authenticated' },
  inTransaction: { code: 503, enhanced: '5.5.1', text: 'Error: MAIL transaction in progress' },
  unknownMechanism: { code: 504, enhanced: '5.5.4', text: 'Unrecognized authentication type' },
  syntax: { code: 501, enhanced: '5.5.4', text: 'Syntax: AUTH mechanism [initial-response]' },
  badBase64: { code: 501, enhanced: '5.5.2', text: 'Cannot decode response' },
  badPlain: { code: 501, enhanced: '5.5.2', text: 'Invalid PLAIN response (authzid NUL authcid NUL password)' },
  badField: { code: 501, enhanced: '5.5.2', text: 'Invalid characters or length in the credentials' },
  aborted: { code: 501, enhanced: '5.0.0', text: 'Authentication aborted' },
  /** Unknown user, wrong password, locked user, a foreign authorization identity: one reply for all. */
  failed: { code: 535, enhanced: '5.7.8', text: 'Error: authentication failed' },
  temporary: { code: 454, enhanced: '4.7.0', text: 'Temporary authentication failure, try again later' },
  success: { code: 235, enhanced: '2.7.0', text: 'Authentication successful' },
} satisfies Record<string, SmtpReply>;

/** The challenges of LOGIN: "Username:" and "Password:" in base64, as every server sends them. */
export const LOGIN_USERNAME_CHALLENGE = 'VXNlcm5hbWU6';
export const LOGIN_PASSWORD_CHALLENGE = 'UGFzc3dvcmQ6';

/**
 * The octets of a base64 line (RFC 4648 alphabet, padding required as RFC 4954 asks), or null
 * when it is not base64. `=` alone is the empty response (RFC 4954 §4).
 */
function decodeBase64Strict(text: string): Buffer | null {
  if (text === '=') return Buffer.alloc(0);
  if (text.length === 0 || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
  const bytes = Buffer.from(text, 'base64');
  // Node accepts non-canonical last characters (unused bits set): such input is not what a client encodes.
  return bytes.toString('base64') === text ? bytes : null;
}

export type FieldReading = { ok: true; value: string } | { ok: false; reply: SmtpReply };

/** One field as UTF-8 text: valid UTF-8, no control character but tab, within MAX_SASL_FIELD_BYTES. */
export function readField(bytes: Buffer): FieldReading {
  if (bytes.length > MAX_SASL_FIELD_BYTES) return { ok: false, reply: SASL_REPLIES.badField };
  const value = bytes.toString('utf8');
  if (!Buffer.from(value, 'utf8').equals(bytes) || /[\x00-\x08\x0a-\x1f\x7f]/.test(value)) return { ok: false, reply: SASL_REPLIES.badField };
  return { ok: true, value };
}

export type PlainReading = { ok: true; credentials: SaslCredentials } | { ok: false; reply: SmtpReply };

/** A PLAIN message: `authzid NUL authcid NUL password`, exactly two NULs; the login must not be empty. */
export function readPlain(message: Buffer): PlainReading {
  const first = message.indexOf(0);
  const second = first < 0 ? -1 : message.indexOf(0, first + 1);
  if (first < 0 || second < 0 || message.indexOf(0, second + 1) >= 0) return { ok: false, reply: SASL_REPLIES.badPlain };
  const fields = [message.subarray(0, first), message.subarray(first + 1, second), message.subarray(second + 1)].map(readField);
  for (const f of fields) if (!f.ok) return f;
  const [authzid, login, password] = fields.map((f) => (f as { value: string }).value) as [string, string, string];
  if (login === '') return { ok: false, reply: SASL_REPLIES.badPlain };
  return { ok: true, credentials: { mechanism: 'PLAIN', login, authzid, password } };
}

/** The client's answer to a challenge: `*` aborts (RFC 4954 §4), else base64. */
export type ResponseReading = { kind: 'abort' } | { kind: 'bytes'; bytes: Buffer } | { kind: 'bad'; reply: SmtpReply };

export function readResponse(line: string): ResponseReading {
  const text = line.trim();
  if (text === '*') return { kind: 'abort' };
  const bytes = decodeBase64Strict(text);
  return bytes ? { kind: 'bytes', bytes } : { kind: 'bad', reply: SASL_REPLIES.badBase64 };
}

/** `AUTH mech [initial-response]`: the mechanism (upper case) and the initial response, or the reply refusing the line. */
export type AuthCommandReading = { ok: true; mechanism: SaslMechanism; initial: string | null } | { ok: false; reply: SmtpReply };

export function readAuthCommand(line: string): AuthCommandReading {
  const words = line.trim().split(/\s+/).slice(1);
  if (words.length < 1 || words.length > 2) return { ok: false, reply: SASL_REPLIES.syntax };
  const mechanism = words[0]!.toUpperCase();
  if (!(SASL_MECHANISMS as readonly string[]).includes(mechanism)) return { ok: false, reply: SASL_REPLIES.unknownMechanism };
  return { ok: true, mechanism: mechanism as SaslMechanism, initial: words[1] ?? null };
}
