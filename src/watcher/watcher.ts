// The watcher: one per instance. Owns the dispatcher and the job controller as child
// processes, restarts them when they die, and answers the commands on run/watcher.sock.
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type net from 'node:net';
import { instancePaths } from '../common/instance.js';
import { createLogger, flushLogs, type Logger } from '../common/logger.js';
import { requestJson, serveJsonSocket, type JsonObject } from '../common/ipc-socket.js';
import { loadConfigOrThrow } from './load-config.js';
import { claimPidFile, pidFile, reapLeftovers, removePid } from './pid-files.js';
import { PART_NAMES, SupervisedPart, type PartName, type StartResult } from './part.js';
import { describeListeners, type ProcessRow, type StatusReply } from './control.js';

export interface WatcherOptions {
  root: string;
  /** The parts to start now. */
  parts: readonly PartName[];
  /** Called once they are all up, with the line to show the operator. */
  onStarted(line: string): void;
  startTimeoutMs?: number;
}

/** Start-up failed; everything it had started is stopped again. `.message` is the operator's line. */
export class WatcherStartError extends Error {}

const MODULES: Record<PartName, string> = {
  dispatcher: fileURLToPath(new URL('../dispatcher/main.js', import.meta.url)),
  job_controller: fileURLToPath(new URL('../job-controller/main.js', import.meta.url)),
};

/** Runs the watcher until it is told to stop (control socket or SIGTERM/SIGINT). */
export async function runWatcher(opts: WatcherOptions): Promise<void> {
  const paths = instancePaths(opts.root);
  mkdirSync(paths.run, { recursive: true });
  mkdirSync(paths.log, { recursive: true });
  const ownPidFile = pidFile(paths, 'watcher');
  const holder = claimPidFile(ownPidFile, 'watcher', process.pid);
  if (holder !== null) throw new WatcherStartError(`tsubame is already running (watcher pid ${holder})`);
  const logger = createLogger(paths.log, 'watcher');
  let control: net.Server | null = null;
  try {
    for (const { role, pid } of await reapLeftovers(paths)) logger.warn({ role, pid }, 'stopped a process left behind by a previous watcher');
    const watcher = new Watcher(opts, logger);
    control = await serveJsonSocket(paths.controlSocket, (req) => watcher.handle(req));
    await watcher.startInitial();
    await watcher.finished;
  } finally {
    control?.close();
    removePid(ownPidFile, process.pid);
    flushLogs();
  }
}

