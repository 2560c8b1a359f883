// What an outbound TLS handshake saw, as plain data for the TLS policy decision (decision.ts):
// protocol, cipher, the certificate chain the server presented, and whether that chain verified
// against the trust store (Node's built-in CA list plus option.dat TLS_CA_FILE, trust.ts). The
// host name is checked later, per MX host name (sessions are shared by address), by
// certificateNames / verificationProblem.
import { X509Certificate } from 'node:crypto';
import { TLSSocket, type DetailedPeerCertificate } from 'node:tls';
import { hostMatches } from './dane.js';

export interface TlsFacts {
  /** `TLSv1.3`. */
  protocol: string;
  /** `TLS_AES_256_GCM_SHA384`. */
  cipher: string;
  /** The server's certificate chain, leaf first, DER (empty: no certificate). */
  chain: Buffer[];
  /** The chain leads to a trusted CA (any name). */
  chainTrusted: boolean;
  /** OpenSSL's reason when it does not (`SELF_SIGNED_CERT_IN_CHAIN`, `CERT_HAS_EXPIRED`…), else null. */
  chainError: string | null;
}

/** The facts of an established TLS socket (after the handshake); null for anything else. */
export function tlsFactsOf(socket: unknown): TlsFacts | null {
  if (!(socket instanceof TLSSocket)) return null;
  const error = socket.authorized ? null : String(socket.authorizationError ?? 'UNKNOWN');
  return {
    protocol: socket.getProtocol() ?? 'TLS',
    cipher: socket.getCipher()?.name ?? 'unknown',
    chain: peerChain(socket),
    // The handshake checks the name it was given too; a name mismatch still means a trusted chain.
    chainTrusted: error === null || error === 'ERR_TLS_CERT_ALTNAME_INVALID',
    chainError: error === 'ERR_TLS_CERT_ALTNAME_INVALID' ? null : error,
  };
}

/** The chain as Node hands it (issuer links, ending at a self-signed certificate), DER, leaf first. */
function peerChain(socket: TLSSocket): Buffer[] {
  const out: Buffer[] = [];
  let cert = socket.getPeerCertificate(true) as DetailedPeerCertificate | Record<string, never>;
  const seen = new Set<string>();
  while (cert && 'raw' in cert && cert.raw && out.length < 16) {
    const key = cert.fingerprint256;
    if (seen.has(key)) break;
    seen.add(key);
    out.push(Buffer.from(cert.raw));
    cert = cert.issuerCertificate;
  }
  return out;
}

/** The leaf certificate is valid for `host` (RFC 6125 rules; no partial wildcards). */
export function leafMatches(facts: TlsFacts, host: string): boolean {
  const der = facts.chain[0];
  if (!der) return false;
  try {
    return hostMatches(new X509Certificate(der), host);
  } catch {
    return false;
  }
}

/** Why the certificate is not verified for `host`, in words for a status line (null: it is). */
export function verificationProblem(facts: TlsFacts, host: string): string | null {
  if (facts.chain.length === 0) return 'the server sent no certificate';
  if (!facts.chainTrusted) return `the certificate is not trusted (${facts.chainError ?? 'unknown issuer'})`;
  if (!leafMatches(facts, host)) return `the certificate is not for ${host}`;
  return null;
}
