// A listening socket the server processes of a service accept from themselves (ACCEPT_MODE=SHARED),
// as Postfix's master gives its listening socket to smtpd. The dispatcher binds it and keeps it,
// but never listens on it in its own event loop (that would make it accept too): it passes the
// handle to each server process, whose listen() puts the one socket in the LISTEN state and
// whose event loop accepts from the one accept queue they all share. This is how Node's cluster
// module shares a handle in its SCHED_NONE mode (net._createServerHandle, the primary binding,
// the workers listening); test/integration/dispatcher-shared-handle.test.ts pins it.
// While every process is at MAX_CONNS (or none runs), connections wait in the kernel's accept
// queue, whose length /proc/net/tcp shows (listen-queue.ts).
import net from 'node:net';
import { getSystemErrorName } from 'node:util';
import { describeListenError, ListenError } from './listen-errors.js';
import type { ListenTarget } from './reload-plan.js';

/** The raw libuv TCP handle (Node's internal TCPWrap) as far as the dispatcher uses it. */
export interface TcpHandle {
  readonly fd: number;
  getsockname(out: { address?: string; port?: number; family?: string }): number;
  close(): void;
}

type CreateServerHandle = (address: string | null, port: number, addressType: number, fd?: number, flags?: number) => TcpHandle | number;

/** Node's own (cluster's) way to make a bound, not listening, server handle. */
function createServerHandle(): CreateServerHandle {
  const create = (net as unknown as { _createServerHandle?: CreateServerHandle })._createServerHandle;
  if (typeof create !== 'function') throw new ListenError('this Node.js has no net._createServerHandle: set ACCEPT_MODE=HANDOFF in etc/dispatcher.cnf');
  return create;
}

/**
 * Binds `target` for a shared accept: throws ListenError with the operator's line. The port is
 * probed with a listener of the dispatcher's own, closed at once: Linux lets a socket with
 * SO_REUSEADDR be bound to a port another program listens on and refuses only its listen(),
 * which the server processes make.
 */
export async function bindShared(service: string, target: ListenTarget): Promise<{ handle: TcpHandle; port: number }> {
  const where = { service, ...target };
  const made = createServerHandle()(target.address, target.port, target.address ? net.isIP(target.address) : 4);
  if (typeof made === 'number') throw new ListenError(describeListenError(errnoError(made), where));
  const name: { port?: number } = {};
  made.getsockname(name);
  const port = name.port ?? target.port;
  try {
    await probe(target.address, port);
  } catch (err) {
    made.close();
    throw new ListenError(describeListenError(err as NodeJS.ErrnoException, where));
  }
  return { handle: made, port };
}

function probe(address: string | null, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ port, host: address ?? undefined }, () => server.close(() => resolve()));
  });
}

function errnoError(code: number): NodeJS.ErrnoException {
  const name = getSystemErrorName(code);
  return Object.assign(new Error(name), { code: name, errno: code });
}
