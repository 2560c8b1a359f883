// A connection turned away before any SMTP session: one reply line, then closed. What the client
// sends meanwhile is read and dropped, so that closing does not reset the connection (the reply
// arrives), and a client that never closes its side is cut off after `closeAfterMs`.
import type net from 'node:net';

export function refuseConnection(socket: net.Socket, replyLine: string, closeAfterMs: number): void {
  socket.on('error', () => socket.destroy());
  socket.resume();
  socket.setTimeout(closeAfterMs, () => socket.destroy());
  socket.end(replyLine);
}
