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
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import type { ClientAuthConfig, ClientCredentials, Diagnostic } from './types.js';

/** A channel's credentials as SASL PLAIN carries them: no NUL, no line break, within bounds. */
const MAX_FIELD_BYTES = 1024;

export function parseClientAuth(file: string | null, diagnostics: Diagnostic[]): ClientAuthConfig {
  const config: ClientAuthConfig = { file, byChannel: new Map() };
  if (file === null) return config;
  let text: string;
  let mode: number;
  try {
    const fd = openSync(file, 'r');
    try {
      mode = fstatSync(fd).mode;
      text = readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { file: null, byChannel: new Map() };
    diagnostics.push({ file, line: 0, severity: 'error', message: `cannot read file: ${code ?? (e as Error).message}` });
    return config;
  }
  const permission = permissionProblem(mode);
  if (permission) diagnostics.push({ file, line: 0, severity: 'warning', message: permission });
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

/** Others may read the file (the smart host's password), or others or the group may write it. */
function permissionProblem(mode: number): string | null {
  const octal = (mode & 0o777).toString(8).padStart(4, '0');
  if (mode & 0o022) return `writable by ${mode & 0o002 ? 'every user of the host' : 'its group'} (mode ${octal}): chmod 600 (or 640 with the service's group)`;
  if (mode & 0o004) return `readable by every user of the host (mode ${octal}): it holds passwords; chmod 600 (or 640 with the service's group)`;
  return null;
}
