// The Sendmail macros a milter client sends before each event (SMFIC_MACRO), as a pure function
// of what the SMTP session knows. The lists per stage default to Postfix's milter_*_macros; a
// filter may replace them in its negotiation answer (SMFIR_SETSYMLIST). Values come from
// Postfix's smtpd_milter_eval(), with Messaging Server's channel as Sendmail's "mailer".
import type { MacroStage } from './protocol.js';

/** Postfix's defaults (milter_connect_macros, milter_helo_macros, …), plus the client's address, port and names. */
export const DEFAULT_MACRO_LISTS: Readonly<Record<MacroStage, readonly string[]>> = {
  connect: ['j', '{daemon_name}', '{daemon_addr}', 'v', '_', '{client_addr}', '{client_port}', '{client_name}', '{client_ptr}'],
  helo: ['{tls_version}', '{cipher}', '{cipher_bits}', '{cert_subject}', '{cert_issuer}'],
  mail: ['i', '{auth_type}', '{auth_authen}', '{auth_author}', '{mail_addr}', '{mail_host}', '{mail_mailer}'],
  rcpt: ['i', '{rcpt_addr}', '{rcpt_host}', '{rcpt_mailer}'],
  data: ['i'],
  eoh: ['i'],
  eom: ['i'],
};

/** What the session knows, gathered as it goes; absent facts are not sent. */
export interface MacroFacts {
  /** `j`: this MTA's host name. */
  hostname: string;
  /** `{daemon_name}`: the service (Postfix's milter_macro_daemon_name). */
  daemonName?: string;
  /** `{daemon_addr}`, `{daemon_port}`: where the client connected to. */
  daemonAddress?: string;
  daemonPort?: number;
  /** `v`: the MTA's name and version. */
  version?: string;
  /** `{client_addr}`, `{client_port}`; null for a local (non-TCP) submission. */
  clientAddress?: string | null;
  clientPort?: number | null;
  /** `{client_name}`: the verified host name; null or absent when unknown. */
  clientName?: string | null;
  /** `{client_ptr}`: the reverse-DNS name (verified or not). */
  clientPtr?: string | null;
  /** `{tls_version}`, `{cipher}`, `{cipher_bits}`, `{cert_subject}`, `{cert_issuer}`. */
  tls?: { version: string; cipher: string; bits?: number; certSubject?: string; certIssuer?: string } | null;
  /** `i`: the queue id of the message. */
  queueId?: string;
  /** `{auth_type}`, `{auth_authen}`, `{auth_author}`: SASL mechanism, user, AUTH= sender. */
  auth?: { type: string; authen: string; author?: string } | null;
  /** `{mail_addr}` (without angle brackets; '' for the null sender), `{mail_host}`, `{mail_mailer}`. */
  mailAddr?: string;
  mailHost?: string;
  mailMailer?: string;
  /** `{rcpt_addr}`, `{rcpt_host}`, `{rcpt_mailer}` of the recipient being reported. */
  rcptAddr?: string;
  rcptHost?: string;
  rcptMailer?: string;
}

/** The value of one macro, or undefined when the session does not know it. */
export function macroValue(name: string, f: MacroFacts): string | undefined {
  switch (name) {
    case 'j':
    case '{j}':
      return f.hostname;
    case '{daemon_name}':
      return f.daemonName;
    case '{daemon_addr}':
      return f.daemonAddress;
    case '{daemon_port}':
      return f.daemonPort === undefined ? undefined : String(f.daemonPort);
    case 'v':
    case '{v}':
      return f.version;
    case '_':
      // Sendmail's "validated client name and address" (Postfix: "name [addr]").
      return f.clientAddress ? `${f.clientPtr ?? f.clientName ?? 'unknown'} [${f.clientAddress}]` : undefined;
    case '{client_addr}':
      return f.clientAddress ?? undefined;
    case '{client_port}':
      return f.clientAddress ? String(f.clientPort ?? 0) : undefined;
    case '{client_name}':
      return f.clientAddress ? (f.clientName ?? 'unknown') : undefined;
    case '{client_ptr}':
      return f.clientAddress ? (f.clientPtr ?? f.clientName ?? 'unknown') : undefined;
    case '{client_resolve}':
      return f.clientAddress ? (f.clientName ? 'OK' : 'FAIL') : undefined;
    case '{tls_version}':
      return f.tls?.version;
    case '{cipher}':
      return f.tls?.cipher;
    case '{cipher_bits}':
      return f.tls?.bits === undefined ? undefined : String(f.tls.bits);
    case '{cert_subject}':
      return f.tls?.certSubject;
    case '{cert_issuer}':
      return f.tls?.certIssuer;
    case 'i':
    case '{i}':
      return f.queueId;
    case '{auth_type}':
      return f.auth?.type;
    case '{auth_authen}':
      return f.auth?.authen;
    case '{auth_author}':
      return f.auth?.author;
    case '{mail_addr}':
      return f.mailAddr;
    case '{mail_host}':
      return f.mailHost;
    case '{mail_mailer}':
      return f.mailMailer;
    case '{rcpt_addr}':
      return f.rcptAddr;
    case '{rcpt_host}':
      return f.rcptHost;
    case '{rcpt_mailer}':
      return f.rcptMailer;
    default:
      return undefined;
  }
}

/** The (name, value) pairs to send for `names`, leaving out the unknown ones. */
export function evaluateMacros(names: readonly string[], facts: MacroFacts): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const name of names) {
    const v = macroValue(name, facts);
    if (v !== undefined) out.push([name, v]);
  }
  return out;
}
