// One [SERVICE=…] of dispatcher.cnf: its listening sockets, its SMTP server processes, and how a
// connection reaches one of them (ACCEPT_MODE): SHARED, each process is given the listening
// sockets once and accepts from them itself, stopping at MAX_CONNS (shared-listener.ts); HANDOFF,
// the dispatcher accepts every connection and hands it to the process policy.ts chooses. When to
// start a process and when to retire one is decided by policy.ts either way, and MAX_CONNS_PER_IP
// is counted across the processes by per-ip-ledger.ts; this module does the I/O.
// A reload changes its limits and ports in place (stage, then commit or abort), tells its
// processes to load the new configuration, or drains it when the service is gone.
import net from 'node:net';
import { fork, type ChildProcess } from 'node:child_process';
import type { AcceptMode, DispatcherService } from '../config/types.js';
import type { Logger } from '../common/logger.js';
import { chooseProcess, housekeeping, sharedLimits, spawnForLoad, type ProcessState, type ServiceLimits } from './policy.js';
import { describeListenError, ListenError } from './listen-errors.js';
import { limitsOf, listenerKey, targetsOf, type BoundListener, type ListenTarget } from './reload-plan.js';
import type { AuthCounts, FromServerProcess, ListenerInfo, ProcessLimits, ServerProcessInfo, ServiceSummary, ToServerProcess } from './protocol.js';
import { bindShared, type TcpHandle } from './shared-listener.js';
import { acceptBacklog } from './listen-queue.js';
import { PerIpLedger, type LedgerSend } from './per-ip-ledger.js';
import { ServiceTotals } from './service-totals.js';
import { isHistogramSnapshot, type HistogramSnapshot } from '../common/histogram.js';
import { refuseConnection } from '../common/refuse-connection.js';
import { forkOptionsKeeping } from '../common/service-user.js';

export interface ServiceDispatcherOptions {
  service: DispatcherService;
  root: string;
  /** The compiled SMTP server process module (dist/src/smtp-server/main.js). */
  serverModule: string;
  logger: Logger;
  /** MAX_CONNS_PER_IP (option.dat), counted across the service's processes. */
  maxConnsPerIp: number;
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
  /** Of those, how many its Node acknowledged as received (see onHandleAcknowledged). */
  acknowledged: number;
  /** Connections assigned to it, not sent yet (it is starting, or a hand-off is in transit). */
  assigned: net.Socket[];
  /** The configuration generation it runs (it loads the files when it starts). */
  generation: number;
  /** As last reported by the process (metrics). */
  enqueueLatency: HistogramSnapshot | null;
  /** Shared accept: it accepts from the listening sockets (as last reported). */
  accepting: boolean;
  auth: AuthCounts | null;
}

interface Listener {
  target: ListenTarget;
  key: string;
  /** HANDOFF: the dispatcher's own listener. */
  server: net.Server | null;
  /** SHARED: the bound socket the processes listen on. */
  shared: TcpHandle | null;
  backlog: number;
  info: ListenerInfo;
}

function closeListener(l: Listener): void {
  // close() releases the port at once; its callback would wait for handed-off sockets, so it is not awaited.
  l.server?.close();
  l.shared?.close();
}

/** A reload's new sockets, bound and accepting, not yet part of the service's definition. */
export interface StagedUpdate {
  /**
   * Switches to the new definition: closes the sockets it no longer has. `released` resolves
   * once no server process accepts from them any more (shared accept), so the ports are free.
   */
  commit(): { added: ListenerInfo[]; removed: ListenerInfo[]; released: Promise<void> };
  /** Closes the sockets bound for it; the service stays as it was. */
  abort(): void;
}

/** How long a server process may take to answer a reload. */
const RELOAD_ANSWER_MS = 15_000;
/** How long a server process may take to say it stopped accepting from a socket, or to report its counts. */
const PROCESS_ANSWER_MS = 5000;
const COUNT_ANSWER_MS = 1000;

const SERVER_START_TIMEOUT_MS = 20_000;
const REFUSE_BUSY = '421 4.3.2 Too many connections, try again later\r\n';
const REFUSE_SHUTDOWN = '421 4.3.2 Service shutting down, try again later\r\n';
const REFUSE_UNAVAILABLE = '421 4.3.0 Service temporarily unavailable, try again later\r\n';

