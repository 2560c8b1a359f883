// STUB (replaced by the SMTP server work): the inbound SMTP service of one server process.
import type net from 'node:net';

export interface SmtpServiceOptions {
  root: string;
  /** The dispatcher service this process serves (dispatcher.cnf [SERVICE=…]). */
  service: string;
}

export interface SmtpService {
  /** Takes over a socket the dispatcher accepted (paused). */
  handle(socket: net.Socket): void;
  /** Sessions open now. */
  openConnections(): number;
  /** Stop taking sessions; open ones get `graceMs` to finish, then 421 and close. */
  close(graceMs: number): Promise<void>;
  /** Called when a session opens or closes (for the dispatcher's counts). */
  onChange(listener: () => void): void;
}

export async function createSmtpService(_opts: SmtpServiceOptions): Promise<SmtpService> {
  const sockets = new Set<net.Socket>();
  const listeners: Array<() => void> = [];
  const changed = () => listeners.forEach((l) => l());
  return {
    handle(socket) {
      sockets.add(socket);
      changed();
      socket.on('close', () => {
        sockets.delete(socket);
        changed();
      });
      socket.on('error', () => socket.destroy());
      socket.resume();
      socket.end('421 4.3.2 SMTP service not built yet\r\n');
    },
    openConnections: () => sockets.size,
    async close() {
      for (const s of sockets) s.destroy();
    },
    onChange: (l) => void listeners.push(l),
  };
}
