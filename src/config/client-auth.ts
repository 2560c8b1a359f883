// etc/client_auth: what an outbound channel with maysaslclient or mustsaslclient authenticates
// with (SMTP AUTH PLAIN or LOGIN) to the server it sends to, a smart host usually. Messaging
// Server keeps these as the AUTH_USERNAME and AUTH_PASSWORD options of the channel's option
// file; tsubame keeps them apart in a file readable by the service only, one channel a line:
//
//   ! channel    username          password (the rest of the line)
//   tcp_relay    mta@example.com   correct horse battery staple
//
// Fields are separated by white space; the password is the rest of the line, without leading
// or trailing white space. `!` and `#` start comment lines. A diagnostic names the channel and
// the line, never a password.
import { readSecretFile } from './secret-read.js';
import type { ClientAuthConfig, ClientCredentials, Diagnostic } from './types.js';

/** A channel's credentials as SASL PLAIN carries them: no NUL, no line break, within bounds. */
const MAX_FIELD_BYTES = 1024;

export function parseClientAuth(file: string | null, diagnostics: Diagnostic[]): ClientAuthConfig {
  const config: ClientAuthConfig = { file, byChannel: new Map() };
  if (file === null) return config;
  const read = readSecretFile(file, diagnostics, { readable: 'it holds passwords' }, true);
  if (read.kind === 'missing') return { file: null, byChannel: new Map() };
  if (read.kind === 'unreadable') return config;
  const { text } = read;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('!') || trimmed.startsWith('#')) return;
    const error = (message: string) => diagnostics.push({ file, line, severity: 'error', message });
    const m = /^(\S+)\s+(\S+)\s+(.+)$/.exec(trimmed);
    if (!m) {
      // Not quoted: a line without its fields may be a bare password.
      error('expected: channel username password');
      return;
    }
    const channel = m[1]!.toLowerCase();
    const credentials: ClientCredentials = { username: m[2]!, password: m[3]!, file, line };
    if (!/^[a-z0-9][a-z0-9_.-]{0,63}$/.test(channel)) {
      error('the first field must be a channel name of imta.cnf');
      return;
    }
    const problem = fieldProblem(credentials.username) ?? fieldProblem(credentials.password);
    if (problem) {
      error(`channel ${channel}: ${problem}`);
      return;
    }
    const earlier = config.byChannel.get(channel);
    if (earlier) {
      error(`channel ${channel} is given credentials again (first at line ${earlier.line})`);
      return;
    }
    config.byChannel.set(channel, credentials);
  });
  return config;
}

function fieldProblem(value: string): string | null {
  if (Buffer.byteLength(value) > MAX_FIELD_BYTES) return `a field is longer than ${MAX_FIELD_BYTES} bytes`;
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) return 'a field holds a control character (SASL PLAIN cannot carry it)';
  return null;
}