/** Node's internal message acknowledging a passed handle. */
const NODE_HANDLE_ACK = 'NODE_HANDLE_ACK';

/** Hand-offs known to have arrived: acknowledged by Node, or counted in a status report. */
function arrived(p: ServerProcess): number {
  return Math.max(p.acknowledged, p.received);
}

/** Answers a connection the dispatcher still owns with a 421 and closes it. */
function refuse(socket: net.Socket, reply: string): void {
  refuseConnection(socket, reply, 5000);
}

export class ServiceDispatcher {
  readonly name: string;
  private service: DispatcherService;
  private limits: ServiceLimits;
  private readonly listeners = new Map<string, Listener>();
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
  /** Bumped by every reload; a process started before one is told to reload once it is ready. */
  private generation = 0;
  private readonly reloadWaiters = new Map<number, (answer: { ok: boolean; error?: string }) => void>();
  /** The service is gone from dispatcher.cnf: no listening, no new processes, retire the ones there are. */
  private draining = false;
  /** Sessions served and enqueue latency of processes that have exited (metrics). */
  private readonly totals = new ServiceTotals();
  /** ACCEPT_MODE, fixed for the dispatcher's life (a reload that changes it is refused: reload-plan.ts). */
  readonly shared: boolean;
  /** MAX_CONNS_PER_IP across the processes. */
  private readonly ledger: PerIpLedger;
  private perIpLimit: number;
  /** Answers awaited from processes (`count`, `unlisten`), by process id and key. */
  private readonly answers = new Map<string, () => void>();
  private nextQuery = 1;
  /** What the processes were last told of `mayGrow` (ProcessLimits). */
  private toldMayGrow = true;
  /** Shared accept: the sockets some process has listened on (a port is in the LISTEN state only then). */
  private readonly listened = new Set<string>();

  constructor(private readonly opts: ServiceDispatcherOptions) {
    this.service = opts.service;
    this.name = opts.service.name;
    this.shared = opts.service.acceptMode === 'shared';
    this.limits = this.limitsFor(opts.service);
    this.perIpLimit = opts.maxConnsPerIp;
    this.ledger = new PerIpLedger(this.perIpLimit, this.limits.maxProcs, () => this.holders());
  }

  get acceptMode(): AcceptMode {
    return this.shared ? 'shared' : 'handoff';
  }

  /** A new MAX_CONNS_PER_IP (option.dat reloaded). */
  configurePerIp(limit: number): void {
    this.perIpLimit = limit;
    this.ledger.configure(limit, this.limits.maxProcs);
    this.sendLimits();
  }

  private limitsFor(service: DispatcherService): ServiceLimits {
    return this.shared ? sharedLimits(limitsOf(service)) : limitsOf(service);
  }

  /** Binds every port of the service; throws ListenError with the operator's line (and closes what it bound). */
  async listen(): Promise<ListenerInfo[]> {
    const bound: Listener[] = [];
    try {
      for (const target of targetsOf(this.service)) bound.push(await this.bind(target, this.service.backlog));
    } catch (err) {
      for (const l of bound) closeListener(l);
      throw err;
    }
    for (const l of bound) this.listeners.set(l.key, l);
    this.tickTimer = setInterval(() => this.tick(), this.opts.tickMs ?? 1000);
    this.tickTimer.unref();
    this.tick();
    return bound.map((l) => l.info);
  }

  /** Every socket it listens on now. */
  listenerInfo(): ListenerInfo[] {
    return [...this.listeners.values()].map((l) => l.info);
  }

  /** The sockets it holds, keyed as dispatcher.cnf names them (for the reload plan). */
  boundListeners(): BoundListener[] {
    return [...this.listeners.values()].map((l) => ({ service: this.name, ...l.target }));
  }

