// The certificate authorities outbound TLS trusts: Node's built-in list (Mozilla's, as Debian's
// ca-certificates), plus the PEM certificates of option.dat TLS_CA_FILE when it is set (a
// private CA, or /etc/ssl/certs/ca-certificates.crt for the system's own list). Used by the SMTP
// client's handshake (musttls, MTA-STS) and by the MTA-STS policy fetch.
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import { readCaFile } from '../../config/ca-file.js';

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

/** Node's CAs plus those of `caFile` (absolute). Throws `TLS_CA_FILE …: reason` when the file is unusable. */
export function loadTrustStore(caFile: string | null): TrustStore {
  if (!caFile) return { ca: undefined, caFile: null };
  const ca = [...rootCertificates, ...readCaFile(caFile)];
  return { ca, caFile, secureContext: createSecureContext({ ca }) };
}
