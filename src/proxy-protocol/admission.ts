// Who must send a PROXY header on a service, and which client address a session then has: pure
// decisions over plain data (the service's PROXY_* options from dispatcher.cnf, the socket's peer,
// the header read). A service with PROXY_PROTOCOL takes connections from its listed balancers
// (PROXY_TRUSTED) only, each opening with a header, as the specification asks ("the receiver MUST
// be configured to only receive the protocol ... and MUST not try to guess whether the protocol
// header is present"); anything else — a peer that is not a listed balancer (whether or not it
// would send a header), a balancer's connection without a valid header in time, a header that
// names no IP client — is refused: closed without a greeting and logged, as Postfix's smtpd does
// with smtpd_upstream_proxy_protocol (it "never talks to the remote SMTP client" then).
import { ipInCidrs } from '../common/cidr.js';
import type { ProxyProtocolConfig } from '../config/types.js';
import type { ProxyEndpoint, ProxyHeader } from './parse.js';

export type ProxyAdmission =
  /** The service does not speak the PROXY protocol: the session starts at once with the socket's peer. */
  | { action: 'direct' }
  /** A listed balancer: read the header (readProxyHeader with these options) before anything else. */
  | { action: 'read-header'; timeoutMs: number; maxBytes: number; versions: ProxyProtocolConfig['versions'] }
  /** Close without a greeting; `reason` is for the log. */
  | { action: 'refuse'; reason: string };

/** What a service decides for a new connection from `peerAddress` (as the socket reports it). */
export function admitConnection(proxy: ProxyProtocolConfig | null | undefined, peerAddress: string): ProxyAdmission {
  if (!proxy) return { action: 'direct' };
  if (!ipInCidrs(peerAddress, proxy.trusted)) return { action: 'refuse', reason: `${peerAddress} is not a listed balancer (PROXY_TRUSTED) of a service that takes the PROXY protocol only` };
  return { action: 'read-header', timeoutMs: proxy.timeoutMs, maxBytes: proxy.maxBytes, versions: proxy.versions };
}

export interface SessionEndpoints {
  /** The client the session is with: its address for INTERNAL_IP, access tables, blocklists, limits, Received and mail.log. */
  client: ProxyEndpoint;
  /** The address the client connected to (the balancer's frontend), when the header says. */
  server: ProxyEndpoint | null;
  /** False for the balancer's own connections (LOCAL, UNKNOWN/UNSPEC: health checks): the client is the balancer. */
  proxied: boolean;
}

export type ProxyResolution = ({ action: 'accept' } & SessionEndpoints) | { action: 'refuse'; reason: string };

/**
 * The session's endpoints from a balancer's header. `peer` is the socket's remote end (the
 * balancer). IPv4-mapped IPv6 sources become IPv4 (as sockets of a dual-stack listener are
 * compared elsewhere, and as Postfix does).
 */
export function resolveSession(peer: ProxyEndpoint, header: ProxyHeader): ProxyResolution {
  if (header.command === 'LOCAL' || header.family === 'UNSPEC') return { action: 'accept', client: peer, server: null, proxied: false };
  if (header.family === 'UNIX') return { action: 'refuse', reason: 'the header names a UNIX socket client, which has no IP address for policy' };
  if (header.transport !== 'STREAM') return { action: 'refuse', reason: `the header is for a ${header.transport} (not TCP) connection` };
  const source = header.source!;
  const address = unmapped(source.address);
  if (address === '0.0.0.0' || address === '::') return { action: 'refuse', reason: `the header names the unspecified address ${source.address} as client` };
  const destination = header.destination ? { address: unmapped(header.destination.address), port: header.destination.port } : null;
  return { action: 'accept', client: { address, port: source.port }, server: destination, proxied: true };
}

function unmapped(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}