  /**
   * First half of a reload: binds the sockets `next` adds (throws ListenError, having bound
   * nothing, when one cannot be bound). Nothing else changes until commit().
   */
  async stage(next: DispatcherService, bind: readonly ListenTarget[], close: readonly ListenTarget[]): Promise<StagedUpdate> {
    const added: Listener[] = [];
    try {
      for (const target of bind) added.push(await this.bind(target, next.backlog));
    } catch (err) {
      for (const l of added) closeListener(l);
      throw err;
    }
    let settled = false;
    return {
      commit: () => {
        if (settled) throw new Error('reload already settled');
        settled = true;
        const removed: Listener[] = [];
        for (const target of close) {
          const l = this.listeners.get(listenerKey(target));
          if (!l) continue;
          // Sessions already handed over (or accepted) live in the server processes and go on.
          closeListener(l);
          this.listeners.delete(listenerKey(target));
          removed.push(l);
        }
        for (const l of added) this.listeners.set(l.key, l);
        this.service = next;
        this.limits = this.limitsFor(next);
        this.ledger.configure(this.perIpLimit, this.limits.maxProcs);
        this.sendLimits();
        for (const l of added) for (const p of this.accepters()) this.sendListener(p, l);
        const released = this.unlisten(removed.map((l) => l.key));
        this.tick();
        return { added: added.map((l) => l.info), removed: removed.map((l) => l.info), released };
      },
      abort: () => {
        if (settled) return;
        settled = true;
        for (const l of added) closeListener(l);
      },
    };
  }

  /**
   * Tells every ready process to load the configuration again, and waits for their answers.
   * Processes still starting are told once they are ready. Returns the failures (pid: reason).
   */
  async reloadProcesses(): Promise<{ reloaded: number; failed: string[] }> {
    const generation = ++this.generation;
    const targets = [...this.procs.values()].filter((p) => p.ready && !p.retiring && !p.gone);
    const answers = await Promise.all(targets.map((p) => this.askReload(p, generation)));
    const failed = answers.flatMap((a, i) => (a.ok ? [] : [`SMTP server process ${targets[i]!.pid}: ${a.error ?? 'no answer'}`]));
    return { reloaded: answers.length - failed.length, failed };
  }

  /**
   * The service is no longer in dispatcher.cnf: stop listening (connections already accepted
   * are still handed over), then retire every process; resolves when the last one has exited
   * (each finishes its sessions first).
   */
  async drain(): Promise<void> {
    await this.stopListening();
    this.tick();
    while (this.procs.size > 0 || this.waiting.length > 0) {
      if (this.shuttingDown) return;
      await new Promise<void>((resolve) => this.exitWaiters.push(resolve));
    }
    if (this.tickTimer) clearInterval(this.tickTimer);
    if (this.pumpTimer) clearTimeout(this.pumpTimer);
  }

  /**
   * First step of a drain: no new connections. Resolves once no server process accepts from the
   * service's sockets any more (so that the ports are free when a reload is answered).
   */
  stopListening(): Promise<void> {
    this.draining = true;
    const keys = [...this.listeners.keys()];
    for (const l of this.listeners.values()) closeListener(l);
    this.listeners.clear();
    return this.unlisten(keys);
  }

  /** Sends a signal to every server process (SIGHUP: reopen the logs). */
  signalProcesses(signal: NodeJS.Signals): void {
    for (const p of this.procs.values()) {
      try {
        p.child.kill(signal);
      } catch {
        /* already gone */
      }
    }
  }

