// The PROXY protocol at a service's intake: who a new connection's client is. For a service
// without PROXY_PROTOCOL it is the socket's peer, decided at once (no extra turn of the event
// loop). For a service behind a balancer it is the address the balancer's header names, read
// before smtp-server sees a single octet (src/proxy-protocol); a connection that is refused by
// the admission rules (a peer that is not a listed balancer, no header in time, a malformed
// header, a UNIX or UDP client) is logged and closed without a greeting, as Postfix's smtpd does.
// The intake then counts MAX_CONNS_PER_IP and gives smtp-server the real client, so that
// everything after it (INTERNAL_IP, access tables, blocklists, Received, mail.log) sees that one.
import type net from 'node:net';
import type { Logger } from '../common/logger.js';
import type { ProxyProtocolConfig } from '../config/types.js';
import { admitConnection, readProxyHeader, resolveSession, ProxyHeaderError } from '../proxy-protocol/index.js';

/** The endpoints a session is given: the client's (for policy) and the address it connected to. */
export interface SessionPeer {
  remoteAddress: string;
  remotePort: number | undefined;
  localAddress: string | undefined;
  localPort: number | undefined;
  /** The balancer's address when the client came through one (for the log), else null. */
  via: string | null;
}

/**
 * The session's peer for `socket` (whose remote address is `peerIp`, already normalized): at once
 * for a direct service, later for one behind a balancer; null when the connection was refused
 * (the socket is destroyed then).
 */
export function sessionPeer(socket: net.Socket, peerIp: string, proxy: ProxyProtocolConfig | null, logger: Logger): SessionPeer | null | Promise<SessionPeer | null> {
  const direct: SessionPeer = { remoteAddress: peerIp, remotePort: socket.remotePort, localAddress: normalizeIp(socket.localAddress) ?? undefined, localPort: socket.localPort, via: null };
  const admission = admitConnection(proxy, peerIp);
  if (admission.action === 'direct') return direct;
  const refuse = (reason: string, received?: string): null => {
    logger.info({ peer: peerIp, peerPort: socket.remotePort, reason, received }, 'PROXY protocol: connection refused');
    socket.destroy();
    return null;
  };
  if (admission.action === 'refuse') return refuse(admission.reason);
  return readProxyHeader(socket, admission).then(
    ({ header }) => {
      const resolved = resolveSession({ address: peerIp, port: socket.remotePort ?? 0 }, header);
      if (resolved.action === 'refuse') return refuse(resolved.reason);
      if (!resolved.proxied) return direct;
      return {
        remoteAddress: resolved.client.address,
        remotePort: resolved.client.port,
        localAddress: resolved.server?.address ?? direct.localAddress,
        localPort: resolved.server?.port ?? direct.localPort,
        via: peerIp,
      };
    },
    (err: unknown) => (err instanceof ProxyHeaderError ? refuse(err.reason, err.received) : refuse((err as Error).message)),
  );
}

/** An address as policy compares it: IPv4-mapped IPv6 as plain IPv4. */
export function normalizeIp(ip: string | undefined): string | null {
  if (!ip) return null;
  return ip.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
}
