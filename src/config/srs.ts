// The Sender Rewriting Scheme's configuration: SRS_DOMAIN and SRS_MAXAGE in option.dat
// (Messaging Server's option names), and the secrets in etc/srs.secrets rather than in option.dat
// (Messaging Server's SRS_SECRETS there is refused: option.dat is no place for a secret):
//
//   # etc/srs.secrets: one secret a line; the first signs, every one verifies.
//   k3V0Yb0t6a3mC9yq2H1cJ8Q0x5n7R4sW1d2F6g8h0jE=
//   (the previous secret, kept SRS_MAXAGE days after a rotation)
//
// `#` and `!` start comment lines. A secret is used as the bytes of its line (trimmed), as
// postsrsd uses its secrets file, so a postsrsd file can be reused. The file must not be
// readable by every user of the host nor writable by others (whoever knows a secret can make
// SRS addresses this MTA relays); a weak or repeated secret is a warning.
import { createSecretKey, type KeyObject } from 'node:crypto';
import { readSecretFile, type SecretFileRisk } from './secret-read.js';
import type { OptionEntry, OptionReader } from './option-file.js';
import type { Diagnostic, SrsOptions, SrsSecretsConfig } from './types.js';

const SRS_DEFAULTS = { SRS_MAXAGE: 21 } as const;
/** A secret shorter than this is guessable enough to forge hashes with (imsimta srs keygen makes 44). */
const MIN_SECRET_LENGTH = 16;
export const SRS_OPTION_KEYS = ['SRS_DOMAIN', 'SRS_MAXAGE', 'SRS_SECRETS'];

/** SRS_DOMAIN (default: LOCAL_HOST) and SRS_MAXAGE (days, 1–1000: the timestamp wraps after 1024 days). */
export function parseSrsOptions(o: Map<string, OptionEntry>, reader: OptionReader, localHost: string): SrsOptions {
  const secrets = o.get('SRS_SECRETS');
  if (secrets) reader.error(secrets, 'SRS_SECRETS does not belong in option.dat, which is not secret: put one secret a line in etc/srs.secrets (mode 0600; imsimta srs keygen makes one)');
  const domainEntry = o.get('SRS_DOMAIN');
  let domain = localHost;
  if (domainEntry) {
    const d = domainEntry.value.trim().toLowerCase().replace(/\.$/, '');
    if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/.test(d) || d.length > 253) {
      reader.error(domainEntry, `SRS_DOMAIN must be a domain name whose mail reaches this MTA (such as srs.example.com), found "${domainEntry.value}"`);
    } else domain = d;
  }
  return { domain, maxAgeDays: reader.integer(o.get('SRS_MAXAGE'), SRS_DEFAULTS.SRS_MAXAGE, 1, 1000) };
}

/** Whoever reads or adds a secret can make SRS addresses this MTA relays. */
const SRS_SECRETS_RISK: SecretFileRisk = {
  readable: 'whoever reads a secret can make SRS addresses this MTA relays',
  writable: 'whoever can add a secret can make SRS addresses this MTA relays',
};

/** Reads etc/srs.secrets (`file` null or missing: no secrets), adding every problem to `diagnostics`. */
export function parseSrsSecrets(file: string | null, diagnostics: Diagnostic[]): SrsSecretsConfig {
  const config: SrsSecretsConfig = { file, secrets: [] };
  if (file === null) return config;
  const read = readSecretFile(file, diagnostics, SRS_SECRETS_RISK, true);
  if (read.kind === 'missing') return { file: null, secrets: [] };
  if (read.kind === 'unreadable') return config;
  const { text } = read;
  const seen = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const secret = raw.trim();
    if (!secret || secret.startsWith('#') || secret.startsWith('!')) return;
    // Never quote a secret in a diagnostic: say where it is.
    const earlier = seen.get(secret);
    if (earlier !== undefined) {
      diagnostics.push({ file, line, severity: 'warning', message: `the same secret as line ${earlier} (ignored)` });
      return;
    }
    seen.set(secret, line);
    if (secret.length < MIN_SECRET_LENGTH) {
      diagnostics.push({ file, line, severity: 'warning', message: `a short secret (${secret.length} characters, fewer than ${MIN_SECRET_LENGTH}): guessable; imsimta srs keygen makes a strong one` });
    }
    config.secrets.push(secretKey(secret));
  });
  return config;
}

export function secretKey(secret: string): KeyObject {
  return createSecretKey(Buffer.from(secret, 'utf8'));
}