  /**
   * Waits until MIN_PROCS server processes are ready (and, with shared accept, one listens on
   * every port), so that a service that cannot start (its first process dies while starting)
   * fails start-msg with that process's reason.
   */
  warmUp(timeoutMs: number): Promise<void> {
    const readyCount = () => [...this.procs.values()].filter((p) => p.ready && !p.retiring).length;
    // Shared accept: the ports take connections once a process listens on each.
    const listening = () => !this.shared || [...this.listeners.keys()].every((k) => this.listened.has(k));
    const warm = () => readyCount() >= this.limits.minProcs && listening();
    if (warm()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        this.warmUpProgress = this.warmUpFailed = null;
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(() => done(new ListenError(`the SMTP server processes of service ${this.name} did not start within ${timeoutMs / 1000} s`)), timeoutMs);
      this.warmUpProgress = () => {
        if (warm()) done();
      };
      this.warmUpFailed = (message) => done(new ListenError(message));
    });
  }

  /** Connections that wait for a process: accepted by the dispatcher (hand-off), or in the kernel's accept queue (shared). */
  waitingCount(): number {
    if (!this.shared) return this.waiting.length;
    return acceptBacklog([...this.listeners.values()].flatMap((l) => (l.shared ? [l.shared.fd] : [])));
  }

  /**
   * Shared accept: asks every ready process for its counts now (they report lazily otherwise),
   * so that processes() and summary() are exact. Hand-off: the dispatcher knows them already.
   */
  async refreshCounts(): Promise<void> {
    if (!this.shared) return;
    await Promise.all(
      [...this.procs.values()]
        .filter((p) => p.ready && !p.gone)
        .map((p) => {
          const id = this.nextQuery++;
          return this.awaitAnswer(p, `count:${id}`, COUNT_ANSWER_MS, { type: 'count', id });
        }),
    );
  }

  processes(): ServerProcessInfo[] {
    return [...this.procs.values()].map((p) => ({
      pid: p.pid,
      service: this.name,
      connections: p.open + this.unreportedOf(p),
      served: p.served + this.unreportedOf(p),
      ready: p.ready,
      retiring: p.retiring,
      started: new Date(p.startedAt).toISOString(),
      maxConns: this.limits.maxConns,
      ...(this.shared ? { accepting: p.ready && !p.retiring && p.accepting } : {}),
    }));
  }

  /** Totals since the dispatcher started (metrics endpoint). */
  summary(): ServiceSummary {
    const live = [...this.procs.values()].map((p) => ({ connections: p.open + this.unreportedOf(p), served: p.served + this.unreportedOf(p), enqueueLatency: p.enqueueLatency, auth: p.auth }));
    return this.totals.summary(this.name, live);
  }

  /** Stops listening, tells every process to finish within graceMs (default MAX_SHUTDOWN seconds), and waits for them to exit. */
  async shutdown(graceMs: number = this.limits.maxShutdown * 1000): Promise<void> {
    this.shuttingDown = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    if (this.pumpTimer) clearTimeout(this.pumpTimer);
    for (const l of this.listeners.values()) closeListener(l);
    this.listeners.clear();
    for (const socket of this.waiting.splice(0)) refuse(socket, REFUSE_SHUTDOWN);
    for (const p of this.procs.values()) {
      for (const socket of p.assigned.splice(0)) refuse(socket, REFUSE_SHUTDOWN);
      if (!this.sendTo(p, { type: 'shutdown', graceMs })) p.child.kill('SIGTERM');
    }
    const deadline = setTimeout(() => {
      for (const p of this.procs.values()) {
        this.opts.logger.warn({ pid: p.pid, service: this.name }, 'server process did not stop in time; killing it');
        p.child.kill('SIGKILL');
      }
    }, graceMs + 5000);
    while (this.procs.size > 0) await new Promise<void>((resolve) => this.exitWaiters.push(resolve));
    clearTimeout(deadline);
    for (const w of this.exitWaiters.splice(0)) w(); // a drain waiting too
  }

  // ------------------------------------------------------------------ internals

  private async bind(target: ListenTarget, backlog: number): Promise<Listener> {
    const key = listenerKey(target);
    if (this.shared) {
      const { handle, port } = await bindShared(this.name, target);
      return { target, key, server: null, shared: handle, backlog, info: { service: this.name, address: target.address, port } };
    }
    const where = { service: this.name, ...target };
    const server = net.createServer({ pauseOnConnect: true }, (socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(new ListenError(describeListenError(err, where))));
      server.listen({ port: target.port, host: target.address ?? undefined, backlog }, () => resolve());
    });
    server.on('error', (err) => this.opts.logger.error({ err, service: this.name }, 'listener error'));
    const bound = server.address() as net.AddressInfo;
    return { target, key, server, shared: null, backlog, info: { service: this.name, address: target.address, port: bound.port } };
  }

  private askReload(p: ServerProcess, generation: number): Promise<{ ok: boolean; error?: string }> {
    p.generation = generation;
    return new Promise((resolve) => {
      const key = p.id;
      const timer = setTimeout(() => finish({ ok: false, error: `no answer within ${RELOAD_ANSWER_MS / 1000} s` }), RELOAD_ANSWER_MS);
      const finish = (answer: { ok: boolean; error?: string }) => {
        clearTimeout(timer);
        if (this.reloadWaiters.get(key) === finish) this.reloadWaiters.delete(key);
        resolve(answer);
      };
      this.reloadWaiters.get(key)?.({ ok: false, error: 'superseded by a newer reload' });
      this.reloadWaiters.set(key, finish);
      if (!this.sendTo(p, { type: 'reload', generation })) finish({ ok: true }); // it is going away: nothing to switch
    });
  }

  private accept(socket: net.Socket): void {
    socket.on('error', () => {}); // a reset while it waits; the process that gets it sees a closed socket
    if (this.shuttingDown || this.draining) return refuse(socket, REFUSE_SHUTDOWN);
    if (this.waiting.length >= Math.max(5, this.service.backlog)) {
      this.opts.logger.warn({ service: this.name, waiting: this.waiting.length }, 'backlog full: connection refused with 421');
      return refuse(socket, REFUSE_BUSY);
    }
    this.waiting.push(socket);
    this.pump();
  }

  /** Connections given to the process that its last status report does not count yet. */
  private unreportedOf(p: ServerProcess): number {
    return p.sent - p.received + p.assigned.length;
  }

  /** Connections on their way: assigned, or sent and not yet known to have arrived. */
  private inTransit(p: ServerProcess): number {
    return p.sent - arrived(p) + p.assigned.length;
  }

  private states(): ProcessState[] {
    const out: ProcessState[] = [];
    for (const p of this.procs.values()) {
      if (p.gone) continue;
      const unreported = this.unreportedOf(p);
      out.push({
        id: p.id,
        open: p.open + unreported,
        handoffs: this.inTransit(p),
        served: p.served + unreported,
        startedAt: p.startedAt,
        lastActive: p.lastActive,
        retiring: p.retiring,
        ready: p.ready,
        accepting: !this.shared || p.accepting,
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
      this.handOverNext(target);
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
    if (this.draining) return this.tickDraining();
    const now = Date.now();
    this.deliver(this.ledger.expire(now));
    const plan = housekeeping(this.limits, this.states(), now);
    for (const { id, reason } of plan.retire) {
      const p = this.procs.get(id)!;
      this.opts.logger.info({ pid: p.pid, service: this.name, reason, served: p.served }, 'retiring server process');
      p.retiring = true;
      this.waiting.unshift(...p.assigned.splice(0));
      this.maybeSendRetire(p);
    }
    // Shared accept: the spawn rule is kept here, from the processes' counts (hand-off: in pump()).
    const spawn = plan.spawn + (this.shared && plan.spawn === 0 ? spawnForLoad(this.limits, this.states()) : 0);
    if (spawn > 0 && this.spawnBlockedUntil <= now) {
      for (let i = 0; i < spawn; i++) this.spawn();
    } else if (spawn > 0) {
      this.schedulePump(this.spawnBlockedUntil - now);
    }
    this.pump();
  }

  /** Hands out what still waits, then retires every process whose hand-offs are done. */
  private tickDraining(): void {
    this.pump();
    if (this.waiting.length > 0) return;
    for (const p of this.procs.values()) {
      if (p.retiring || p.gone || p.assigned.length > 0 || p.sent !== arrived(p)) continue;
      p.retiring = true;
      this.maybeSendRetire(p);
    }
    for (const w of this.exitWaiters.splice(0)) w();
  }

  private spawn(): ServerProcess {
    const id = this.nextId++;
    const child = fork(this.opts.serverModule, [], {
      // The dispatcher keeps CAP_NET_BIND_SERVICE (when started as root) for its ports; a server process needs none.
      ...forkOptionsKeeping([]),
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
      acknowledged: 0,
      assigned: [],
      generation: this.generation,
      enqueueLatency: null,
      accepting: false,
      auth: null,
    };
    this.procs.set(id, p);
    this.processCountChanged();
    this.opts.logger.info({ pid: p.pid, service: this.name }, 'starting server process');
    const startDeadline = setTimeout(() => {
      if (p.ready || p.gone) return;
      p.fatal = `an SMTP server process of service ${this.name} did not start within ${SERVER_START_TIMEOUT_MS / 1000} s`;
      child.kill('SIGKILL');
    }, SERVER_START_TIMEOUT_MS);
    startDeadline.unref();
    child.once('exit', () => clearTimeout(startDeadline));
    child.on('message', (msg: FromServerProcess) => this.onMessage(p, msg));
    child.on('internalMessage', (msg: { cmd?: unknown } | null) => {
      if (msg?.cmd === NODE_HANDLE_ACK) this.onHandleAcknowledged(p);
    });
    child.on('error', (err) => this.opts.logger.warn({ err, pid: p.pid }, 'server process channel error'));
    child.on('exit', (code, signal) => this.onExit(p, code, signal));
    return p;
  }

  private onMessage(p: ServerProcess, msg: FromServerProcess): void {
    switch (msg?.type) {
      case 'ready':
        p.ready = true;
        this.startFailures = 0;
        // Before any connection: the limits and the addresses it must ask for, then (shared) the sockets.
        this.sendTo(p, { type: 'limits', limits: this.processLimits() });
        this.deliver(this.ledger.processReady(p.id));
        // It may have read the files before the last reload was applied.
        if (p.generation < this.generation) void this.askReload(p, this.generation);
        if (this.shared && !p.retiring && !this.draining) {
          p.accepting = true;
          for (const l of this.listeners.values()) this.sendListener(p, l);
        }
        this.warmUpProgress?.();
        this.handOverNext(p);
        this.tick();
        break;
      case 'resume':
        if (this.shared && !p.retiring && !this.draining && !this.shuttingDown) {
          p.accepting = true;
          for (const l of this.listeners.values()) this.sendListener(p, l);
        }
        break;
      case 'listening':
        this.listened.add(msg.key);
        this.warmUpProgress?.();
        break;
      case 'unlistened':
        this.answers.get(`${p.id}:unlisten:${msg.key}`)?.();
        break;
      case 'ip-acquire':
        this.deliver(this.ledger.acquire(p.id, msg.ip, msg.id, msg.have, Date.now()));
        break;
      case 'ip-count':
        this.deliver(this.ledger.census(p.id, msg.ip, msg.epoch, msg.count));
        break;
      case 'ip-release':
        this.deliver(this.ledger.release(p.id, msg.ip));
        break;
      case 'reloaded':
        if (msg.generation === p.generation) this.reloadWaiters.get(p.id)?.({ ok: msg.ok, error: msg.error });
        if (!msg.ok) this.opts.logger.error({ pid: p.pid, service: this.name, error: msg.error }, 'server process keeps its configuration');
        break;
      case 'status':
        if (msg.open !== p.open) p.lastActive = Date.now();
        p.open = msg.open;
        p.served = msg.served;
        p.received = msg.received;
        if (typeof msg.accepting === 'boolean') p.accepting = msg.accepting;
        if (isHistogramSnapshot(msg.enqueueLatency)) p.enqueueLatency = msg.enqueueLatency;
        if (msg.id !== undefined) this.answers.get(`${p.id}:count:${msg.id}`)?.();
        if (isAuthCounts(msg.auth)) p.auth = msg.auth;
        this.handOverNext(p);
        this.maybeSendRetire(p);
        this.tick();
        break;
      case 'fatal':
        p.fatal = msg.message;
        this.opts.logger.error({ pid: p.pid, service: this.name }, msg.message);
        break;
    }
  }

  /**
   * The child's Node received a passed descriptor: the next can go. Node sends this
   * acknowledgement for every passed handle (and waits for it before it passes the next one), so
   * the server process does not report each arrival itself; that cost a message and a wake-up of
   * both processes per connection. An internal message, not a documented event: if a Node
   * version stopped emitting it, the status reports (which count arrivals too) still confirm
   * hand-offs, late. test/integration/dispatcher-handle-ack.test.ts pins the behaviour.
   */
  private onHandleAcknowledged(p: ServerProcess): void {
    if (p.acknowledged < p.sent) p.acknowledged++;
    this.handOverNext(p);
    this.maybeSendRetire(p);
    if (this.waiting.length > 0) this.pump();
  }

  private onExit(p: ServerProcess, code: number | null, signal: NodeJS.Signals | null): void {
    p.gone = true;
    this.procs.delete(p.id);
    this.processCountChanged();
    this.totals.processExited(p.served, p.enqueueLatency, p.auth);
    this.reloadWaiters.get(p.id)?.({ ok: true }); // gone: its successor reads the new files
    for (const [key, answered] of this.answers) if (key.startsWith(`${p.id}:`)) answered();
    this.deliver(this.ledger.processGone(p.id));
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
  private handOverNext(p: ServerProcess): void {
    if (p.gone || !p.ready || p.retiring || p.sent !== arrived(p) || p.assigned.length === 0) return;
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
    if (!p.retiring || p.retireSent || p.gone || p.sent !== arrived(p) || p.assigned.length > 0) return;
    p.retireSent = true;
    if (!this.sendTo(p, { type: 'retire' })) p.child.kill('SIGTERM');
  }

  /** What the server processes are told of the service's limits. */
  private processLimits(): ProcessLimits {
    return {
      source: this.shared ? 'shared' : 'handoff',
      minConns: this.limits.minConns,
      maxConns: this.limits.maxConns,
      maxLifeConns: this.limits.maxLifeConns,
      perIpAllowance: this.ledger.allowance,
      mayGrow: this.procs.size < this.limits.maxProcs,
    };
  }

  private sendLimits(): void {
    const limits = this.processLimits();
    this.toldMayGrow = limits.mayGrow;
    for (const p of this.procs.values()) if (p.ready) this.sendTo(p, { type: 'limits', limits });
  }

  /** A process came or went: the others are told when that changes whether the service may grow. */
  private processCountChanged(): void {
    if (this.shared && this.procs.size < this.limits.maxProcs !== this.toldMayGrow) this.sendLimits();
  }

  /** Processes that may hold sessions (for the per-address count): every ready one, retiring ones too. */
  private holders(): number[] {
    return [...this.procs.values()].filter((p) => p.ready && !p.gone).map((p) => p.id);
  }

  /** Processes that accept from the shared sockets now. */
  private accepters(): ServerProcess[] {
    return this.shared ? [...this.procs.values()].filter((p) => p.ready && !p.retiring && !p.gone && p.accepting) : [];
  }

  /** Passes a shared listening socket to a process (Node keeps the dispatcher's copy open). */
  private sendListener(p: ServerProcess, l: Listener): void {
    if (!l.shared || p.gone || !p.child.connected) return;
    try {
      p.child.send({ type: 'listen', key: l.key, backlog: l.backlog } satisfies ToServerProcess, l.shared as unknown as net.Server, (err) => {
        if (err) this.opts.logger.warn({ err, pid: p.pid, service: this.name }, 'cannot pass the listening socket to a server process');
      });
    } catch (err) {
      this.opts.logger.warn({ err, pid: p.pid, service: this.name }, 'cannot pass the listening socket to a server process');
    }
  }

  /** Tells every ready process to stop accepting from these sockets; resolves when each has (or is gone). */
  private async unlisten(keys: readonly string[]): Promise<void> {
    if (!this.shared || keys.length === 0) return;
    const waits: Array<Promise<void>> = [];
    for (const p of this.procs.values()) {
      if (!p.ready || p.gone) continue;
      for (const key of keys) waits.push(this.awaitAnswer(p, `unlisten:${key}`, PROCESS_ANSWER_MS, { type: 'unlisten', key }));
    }
    await Promise.all(waits);
  }

  /** Sends `msg` and resolves when the process answers to `what` (or exits, or the time is up). */
  private awaitAnswer(p: ServerProcess, what: string, timeoutMs: number, msg: ToServerProcess): Promise<void> {
    const key = `${p.id}:${what}`;
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.answers.get(key) === done) this.answers.delete(key);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.answers.get(key)?.();
      this.answers.set(key, done);
      if (!this.sendTo(p, msg)) done();
    });
  }

  /** Carries out what the per-address ledger decided. */
  private deliver(sends: readonly LedgerSend[]): void {
    for (const { to, msg } of sends) {
      const p = this.procs.get(to);
      if (p) this.sendTo(p, msg);
    }
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

function isAuthCounts(v: unknown): v is AuthCounts {
  const c = v as AuthCounts | null;
  return typeof c === 'object' && c !== null && [c.succeeded, c.failed, c.refused].every((n) => Number.isInteger(n) && n >= 0);
}
