// ACCEPT_MODE=SHARED, the server process's side: the listening sockets the dispatcher passed
// (src/dispatcher/shared-listener.ts), each listened on with a net.Server whose event loop accepts
// from the accept queue all the service's processes share. Each new socket comes paused, like a
// handed-over one, and goes to the same place (onSocket → the service's handle()).
// pause() stops accepting at once (at MAX_CONNS): libuv has no way to stop watching a listening
// socket, so its descriptor is closed, which also ends the accept loop of the current turn; the
// socket itself stays open in the dispatcher and the other processes. To accept again the process
// asks the dispatcher for the sockets (`resume`), whose keys it remembers meanwhile.
import net from 'node:net';
import type { Logger } from '../common/logger.js';

export class SharedListeners {
  private readonly servers = new Map<string, net.Server>();
  /** Sockets given and not taken back (unlisten), whether listened on now or not (paused). */
  private readonly keys = new Set<string>();
  private paused = false;
  private stopped = false;

  constructor(
    private readonly onSocket: (socket: net.Socket) => void,
    private readonly onListening: (key: string) => void,
    private readonly logger: Logger,
  ) {}

  /** It accepts from at least one socket now. */
  get accepting(): boolean {
    return this.servers.size > 0;
  }

  /** Paused with sockets to go back to: the dispatcher must send them again. */
  get resumable(): boolean {
    return this.paused && !this.stopped && this.keys.size > 0;
  }

  /** A listening socket from the dispatcher (raw handle): accept from it, unless paused or stopped. */
  add(key: string, handle: unknown, backlog: number): void {
    if (this.stopped || this.paused || this.servers.has(key)) {
      closeHandle(handle);
      if (!this.stopped) this.keys.add(key);
      return;
    }
    this.keys.add(key);
    const server = net.createServer({ pauseOnConnect: true }, this.onSocket);
    server.on('error', (err) => this.logger.error({ err: err.message, key }, 'cannot accept from the shared listening socket'));
    server.listen(handle as net.ListenOptions, backlog, () => this.onListening(key));
    this.servers.set(key, server);
  }

  /** The port is gone (a reload): never accept from it again. */
  remove(key: string): void {
    this.keys.delete(key);
    this.servers.get(key)?.close();
    this.servers.delete(key);
  }

  /** Stop accepting now; resumable afterwards. */
  pause(): void {
    if (this.paused || this.stopped) return;
    this.paused = true;
    this.closeServers();
  }

  /** Ready to accept again: the caller asks the dispatcher for the sockets. */
  unpause(): void {
    this.paused = false;
  }

  /** Stop accepting for good (retire, shutdown, the dispatcher gone). */
  stop(): void {
    this.stopped = true;
    this.keys.clear();
    this.closeServers();
  }

  private closeServers(): void {
    // close() closes the descriptor at once; its callback waits for the sessions, which are not its business.
    for (const server of this.servers.values()) server.close();
    this.servers.clear();
  }
}

function closeHandle(handle: unknown): void {
  try {
    (handle as { close?: () => void }).close?.();
  } catch {
    // already closed
  }
}
