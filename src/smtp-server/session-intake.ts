// New sockets become SMTP sessions: whether the process accepted them from the shared listening
// socket or the dispatcher handed them over, handle() is where each one arrives (paused) before
// smtp-server sees it. Each is counted as open from then to its end (the counts the dispatcher
// reports follow it), its client found (the socket's peer, or behind a balancer the PROXY
// header's: proxy-intake.ts), limited per client address (MAX_CONNS_PER_IP, counted across the
// service's processes: client-limits.ts), refused with 421 while the service shuts down. A socket that
// arrived on one of the service's TLS_PORT ports (its local port says so, however it reached the
// process) does the TLS handshake first, within the request deadline. And the shutdown of the
// sessions: they get a grace period, then 421 and close, then their sockets are destroyed.
import type net from 'node:net';
import type { Logger } from '../common/logger.js';
import type { ProxyProtocolConfig } from '../config/types.js';
import { refuseConnection } from '../common/refuse-connection.js';
import type { PerIpGate } from './client-limits.js';
import type { TsubameConnection, TsubameSmtpServer } from './connection.js';
import { normalizeIp, sessionPeer, type SessionPeer } from './proxy-intake.js';
import { REPLIES, formatReply, replyText, type SmtpReply } from './replies.js';
import { sessionIdGenerator } from './session-id.js';
import { SessionSlot } from './session-slot.js';

/** After the grace period, sessions told 421 get this long to go before their sockets are destroyed. */
const FORCE_CLOSE_MS = 2000;

/** A session counted as open: its slot, the socket handed over and, once it has one, its SMTP connection. */
interface OpenSession {
  slot: SessionSlot;
  socket: net.Socket;
  connection: TsubameConnection | null;
}

type SessionChange = 'opened' | 'closed';

export class SessionIntake {
  private readonly open = new Set<OpenSession>();
  private readonly nextSessionId = sessionIdGenerator();
  private readonly listeners: Array<(change: SessionChange) => void> = [];
  private closing = false;

  private readonly implicitTlsPorts: ReadonlySet<number>;

  constructor(
    private readonly server: TsubameSmtpServer,
    private readonly perIp: PerIpGate,
    private readonly logger: Logger,
    private readonly implicitTls: { ports: readonly number[]; handshakeDeadlineMs: number } = { ports: [], handshakeDeadlineMs: 0 },
    /** The service's PROXY protocol settings; null: the socket's peer is the client. */
    private readonly proxy: ProxyProtocolConfig | null = null,
  ) {
    this.implicitTlsPorts = new Set(implicitTls.ports);
  }

  /** Sessions open now. */
  get size(): number {
    return this.open.size;
  }

  /** Called when a session opens or closes (for the dispatcher's counts). */
  onChange(listener: (change: SessionChange) => void): void {
    this.listeners.push(listener);
  }

  /** Takes over a new socket (paused): accepted by this process, or handed over by the dispatcher. */
  handle(socket: net.Socket): void {
    const peerIp = normalizeIp(socket.remoteAddress);
    if (!peerIp) {
      socket.destroy();
      return;
    }
    let countedIp: string | null = null;
    const session: OpenSession = {
      socket,
      connection: null,
      slot: new SessionSlot(() => {
        this.open.delete(session);
        if (countedIp !== null) this.perIp.release(countedIp);
        this.changed('closed');
      }),
    };
    this.open.add(session);
    socket.on('error', () => {}); // the connection reports its own; a refused socket must not throw
    // Until a STARTTLS (which removes this listener): the session's TLS socket is the connection's.
    socket.once('close', session.slot.release);
    this.changed('opened');
    if (this.closing) return refuseSocket(socket, REPLIES.shuttingDown);
    const counted = (ip: string) => (countedIp = ip);
    const peer = sessionPeer(socket, peerIp, this.proxy, this.logger);
    if (peer === null) return;
    if (!(peer instanceof Promise)) return this.admit(session, peer, counted);
    void peer.then((p) => {
      if (p === null || !session.slot.open) return;
      if (this.closing) return refuseSocket(socket, REPLIES.shuttingDown);
      this.admit(session, p, counted);
    });
  }

  /** The session with its client known: counted per address (MAX_CONNS_PER_IP), then started. */
  private admit(session: OpenSession, peer: SessionPeer, counted: (ip: string) => void): void {
    const ip = peer.remoteAddress;
    const socket = session.socket;
    const admitted = (ok: boolean): void => {
      if (ok && !session.slot.open) return this.perIp.release(ip); // the client left while the dispatcher was asked
      if (!session.slot.open) return;
      if (!ok) {
        this.logger.info({ client: ip, via: peer.via ?? undefined, limit: this.perIp.maxPerIp }, 'too many connections from one address');
        return refuseSocket(socket, REPLIES.tooManyConnections);
      }
      if (this.closing) {
        this.perIp.release(ip);
        return refuseSocket(socket, REPLIES.shuttingDown);
      }
      counted(ip);
      this.start(session, peer);
    };
    const decided = this.perIp.acquire(ip);
    if (typeof decided === 'boolean') admitted(decided);
    else void decided.then(admitted);
  }

  /** The session of an admitted socket: smtp-server's, after the TLS handshake on a TLS_PORT. */
  private start(session: OpenSession, peer: SessionPeer): void {
    const socket = session.socket;
    const options = {
      id: this.nextSessionId(),
      remoteAddress: peer.remoteAddress,
      remotePort: peer.remotePort,
      localAddress: peer.localAddress,
      localPort: peer.localPort,
    };
    const started = (connection: TsubameConnection) => {
      session.connection = connection;
      connection.onEnded(session.slot.release);
    };
    // The port this node accepted the socket on decides (behind a balancer, not the frontend's the header names).
    if (socket.localPort !== undefined && this.implicitTlsPorts.has(socket.localPort)) {
      // Paused for the hand-over: the TLS wrap reads from the socket's handle itself.
      this.server.connectImplicitTls(socket, options, this.implicitTls.handshakeDeadlineMs, started);
    } else started(this.server.connect(socket, options));
  }

  /** Takes no more sessions; open ones get `graceMs` to finish, then 421 and close; resolves when all are gone. */
  async drain(graceMs: number): Promise<void> {
    this.closing = true;
    await Promise.race([this.allClosed(), delay(graceMs)]);
    if (this.open.size === 0) return;
    for (const connection of this.server.connections) {
      connection.send(421, replyText(REPLIES.shuttingDown));
      connection.close();
    }
    await Promise.race([this.allClosed(), delay(FORCE_CLOSE_MS)]);
    for (const s of this.open) {
      s.connection?._socket.destroy();
      s.socket.destroy();
    }
  }

  private changed(change: SessionChange): void {
    for (const l of this.listeners) {
      try {
        l(change);
      } catch (err) {
        this.logger.error({ err: (err as Error).message }, 'onChange listener failed');
      }
    }
  }

  private allClosed(): Promise<void> {
    return Promise.all([...this.open].map((s) => s.slot.closed)).then(() => {});
  }
}

function refuseSocket(socket: net.Socket, reply: SmtpReply): void {
  refuseConnection(socket, `${formatReply(reply)}\r\n`, FORCE_CLOSE_MS);
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