class Watcher {
  readonly finished: Promise<void>;
  private finish: () => void = () => {};
  private readonly paths;
  private readonly parts: Record<PartName, SupervisedPart>;
  private readonly startedAt = new Date().toISOString();
  private stopping: Promise<void> | null = null;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: WatcherOptions, private readonly logger: Logger) {
    this.paths = instancePaths(opts.root);
    this.finished = new Promise((resolve) => (this.finish = resolve));
    const common = { root: opts.root, logger, startTimeoutMs: opts.startTimeoutMs ?? 30_000 };
    this.parts = {
      dispatcher: new SupervisedPart({ ...common, name: 'dispatcher', module: MODULES.dispatcher, pidFile: pidFile(this.paths, 'dispatcher'), stopTimeoutMs: 30_000 }),
      job_controller: new SupervisedPart({
        ...common,
        name: 'job_controller',
        module: MODULES.job_controller,
        pidFile: pidFile(this.paths, 'job_controller'),
        socket: this.paths.jobControllerSocket,
        stopTimeoutMs: 60_000,
      }),
    };
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void this.stopEverything());
  }

  /** Starts the parts asked for; a stop request or signal meanwhile waits for this to finish. */
  startInitial(): Promise<void> {
    return this.exclusive(async () => {
      const failure = await this.startParts(this.opts.parts);
      if (failure) {
        await this.stopParts();
        throw new WatcherStartError(failure);
      }
      this.logger.info({ parts: this.opts.parts }, 'tsubame started');
      this.opts.onStarted(`tsubame started: ${this.summary(this.opts.parts)} (watcher pid ${process.pid})`);
    });
  }

  async handle(req: JsonObject): Promise<JsonObject> {
    const part = req.part as PartName | undefined;
    if (part !== undefined && !PART_NAMES.includes(part)) return { ok: false, error: `unknown part "${String(part)}" (dispatcher or job_controller)` };
    const names = part ? [part] : [...PART_NAMES];
    switch (req.op) {
      case 'status':
        return this.status() as unknown as JsonObject;
      case 'processes':
        return { ok: true, processes: await this.processes() };
      case 'start':
        return this.exclusive(async () => {
          if (this.stopping) return { ok: false, error: 'tsubame is stopping' };
          const problem = await this.configProblem();
          if (problem) return { ok: false, error: problem };
          const failure = await this.startParts(names);
          return failure ? { ok: false, error: failure } : { ok: true, message: `started: ${this.summary(names)}` };
        });
      case 'restart':
        return this.exclusive(async () => {
          if (this.stopping) return { ok: false, error: 'tsubame is stopping' };
          // A running part keeps its configuration when the new one is wrong.
          const problem = await this.configProblem();
          if (problem) return { ok: false, error: problem };
          await this.stopParts(names);
          const failure = await this.startParts(names);
          return failure ? { ok: false, error: failure } : { ok: true, message: `restarted: ${this.summary(names)}` };
        });
      case 'stop':
        if (part) {
          return this.exclusive(async () => {
            const p = this.parts[part];
            const wasRunning = p.state !== 'stopped';
            await p.stop();
            return { ok: true, message: wasRunning ? `${p.label} stopped` : `${p.label} is not running` };
          });
        }
        await this.stopEverything();
        return { ok: true, pid: process.pid, message: 'tsubame stopped' };
      default:
        return { ok: false, error: `unknown request "${String(req.op)}"` };
    }
  }

  /** Stops the parts, then lets runWatcher return (after the reply in hand is written). */
  stopEverything(): Promise<void> {
    this.stopping ??= this.exclusive(async () => {
      this.logger.info('tsubame stopping');
      await this.stopParts();
      this.logger.info('tsubame stopped');
      setImmediate(this.finish);
    });
    return this.stopping;
  }

  // ------------------------------------------------------------------ internals

  /** Runs the requests that start or stop something one at a time. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => {});
    return run;
  }

  private async configProblem(): Promise<string | null> {
    try {
      await loadConfigOrThrow(this.opts.root);
      return null;
    } catch (err) {
      return (err as Error).message;
    }
  }

  /** Starts parts at once; returns the first failure's line, or null. */
  private async startParts(names: readonly PartName[]): Promise<string | null> {
    const results: StartResult[] = await Promise.all(names.map((n) => this.parts[n].start()));
    const failed = results.find((r): r is { ok: false; message: string } => !r.ok);
    return failed ? failed.message : null;
  }

  /** The dispatcher first (no new mail), then the job controller (which may still get notices). */
  private async stopParts(names: readonly PartName[] = PART_NAMES): Promise<void> {
    if (names.includes('dispatcher')) await this.parts.dispatcher.stop();
    if (names.includes('job_controller')) await this.parts.job_controller.stop();
  }

  private summary(names: readonly PartName[]): string {
    const out: string[] = [];
    if (names.includes('dispatcher')) out.push(describeListeners(this.parts.dispatcher.listeners) || 'dispatcher (no ports)');
    if (names.includes('job_controller')) out.push(`job controller pid ${this.parts.job_controller.pid}`);
    return out.join('; ');
  }

  private status(): StatusReply {
    return {
      ok: true,
      pid: process.pid,
      root: this.opts.root,
      parts: { dispatcher: this.parts.dispatcher.status(), job_controller: this.parts.job_controller.status() },
      listeners: this.parts.dispatcher.listeners,
    };
  }

  private async processes(): Promise<ProcessRow[]> {
    const rows: ProcessRow[] = [{ role: 'watcher', pid: process.pid, started: this.startedAt }];
    const d = this.parts.dispatcher;
    const dStatus = d.status();
    if (dStatus.pid !== null) {
      const row: ProcessRow = { role: 'dispatcher', pid: dStatus.pid, state: dStatus.state, started: dStatus.started };
      rows.push(row);
      const reply = await d.request({ type: 'processes' }, 3000);
      if (reply?.type === 'processes') {
        row.waiting = reply.waiting;
        for (const p of reply.processes) {
          rows.push({ role: 'smtp_server', pid: p.pid, service: p.service, connections: p.connections, served: p.served, ready: p.ready, retiring: p.retiring, started: p.started });
        }
      }
    }
    const jc = this.parts.job_controller;
    const jcStatus = jc.status();
    if (jcStatus.pid !== null) {
      rows.push({ role: 'job_controller', pid: jcStatus.pid, state: jcStatus.state, started: jcStatus.started });
      try {
        const reply = await requestJson(this.paths.jobControllerSocket, { op: 'status' }, 3000);
        const jobs = reply?.jobs;
        if (Array.isArray(jobs)) {
          for (const job of jobs as JsonObject[]) rows.push({ ...job, role: 'job', pid: typeof job.pid === 'number' ? job.pid : null });
        }
      } catch (err) {
        this.logger.warn({ err }, 'job controller did not answer a status request');
      }
    }
    return rows;
  }
}
