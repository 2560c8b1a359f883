// What an operator reads when a service port cannot be bound: one line that says what to do.

export interface ListenTarget {
  service: string;
  address: string | null; // null = all interfaces
  port: number;
}

function describeAddress(address: string | null): string {
  return address ?? 'all addresses';
}

/** Formats a bind failure (`err.code` from net.Server 'error'). */
export function describeListenError(err: NodeJS.ErrnoException, target: ListenTarget): string {
  const where = `port ${target.port} on ${describeAddress(target.address)}`;
  switch (err.code) {
    case 'EADDRINUSE':
      return `${where} is in use by another program`;
    case 'EACCES':
    case 'EPERM':
      if (target.port < 1024) {
        return `binding port ${target.port} needs root or CAP_NET_BIND_SERVICE: run as root, \`setcap cap_net_bind_service=+ep $(which node)\`, or set PORT= in etc/dispatcher.cnf`;
      }
      return `no permission to bind ${where} (service ${target.service})`;
    case 'EADDRNOTAVAIL':
      return `address ${target.address} (INTERFACE_ADDRESS of service ${target.service}) is not an address of this host`;
    default:
      return `cannot listen on ${where} (service ${target.service}): ${err.message}`;
  }
}

/** A bind failure, carrying the operator's line as its message. */
export class ListenError extends Error {}
