// One part the watcher supervises (the dispatcher or the job controller): a forked child with
// a pid file, started on request, restarted with a growing delay when it dies, stopped with
// SIGTERM (then SIGKILL after a deadline).
import { fork, type ChildProcess } from 'node:child_process';
import { unlinkSync } from 'node:fs';
import type { Logger } from '../common/logger.js';
import type { FromChild, ListenerInfo, ToDispatcher } from '../dispatcher/protocol.js';
import { nextRestartDelay } from './backoff.js';
import { removePid, writePid } from './pid-files.js';
import { forkOptionsKeeping } from '../common/service-user.js';
import type { Capability } from '../common/capabilities.js';

export type PartName = 'dispatcher' | 'job_controller';
export const PART_NAMES: readonly PartName[] = ['dispatcher', 'job_controller'];

export type PartState = 'stopped' | 'starting' | 'running' | 'stopping' | 'waiting';

export type StartResult = { ok: true } | { ok: false; message: string };

export interface PartStatus {
  name: PartName;
  state: PartState;
  pid: number | null;
  started: string | null;
  restarts: number;
  lastError: string | null;
}

export interface PartOptions {
  name: PartName;
  /** Compiled module to fork. */
  module: string;
  root: string;
  pidFile: string;
  /** The watcher's capabilities it keeps (when started as root), no other: the dispatcher's ports, the job controller's chown. */
  capabilities: readonly Capability[];
  /** A socket the part serves, removed when it is gone (a killed process leaves it behind). */
  socket?: string;
  logger: Logger;
  startTimeoutMs: number;
  stopTimeoutMs: number;
}

const LABEL: Record<PartName, string> = { dispatcher: 'dispatcher', job_controller: 'job controller' };

export class SupervisedPart {
  readonly name: PartName;
  state: PartState = 'stopped';
  listeners: ListenerInfo[] = [];
  private child: ChildProcess | null = null;
  private startedAt = 0;
  private wanted = false;
  private restartDelayMs = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private restarts = 0;
  private lastError: string | null = null;
  private starting: Promise<StartResult> | null = null;
  private exited: Promise<void> = Promise.resolve();
  private nextRequestId = 1;
  private readonly pending = new Map<number, (msg: FromChild | null) => void>();

  constructor(private readonly opts: PartOptions) {
    this.name = opts.name;
  }

