// `imsimta srs keygen`: a new SRS secret at the top of etc/srs.secrets, where it signs from now
// on; the secrets below it still verify the addresses they signed (rotation). 32 random octets in
// base64 (44 characters). The file is written through secret-file.ts (locked, fsynced, mode and
// owner kept; a new file is 0600, or 0640 in the service user's group when made by root). The
// secret itself is never printed.
import { randomBytes } from 'node:crypto';
import { rewriteSecretFile } from '../config/secret-file.js';

const NEW_FILE_HEADER = [
  '# SRS secrets (imsimta srs keygen): one a line. The first signs the senders of forwarded mail;',
  '# every line verifies the bounces that come back. After a rotation, keep the old secret',
  '# SRS_MAXAGE days (21 by default), then delete its line. Readable by root and the service user only.',
];

export interface SrsKeygenResult {
  /** Secrets in the file now, the new one included. */
  secrets: number;
  created: boolean;
  /** The line the new secret is on. */
  line: number;
}

/** The file's text with `secret` before its first secret line (comments and blank lines above it stay on top). */
export function withNewSecret(text: string, secret: string): { text: string; line: number; secrets: number } {
  const lines = text === '' ? [...NEW_FILE_HEADER] : text.replace(/\r?\n$/, '').split(/\r?\n/);
  const isSecret = (l: string) => l.trim() !== '' && !/^\s*[#!]/.test(l);
  let at = lines.findIndex(isSecret);
  if (at < 0) at = lines.length;
  lines.splice(at, 0, secret);
  return { text: `${lines.join('\n')}\n`, line: at + 1, secrets: lines.filter(isSecret).length };
}

function newSecret(): string {
  return randomBytes(32).toString('base64');
}

export function addSrsSecret(file: string, serviceGid: number | null): Promise<SrsKeygenResult> {
  return rewriteSecretFile(
    file,
    (text, exists) => {
      const r = withNewSecret(text, newSecret());
      return { text: r.text, result: { secrets: r.secrets, created: !exists, line: r.line } };
    },
    serviceGid,
    'imsimta srs keygen',
  );
}
