// One [SERVICE=…] of dispatcher.cnf: its listening sockets, its SMTP server processes and the
// hand-off of every accepted connection to one of them. Which process takes a connection, when
// to start one and when to retire one is decided by policy.ts; this module does the I/O.
import net from 'node:net';
import { fork, type ChildProcess } from 'node:child_process';
import type { DispatcherService } from '../config/types.js';
import type { Logger } from '../common/logger.js';
import { chooseProcess, housekeeping, type ProcessState, type ServiceLimits } from './policy.js';
import { describeListenError, ListenError } from './listen-errors.js';
import type { FromServerProcess, ListenerInfo, ServerProcessInfo, ToServerProcess } from './protocol.js';

export interface ServiceDispatcherOptions {
  service: DispatcherService;
  root: string;
  /** The compiled SMTP server process module (dist/src/smtp-server/main.js). */
  serverModule: string;
  logger: Logger;
  /** Housekeeping period (ms). */
  tickMs?: number;
}

interface ServerProcess {
  id: number;
  child: ChildProcess;
  pid: number;
  startedAt: number;
  lastActive: number;
  ready: boolean;
  retiring: boolean;
  retireSent: boolean;
  gone: boolean;
  /** What it said before it died while starting. */
  fatal: string | null;
  /** As last reported by the process. */
  open: number;
  served: number;
  received: number;
  /** connection messages sent to it. */
  sent: number;
  /** Connections assigned to it, not sent yet (it is starting, or a hand-off is in transit). */
  assigned: net.Socket[];
}

const SERVER_START_TIMEOUT_MS = 20_000;
const REFUSE_BUSY = '421 4.3.2 Too many connections, try again later\r\n';
const REFUSE_SHUTDOWN = '421 4.3.2 Service shutting down, try again later\r\n';
const REFUSE_UNAVAILABLE = '421 4.3.0 Service temporarily unavailable, try again later\r\n';

/** Answers a connection the dispatcher still owns with a 421 and closes it. */
export function refuse(socket: net.Socket, reply: string): void {
  socket.on('error', () => socket.destroy());
  socket.on('data', () => {}); // discard what the client sends, so that closing does not reset
  socket.resume();
  socket.setTimeout(5000, () => socket.destroy());
  socket.end(reply);
}

export class ServiceDispatcher {
  readonly name: string;
  private readonly service: DispatcherService;
  private readonly limits: ServiceLimits;
  private readonly servers: net.Server[] = [];
  private readonly procs = new Map<number, ServerProcess>();
  private readonly waiting: net.Socket[] = [];
  private nextId = 1;
  private shuttingDown = false;
  private startFailures = 0;
  private spawnBlockedUntil = 0;
  private pumpTimer: NodeJS.Timeout | null = null;
  private tickTimer: NodeJS.Timeout | null = null;
  private readonly exitWaiters: Array<() => void> = [];
  private warmUpProgress: (() => void) | null = null;
  private warmUpFailed: ((message: string) => void) | null = null;

  constructor(private readonly opts: ServiceDispatcherOptions) {
    this.service = opts.service;
    this.name = opts.service.name;
    const s = opts.service;
    this.limits = {
      minProcs: s.minProcs,
      maxProcs: Math.max(1, s.maxProcs),
      minConns: s.minConns,
      maxConns: Math.max(1, s.maxConns),
      maxHandoffs: s.maxHandoffs,
      maxLifeTimeSec: s.maxLifeTimeSec,
      maxLifeConns: s.maxLifeConns,
      maxIdleTimeSec: s.maxIdleTimeSec,
      maxShutdown: s.maxShutdown,
    };
  }

