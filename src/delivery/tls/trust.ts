// The certificate authorities outbound TLS trusts: Node's built-in list (Mozilla's), the
// system's CA bundle (OpenSSL's SSL_CERT_FILE, else the distribution's file, such as Debian's
// /etc/ssl/certs/ca-certificates.crt, which holds the CAs an administrator added with
// update-ca-certificates), plus the PEM certificates of option.dat TLS_CA_FILE when it is set (a
// private CA). Used by the SMTP client's handshake (musttls, MTA-STS) and by the MTA-STS policy
// fetch.
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import { readCaFile } from '../../config/ca-file.js';

export interface TrustStore {
  /** PEM certificates for tls.connect's `ca`; undefined = Node's default (no system bundle, no TLS_CA_FILE). */
  ca: string[] | undefined;
  /**
   * The same CAs made once into a TLS context for tls.connect's `secureContext` (building one
   * from Node's ~140 CAs costs some 25 ms of CPU: not once per connection); undefined = default.
   */
  secureContext?: SecureContext;
  /** The file the extra certificates came from, or null. */
  caFile: string | null;
}

/** The distributions' CA bundles (Debian and Ubuntu, Fedora and RHEL, SUSE, Alpine), the first found is used. */
const SYSTEM_CA_FILES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/ca-bundle.pem', '/etc/ssl/cert.pem'];

/** The system's CA bundle: OpenSSL's SSL_CERT_FILE when set, else the first of SYSTEM_CA_FILES there is; null when none. */
export function systemCaFile(env: NodeJS.ProcessEnv = process.env): string | null {
  if (env.SSL_CERT_FILE) return env.SSL_CERT_FILE;
  return SYSTEM_CA_FILES.find((f) => existsSync(f)) ?? null;
}

/**
 * The certificates of the system bundle that parse. It is the system's, not the operator's
 * configuration: one that cannot be read adds nothing (Node's list still applies), never an error.
 */
function systemCertificates(file: string | null): string[] {
  if (!file) return [];
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return (text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).filter((pem) => {
    try {
      new X509Certificate(pem);
      return true;
    } catch {
      return false;
    }
  });
}

/** Without TLS_CA_FILE the store depends only on the system bundle: made once per process and bundle. */
const withoutCaFile = new Map<string, TrustStore>();

/**
 * Node's CAs, the system bundle's (`systemFile`; null: none) and those of `caFile` (absolute).
 * Throws `TLS_CA_FILE …: reason` when that file is unusable.
 */
export function loadTrustStore(caFile: string | null, systemFile: string | null = systemCaFile()): TrustStore {
  if (!caFile) {
    const known = withoutCaFile.get(systemFile ?? '');
    if (known) return known;
  }
  const system = systemCertificates(systemFile);
  if (!caFile && system.length === 0) return { ca: undefined, caFile: null };
  const ca = [...rootCertificates, ...system, ...(caFile ? readCaFile(caFile) : [])];
  const store = { ca, caFile, secureContext: createSecureContext({ ca }) };
  if (!caFile) withoutCaFile.set(systemFile ?? '', store);
  return store;
}
