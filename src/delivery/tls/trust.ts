// The certificate authorities outbound TLS trusts: Node's built-in list (Mozilla's, as Debian's
// ca-certificates), plus the PEM certificates of option.dat TLS_CA_FILE when it is set (a
// private CA, or /etc/ssl/certs/ca-certificates.crt for the system's own list). Used by the SMTP
// client's handshake (musttls, MTA-STS) and by the MTA-STS policy fetch.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';

export interface TrustStore {
  /** PEM certificates for tls.connect's `ca`; undefined = Node's default (no TLS_CA_FILE). */
  ca: string[] | undefined;
  /**
   * The same CAs made once into a TLS context for tls.connect's `secureContext` (building one
   * from Node's ~140 CAs costs some 25 ms of CPU: not once per connection); undefined = default.
   */
  secureContext?: SecureContext;
  /** The file the extra certificates came from, or null. */
  caFile: string | null;
}

/** The PEM certificate blocks of a text; each must parse. Throws with the reason. */
export function pemCertificates(text: string): string[] {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  blocks.forEach((b, i) => {
    try {
      new X509Certificate(b);
    } catch (err) {
      throw new Error(`certificate ${i + 1} cannot be read (${(err as Error).message})`);
    }
  });
  return blocks;
}

/** Node's CAs plus those of `caFile` (absolute). Throws `TLS_CA_FILE …: reason` when the file is unusable. */
export function loadTrustStore(caFile: string | null): TrustStore {
  if (!caFile) return { ca: undefined, caFile: null };
  let text: string;
  try {
    text = readFileSync(caFile, 'utf8');
  } catch (err) {
    throw new Error(`TLS_CA_FILE ${caFile}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let extra: string[];
  try {
    extra = pemCertificates(text);
  } catch (err) {
    throw new Error(`TLS_CA_FILE ${caFile}: ${(err as Error).message}`);
  }
  if (extra.length === 0) throw new Error(`TLS_CA_FILE ${caFile}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it`);
  const ca = [...rootCertificates, ...extra];
  return { ca, caFile, secureContext: createSecureContext({ ca }) };
}