  /** Binds every port of the service; throws ListenError with the operator's line. */
  async listen(): Promise<ListenerInfo[]> {
    const out: ListenerInfo[] = [];
    for (const port of this.service.ports) {
      const target = { service: this.name, address: this.service.interfaceAddress, port };
      const server = net.createServer({ pauseOnConnect: true }, (socket) => this.accept(socket));
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err: NodeJS.ErrnoException) => reject(new ListenError(describeListenError(err, target))));
        server.listen({ port, host: this.service.interfaceAddress ?? undefined, backlog: this.service.backlog }, () => resolve());
      });
      server.on('error', (err) => this.opts.logger.error({ err, service: this.name }, 'listener error'));
      this.servers.push(server);
      const bound = server.address() as net.AddressInfo;
      out.push({ service: this.name, address: this.service.interfaceAddress, port: bound.port });
    }
    this.tickTimer = setInterval(() => this.tick(), this.opts.tickMs ?? 1000);
    this.tickTimer.unref();
    this.tick();
    return out;
  }

  /**
   * Waits until MIN_PROCS server processes are ready, so that a service that cannot start
   * (its first process dies while starting) fails start-msg with that process's reason.
   */
  warmUp(timeoutMs: number): Promise<void> {
    const readyCount = () => [...this.procs.values()].filter((p) => p.ready && !p.retiring).length;
    if (readyCount() >= this.limits.minProcs) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        this.warmUpProgress = this.warmUpFailed = null;
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(() => done(new ListenError(`the SMTP server processes of service ${this.name} did not start within ${timeoutMs / 1000} s`)), timeoutMs);
      this.warmUpProgress = () => {
        if (readyCount() >= this.limits.minProcs) done();
      };
      this.warmUpFailed = (message) => done(new ListenError(message));
    });
  }

  /** Accepted connections that wait for a process. */
  waitingCount(): number {
    return this.waiting.length;
  }

  processes(): ServerProcessInfo[] {
    return [...this.procs.values()].map((p) => ({
      pid: p.pid,
      service: this.name,
      connections: p.open + this.handoffsOf(p),
      served: p.served + this.handoffsOf(p),
      ready: p.ready,
      retiring: p.retiring,
      started: new Date(p.startedAt).toISOString(),
    }));
  }

  /** Stops listening, tells every process to finish within graceMs (default MAX_SHUTDOWN seconds), and waits for them to exit. */
  async shutdown(graceMs: number = this.limits.maxShutdown * 1000): Promise<void> {
    this.shuttingDown = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    if (this.pumpTimer) clearTimeout(this.pumpTimer);
    // close() releases the port at once; its callback would wait for handed-off sockets, so it is not awaited.
    for (const server of this.servers) server.close();
    for (const socket of this.waiting.splice(0)) refuse(socket, REFUSE_SHUTDOWN);
    for (const p of this.procs.values()) {
      for (const socket of p.assigned.splice(0)) refuse(socket, REFUSE_SHUTDOWN);
      this.sendTo(p, { type: 'shutdown', graceMs }) || p.child.kill('SIGTERM');
    }
    const deadline = setTimeout(() => {
      for (const p of this.procs.values()) {
        this.opts.logger.warn({ pid: p.pid, service: this.name }, 'server process did not stop in time; killing it');
        p.child.kill('SIGKILL');
      }
    }, graceMs + 5000);
    while (this.procs.size > 0) await new Promise<void>((resolve) => this.exitWaiters.push(resolve));
    clearTimeout(deadline);
  }

  // ------------------------------------------------------------------ internals

  private accept(socket: net.Socket): void {
    socket.on('error', () => {}); // a reset while it waits; the process that gets it sees a closed socket
    if (this.shuttingDown) return refuse(socket, REFUSE_SHUTDOWN);
    if (this.waiting.length >= Math.max(5, this.service.backlog)) {
      this.opts.logger.warn({ service: this.name, waiting: this.waiting.length }, 'backlog full: connection refused with 421');
      return refuse(socket, REFUSE_BUSY);
    }
    this.waiting.push(socket);
    this.pump();
  }

  private handoffsOf(p: ServerProcess): number {
    return p.sent - p.received + p.assigned.length;
  }

  private states(): ProcessState[] {
    const out: ProcessState[] = [];
    for (const p of this.procs.values()) {
      if (p.gone) continue;
      const handoffs = this.handoffsOf(p);
      out.push({
        id: p.id,
        open: p.open + handoffs,
        handoffs,
        served: p.served + handoffs,
        startedAt: p.startedAt,
        lastActive: p.lastActive,
        retiring: p.retiring,
        ready: p.ready,
      });
    }
    return out;
  }

  /** Assigns waiting connections to processes while the policy allows. */
  private pump(): void {
    if (this.shuttingDown) return;
    while (this.waiting.length > 0) {
      const spawnWait = this.spawnBlockedUntil - Date.now();
      const choice = chooseProcess(this.limits, this.states(), spawnWait <= 0);
      if (choice.action === 'wait') {
        // A status report or an exit calls pump again; so does the end of a spawn back-off.
        if (spawnWait > 0) this.schedulePump(spawnWait);
        return;
      }
      const target = choice.action === 'use' ? this.procs.get(choice.id)! : this.spawn();
      target.assigned.push(this.waiting.shift()!);
      this.flush(target);
    }
  }

  private schedulePump(ms: number): void {
    if (this.pumpTimer) return;
    this.pumpTimer = setTimeout(() => {
      this.pumpTimer = null;
      this.tick();
    }, ms);
  }

  /** Housekeeping (MIN_PROCS, retirements), then hand-offs. */
  private tick(): void {
    if (this.shuttingDown) return;
    const now = Date.now();
    const plan = housekeeping(this.limits, this.states(), now);
    for (const { id, reason } of plan.retire) {
      const p = this.procs.get(id)!;
      this.opts.logger.info({ pid: p.pid, service: this.name, reason, served: p.served }, 'retiring server process');
      p.retiring = true;
      this.waiting.unshift(...p.assigned.splice(0));
      this.maybeSendRetire(p);
    }
    if (plan.spawn > 0 && this.spawnBlockedUntil <= now) {
      for (let i = 0; i < plan.spawn; i++) this.spawn();
    } else if (plan.spawn > 0) {
      this.schedulePump(this.spawnBlockedUntil - now);
    }
    this.pump();
  }

  private spawn(): ServerProcess {
    const id = this.nextId++;
    const child = fork(this.opts.serverModule, [], {
      env: { ...process.env, IMTA_ROOT: this.opts.root, TSUBAME_SERVICE: this.name, TSUBAME_GRACE_MS: String(this.limits.maxShutdown * 1000) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'json',
    });
    const now = Date.now();
    const p: ServerProcess = {
      id,
      child,
      pid: child.pid ?? 0,
      startedAt: now,
      lastActive: now,
      ready: false,
      retiring: false,
      retireSent: false,
      gone: false,
      fatal: null,
      open: 0,
      served: 0,
      received: 0,
      sent: 0,
      assigned: [],
    };
    this.procs.set(id, p);
    this.opts.logger.info({ pid: p.pid, service: this.name }, 'starting server process');
    const startDeadline = setTimeout(() => {
      if (p.ready || p.gone) return;
      p.fatal = `an SMTP server process of service ${this.name} did not start within ${SERVER_START_TIMEOUT_MS / 1000} s`;
      child.kill('SIGKILL');
    }, SERVER_START_TIMEOUT_MS);
    startDeadline.unref();
    child.once('exit', () => clearTimeout(startDeadline));
    child.on('message', (msg: FromServerProcess) => this.onMessage(p, msg));
    child.on('error', (err) => this.opts.logger.warn({ err, pid: p.pid }, 'server process channel error'));
    child.on('exit', (code, signal) => this.onExit(p, code, signal));
    return p;
  }

  private onMessage(p: ServerProcess, msg: FromServerProcess): void {
    switch (msg?.type) {
      case 'ready':
        p.ready = true;
        this.startFailures = 0;
        this.warmUpProgress?.();
        this.flush(p);
        this.tick();
        break;
      case 'status':
        if (msg.open !== p.open) p.lastActive = Date.now();
        p.open = msg.open;
        p.served = msg.served;
        p.received = msg.received;
        this.flush(p);
        this.maybeSendRetire(p);
        this.tick();
        break;
      case 'fatal':
        p.fatal = msg.message;
        this.opts.logger.error({ pid: p.pid, service: this.name }, msg.message);
        break;
    }
  }

  private onExit(p: ServerProcess, code: number | null, signal: NodeJS.Signals | null): void {
    p.gone = true;
    this.procs.delete(p.id);
    const expected = this.shuttingDown || p.retireSent;
    if (!expected) this.opts.logger.warn({ pid: p.pid, service: this.name, code, signal }, 'server process exited');
    if (!p.ready && !this.shuttingDown) {
      this.warmUpFailed?.(p.fatal ?? `an SMTP server process of service ${this.name} exited (${signal ? `signal ${signal}` : `code ${code}`}) while starting`);
      // It died before it could serve: answer what waited for it, and start the next one later.
      this.startFailures++;
      const delay = Math.min(30_000, 500 * 2 ** (this.startFailures - 1));
      this.spawnBlockedUntil = Date.now() + delay;
      for (const socket of p.assigned.splice(0)) refuse(socket, REFUSE_UNAVAILABLE);
    } else {
      this.waiting.unshift(...p.assigned.splice(0));
    }
    for (const w of this.exitWaiters.splice(0)) w();
    if (!this.shuttingDown) this.tick();
  }

  /** Sends the next assigned connection when the process is ready and its last hand-off arrived. */
  private flush(p: ServerProcess): void {
    if (p.gone || !p.ready || p.retiring || p.sent !== p.received || p.assigned.length === 0) return;
    const socket = p.assigned.shift()!;
    p.sent++;
    const failed = () => {
      // The channel is broken (the process is dying): give the connection to another process.
      p.sent--;
      this.waiting.unshift(socket);
      if (!p.gone) {
        p.retiring = true; // excluded from choices until its exit is seen
        p.retireSent = true;
        p.child.kill('SIGKILL');
      }
      setImmediate(() => this.pump());
    };
    try {
      // keepOpen: the dispatcher keeps its copy until the descriptor is on its way, so that a
      // failed send can still be answered elsewhere; then it closes its copy.
      p.child.send({ type: 'connection' } satisfies ToServerProcess, socket, { keepOpen: true }, (err) => {
        if (err) failed();
        else socket.destroy();
      });
    } catch {
      failed();
    }
  }

  private maybeSendRetire(p: ServerProcess): void {
    if (!p.retiring || p.retireSent || p.gone || p.sent !== p.received || p.assigned.length > 0) return;
    p.retireSent = true;
    if (!this.sendTo(p, { type: 'retire' })) p.child.kill('SIGTERM');
  }

  private sendTo(p: ServerProcess, msg: ToServerProcess): boolean {
    if (p.gone || !p.child.connected) return false;
    try {
      p.child.send(msg);
      return true;
    } catch {
      return false;
    }
  }
}