  get label(): string {
    return LABEL[this.name];
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  status(): PartStatus {
    return {
      name: this.name,
      state: this.state,
      pid: this.state === 'running' || this.state === 'starting' || this.state === 'stopping' ? this.pid : null,
      started: this.state === 'running' ? new Date(this.startedAt).toISOString() : null,
      restarts: this.restarts,
      lastError: this.lastError,
    };
  }

  /**
   * Starts it now (also when a restart is pending) and from then on keeps it running.
   * When this start fails it stays stopped: the operator is told, and decides.
   */
  async start(): Promise<StartResult> {
    this.wanted = true;
    if (this.state === 'running') return { ok: true };
    if (this.starting) return this.starting;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    const result = await this.launch();
    if (!result.ok) {
      this.wanted = false;
      if (this.restartTimer) clearTimeout(this.restartTimer);
      this.restartTimer = null;
      this.state = 'stopped';
    }
    return result;
  }

  /** Stops it and does not restart it. */
  async stop(): Promise<void> {
    this.wanted = false;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    if (this.starting) await this.starting;
    const child = this.child;
    if (!child || this.state === 'stopped' || this.state === 'waiting') {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    child.kill('SIGTERM');
    const deadline = setTimeout(() => {
      this.opts.logger.warn({ part: this.name, pid: child.pid }, `${this.label} did not stop in ${this.opts.stopTimeoutMs / 1000} s; killing it`);
      child.kill('SIGKILL');
    }, this.opts.stopTimeoutMs);
    await this.exited;
    clearTimeout(deadline);
  }

  /** Asks the child (over IPC) and waits for the reply with the same id; null when it cannot answer. */
  request(msg: Omit<ToDispatcher, 'id'>, timeoutMs: number): Promise<FromChild | null> {
    const child = this.child;
    if (!child || this.state !== 'running' || !child.connected) return Promise.resolve(null);
    const id = this.nextRequestId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(null);
      }, timeoutMs);
      this.pending.set(id, (reply) => {
        clearTimeout(timer);
        this.pending.delete(id);
        resolve(reply);
      });
      try {
        child.send({ ...msg, id });
      } catch {
        this.pending.get(id)?.(null);
      }
    });
  }

  /** Sends a signal to the running child (SIGHUP: reopen the logs). False when none runs. */
  signal(signal: NodeJS.Signals): boolean {
    const child = this.child;
    if (!child || this.state === 'stopped' || this.state === 'waiting') return false;
    try {
      return child.kill(signal);
    } catch {
      return false;
    }
  }

  // ------------------------------------------------------------------ internals

  private launch(): Promise<StartResult> {
    this.state = 'starting';
    this.listeners = [];
    const child = fork(this.opts.module, [], {
      ...forkOptionsKeeping(this.opts.capabilities),
      env: { ...process.env, IMTA_ROOT: this.opts.root },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'json',
      // Its own process group: a Ctrl-C at the foreground watcher's terminal reaches the
      // watcher only, which then stops the parts in order.
      detached: true,
    });
    this.child = child;
    if (child.pid) writePid(this.opts.pidFile, child.pid);
    let fatal: string | null = null;
    let settle: (r: StartResult) => void = () => {};
    this.starting = new Promise<StartResult>((resolve) => (settle = resolve));
    const finishStart = (result: StartResult) => {
      if (!this.starting) return;
      clearTimeout(timer);
      this.starting = null;
      if (!result.ok) this.lastError = result.message;
      settle(result);
    };
    const timer = setTimeout(() => {
      fatal = `${this.label} did not start within ${this.opts.startTimeoutMs / 1000} s`;
      child.kill('SIGKILL');
    }, this.opts.startTimeoutMs);
    this.exited = new Promise<void>((resolve) => {
      child.on('exit', (code, signal) => {
        this.onExit(child, code, signal, fatal, finishStart);
        resolve();
      });
    });
    child.on('error', (err) => this.opts.logger.warn({ part: this.name, err }, `${this.label} channel error`));
    child.on('message', (msg: FromChild) => {
      if (msg?.type === 'ready' && this.state === 'starting') {
        this.state = 'running';
        this.startedAt = Date.now();
        this.listeners = msg.listeners ?? [];
        this.lastError = null;
        this.opts.logger.info({ part: this.name, pid: child.pid, listeners: msg.listeners }, `${this.label} ready`);
        finishStart({ ok: true });
      } else if (msg?.type === 'fatal') {
        fatal = msg.message;
        this.opts.logger.error({ part: this.name, pid: child.pid }, msg.message);
      } else if (msg?.type === 'processes' || msg?.type === 'reloaded') {
        this.pending.get(msg.id)?.(msg);
      }
    });
    return this.starting;
  }

  private onExit(
    child: ChildProcess,
    code: number | null,
    signal: NodeJS.Signals | null,
    fatal: string | null,
    finishStart: (r: StartResult) => void,
  ): void {
    const wasStarting = this.state === 'starting';
    const wasStopping = this.state === 'stopping';
    const upFor = this.state === 'running' ? Date.now() - this.startedAt : 0;
    this.child = null;
    this.state = 'stopped';
    removePid(this.opts.pidFile, child.pid);
    if (this.opts.socket) {
      try {
        unlinkSync(this.opts.socket);
      } catch {
        /* it removed it itself */
      }
    }
    for (const resolve of [...this.pending.values()]) resolve(null);
    const how = signal ? `signal ${signal}` : `code ${code}`;
    if (wasStarting) {
      finishStart({ ok: false, message: fatal ?? `${this.label} exited (${how}) while starting` });
    } else if (!wasStopping) {
      this.lastError = `${this.label} pid ${child.pid} exited (${how})`;
      this.opts.logger.warn({ part: this.name, pid: child.pid, code, signal }, this.lastError);
    } else {
      this.opts.logger.info({ part: this.name, pid: child.pid }, `${this.label} stopped`);
    }
    if (this.wanted && !wasStopping) this.scheduleRestart(upFor);
  }

  private scheduleRestart(upForMs: number): void {
    this.restartDelayMs = nextRestartDelay(this.restartDelayMs, upForMs);
    this.state = 'waiting';
    this.opts.logger.info({ part: this.name, delayMs: this.restartDelayMs }, `restarting ${this.label}`);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      this.restarts++;
      void this.launch();
    }, this.restartDelayMs);
  }
}
