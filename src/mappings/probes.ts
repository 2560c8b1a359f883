// The probe strings Messaging Server gives its access mapping tables, built from typed facts:
//   PORT_ACCESS              TCP|server-ip|server-port|client-ip|client-port
//   ORIG_SEND_ACCESS, SEND_ACCESS   src-channel|from|dst-channel|to
//   ORIG_MAIL_ACCESS, MAIL_ACCESS   <PORT_ACCESS fields>|app-info|submit-type|src-channel|from|dst-channel|to
//   FROM_ACCESS              <PORT_ACCESS fields>|app-info|submit-type|src-channel|from|auth-from
// app-info is SMTP/helo-name (SMTP/tls-info/helo-name over TLS; LMTP for LMTP), submit-type MAIL.
// And the flags `$:x` tests: A SASL used, T TLS used, E EHLO used, L LMTP, S/D/F NOTIFY asked.

export interface ConnectionFacts {
  serverIp: string;
  serverPort: number;
  clientIp: string;
  clientPort: number;
}

export interface SessionFacts {
  /** null for mail that did not arrive over a connection (its five fields are then empty). */
  connection: ConnectionFacts | null;
  /** The name the client gave in HELO/EHLO/LHLO; null before it did. */
  helo: string | null;
  tls: { protocol: string; cipher: string } | null;
  lmtp?: boolean;
}

export interface RecipientFacts {
  sourceChannel: string;
  /** Envelope From as given (empty for the null reverse-path `<>`). */
  from: string;
  destinationChannel: string;
  to: string;
}

export interface SenderFacts {
  sourceChannel: string;
  from: string;
  /** The authenticated sender (AUTH), empty when the session did not authenticate. */
  authenticatedFrom: string;
}

/** IPv4-mapped IPv6 (`::ffff:192.0.2.1`, as dual-stack sockets report) written as plain IPv4. */
function probeAddress(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return mapped ? mapped[1]! : ip;
}

export function portAccessProbe(c: ConnectionFacts): string {
  return `TCP|${probeAddress(c.serverIp)}|${c.serverPort}|${probeAddress(c.clientIp)}|${c.clientPort}`;
}

export function sendAccessProbe(r: RecipientFacts): string {
  return `${r.sourceChannel}|${r.from}|${r.destinationChannel}|${r.to}`;
}

export function mailAccessProbe(s: SessionFacts, r: RecipientFacts): string {
  return `${sessionPrefix(s)}|${sendAccessProbe(r)}`;
}

export function fromAccessProbe(s: SessionFacts, f: SenderFacts): string {
  return `${sessionPrefix(s)}|${f.sourceChannel}|${f.from}|${f.authenticatedFrom}`;
}

/** PORT_ACCESS fields, app-info and submit-type: what MAIL_ACCESS and FROM_ACCESS put first. */
function sessionPrefix(s: SessionFacts): string {
  const port = s.connection ? portAccessProbe(s.connection) : '||||';
  return `${port}|${appInfo(s)}|MAIL`;
}

function appInfo(s: SessionFacts): string {
  if (!s.connection) return '';
  const protocol = s.lmtp ? 'LMTP' : 'SMTP';
  const tls = s.tls ? `/${s.tls.protocol}:${s.tls.cipher}` : '';
  return `${protocol}${tls}/${s.helo ?? ''}`;
}

export interface SessionFlagFacts {
  sasl?: boolean;
  tls?: boolean;
  ehlo?: boolean;
  lmtp?: boolean;
  /** The recipient's NOTIFY parameter (RCPT only). */
  notify?: { success?: boolean; delay?: boolean; failure?: boolean };
}

/** The flags `$:x` / `$;x` test in the access tables. */
export function sessionFlags(f: SessionFlagFacts): Set<string> {
  const flags = new Set<string>();
  if (f.sasl) flags.add('A');
  if (f.tls) flags.add('T');
  if (f.ehlo) flags.add('E');
  if (f.lmtp) flags.add('L');
  if (f.notify?.success) flags.add('S');
  if (f.notify?.delay) flags.add('D');
  if (f.notify?.failure) flags.add('F');
  return flags;
}
