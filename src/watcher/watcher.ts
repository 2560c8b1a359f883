// The watcher: one per instance. Owns the dispatcher and the job controller as child
// processes, restarts them when they die, and answers the commands on run/watcher.sock.
// It also watches etc/ and applies a valid new configuration to the running parts (a broken
// one is logged with file:line and changes nothing), passes SIGHUP on to its children (logs
// reopened, for logrotate), and rotates logs that grow past LOG_MAX_SIZE.
import { mkdirSync, readdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type net from 'node:net';
import { instancePaths } from '../common/instance.js';
import { createLogger, syncLogs, reopenLogs, type Logger } from '../common/logger.js';
import { askJobController } from '../job-controller/client.js';
import type { InstanceConfig } from '../config/types.js';
import { loadInstanceConfigOrThrow } from '../config/load.js';
import { refusedReload, type DispatcherReloadResult } from '../dispatcher/protocol.js';
import { validateConfig } from './load-config.js';
import { recordConfigInForce, removeConfigInForce } from '../config/in-force.js';
import { claimPidFile, pidFile, reapLeftovers, removePid } from './pid-files.js';
import { PART_NAMES, SupervisedPart, type PartName, type StartResult } from './part.js';
import { describeListeners, serveControlSocket, type ControlReply, type ControlRequest, type ProcessRow, type ReloadCounts, type ReloadReply, type StatusReply } from './control.js';
import { watchConfig, type ConfigWatch } from './config-watch.js';
import { etcFingerprint, reloadFailures, reloadSummary, withEarlierChanges, type JobControllerOutcome } from './reload.js';
import { isLiveLog, logsToRotate, parseLogNumber, rotationRenames, type LogFileEntry } from '../common/log-files.js';
import { WatcherMetrics } from './metrics-hook.js';
import { unbindablePort } from './port-check.js';
import type { ReloadView } from '../metrics/snapshot.js';

export interface WatcherOptions {
  root: string;
  /** The parts to start now. */
  parts: readonly PartName[];
  /** Called once they are all up, with the line to show the operator. */
  onStarted(line: string): void;
  startTimeoutMs?: number;
  /** Watch etc/ and reload on change (default true). */
  watchConfig?: boolean;
  /** How often log sizes are compared with LOG_MAX_SIZE (ms). */
  logCheckMs?: number;
}

type ReloadTrigger = 'watch' | 'command';

/** How long the dispatcher may take to apply a reload (the job controller's time is in its protocol.ts). */
const PART_RELOAD_TIMEOUT_MS = 60_000;

/** Start-up failed; everything it had started is stopped again. `.message` is the operator's line. */
class WatcherStartError extends Error {}

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
  let watcher: Watcher | null = null;
  try {
    for (const { role, pid } of await reapLeftovers(paths)) logger.warn({ role, pid }, 'stopped a process left behind by a previous watcher');
    const initial = validateConfig(opts.root);
    if (!initial.ok) throw new WatcherStartError(initial.errors.join('\n'));
    recordConfigInForce(opts.root);
    watcher = new Watcher(opts, logger, initial.config);
    const w = watcher;
    control = await serveControlSocket(paths.controlSocket, (req) => w.handle(req));
    await watcher.startInitial();
    await watcher.finished;
  } finally {
    await watcher?.closeWatches();
    control?.close();
    removeConfigInForce(opts.root);
    removePid(ownPidFile, process.pid);
    syncLogs();
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
  /** The last configuration applied (LOG_MAX_SIZE comes from it). */
  private config: InstanceConfig;
  /** etc/ as last looked at by a reload (applied or rejected): an edit back to it is no change. */
  private lastFingerprint: string;
  /** The listener changes of the last reload the watcher made on an edit, for the command that follows it. */
  private lastWatchChanges: { fingerprint: string; added: DispatcherReloadResult['added']; removed: DispatcherReloadResult['removed'] } | null = null;
  private configWatch: ConfigWatch | null = null;
  private reloadsInHand = 0;
  private readonly reloadCounts = { watched: 0, commanded: 0, rejected: 0 };
  private logTimer: NodeJS.Timeout | null = null;
  private logSizeProblem: string | null = null;
  /** METRICS_PORT: the metrics and status endpoint (metrics-hook.ts). */
  private readonly metrics: WatcherMetrics;
  /** The last configuration change handled (status page, metrics): the start until an edit or a reload. */
  private lastReload: ReloadView;

  constructor(private readonly opts: WatcherOptions, private readonly logger: Logger, config: InstanceConfig) {
    this.config = config;
    this.paths = instancePaths(opts.root);
    this.metrics = new WatcherMetrics({
      root: opts.root,
      logger,
      parts: () => PART_NAMES.map((n) => this.parts[n].status()),
      listeners: () => this.parts.dispatcher.listeners,
      dispatcher: (timeoutMs) => this.parts.dispatcher.request({ type: 'processes' }, timeoutMs),
      reload: () => this.lastReload,
    });
    this.lastReload = { at: this.startedAt, trigger: 'start', ok: true, errors: [], lastSuccess: this.startedAt };
    this.finished = new Promise((resolve) => (this.finish = resolve));
    const common = { root: opts.root, logger, startTimeoutMs: opts.startTimeoutMs ?? 30_000 };
    this.parts = {
      dispatcher: new SupervisedPart({ ...common, name: 'dispatcher', module: MODULES.dispatcher, capabilities: ['net_bind_service'], pidFile: pidFile(this.paths, 'dispatcher'), stopTimeoutMs: 30_000 }),
      job_controller: new SupervisedPart({
        ...common,
        name: 'job_controller',
        module: MODULES.job_controller,
        capabilities: ['chown'],
        pidFile: pidFile(this.paths, 'job_controller'),
        socket: this.paths.jobControllerSocket,
        stopTimeoutMs: 60_000,
      }),
    };
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void this.stopEverything());
    // logger.ts reopens the watcher's own logs on SIGHUP; the parts get the signal too.
    process.on('SIGHUP', () => this.signalParts('SIGHUP'));
    this.lastFingerprint = etcFingerprint(this.paths.etc);
  }

  /** Starts the parts asked for; a stop request or signal meanwhile waits for this to finish. */
  startInitial(): Promise<void> {
    return this.exclusive(async () => {
      // Watching starts first: an edit made while the parts start is applied once they run.
      if (this.opts.watchConfig !== false) {
        this.configWatch = await watchConfig(this.paths.etc, this.logger, (files) => void this.reload('watch', files));
        this.lastFingerprint = etcFingerprint(this.paths.etc);
      }
      this.logTimer = setInterval(() => this.rotateLargeLogs(), this.opts.logCheckMs ?? 1000);
      this.logTimer.unref();
      const failure = await this.startParts(this.opts.parts);
      if (failure) {
        await this.stopParts();
        throw new WatcherStartError(failure);
      }
      // Mail runs without the endpoint; the operator still hears of it where he started tsubame.
      const metricsProblem = await this.metrics.apply(this.config);
      this.logger.info({ parts: this.opts.parts }, 'tsubame started');
      const started = `tsubame started: ${this.summary(this.opts.parts)} (watcher pid ${process.pid})`;
      this.opts.onStarted(metricsProblem ? `${started}\nwarning: ${metricsProblem}` : started);
    });
  }

  /** A request of the control socket (validated by parseControlRequest). */
  async handle(req: ControlRequest): Promise<ControlReply> {
    const part = 'part' in req ? req.part : undefined;
    const names = part ? [part] : [...PART_NAMES];
    switch (req.op) {
      case 'status':
        return this.status();
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
          // A port the new configuration cannot bind would leave the whole SMTP service down.
          const unbindable = names.includes('dispatcher') ? await unbindablePort(this.config.dispatcher, this.parts.dispatcher.listeners) : null;
          if (unbindable) return { ok: false, error: `${unbindable}: nothing restarted, the running dispatcher keeps its ports` };
          await this.stopParts(names);
          const failure = await this.startParts(names);
          return failure ? { ok: false, error: failure } : { ok: true, message: `restarted: ${this.summary(names)}` };
        });
      case 'reload':
        return this.reload('command', []);
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
    }
  }

  /** Stops watching etc/ and log sizes. */
  async closeWatches(): Promise<void> {
    if (this.logTimer) clearInterval(this.logTimer);
    this.logTimer = null;
    const watch = this.configWatch;
    this.configWatch = null;
    await watch?.close();
    await this.metrics.close();
  }

  /** Stops the parts, then lets runWatcher return (after the reply in hand is written). */
  stopEverything(): Promise<void> {
    this.stopping ??= this.exclusive(async () => {
      await this.closeWatches();
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

  /**
   * Validates etc/ and applies it to the running parts: the dispatcher (ports, limits, and the
   * SMTP server processes it tells), then the job controller. Rejected with every error as
   * file:line when the files are wrong; the parts keep their configuration then.
   */
  private reload(trigger: ReloadTrigger, files: string[]): Promise<ReloadReply> {
    this.reloadsInHand++;
    return this.exclusive(() => this.applyReload(trigger, files)).finally(() => this.reloadsInHand--);
  }

  private async applyReload(trigger: ReloadTrigger, files: string[]): Promise<ReloadReply> {
    const refuse = (errors: string[]): ReloadReply => ({ ok: false, error: errors.join('\n'), errors });
    if (this.stopping) return refuse(['tsubame is stopping']);
    const fingerprint = etcFingerprint(this.paths.etc);
    if (trigger === 'watch' && fingerprint === this.lastFingerprint) {
      this.logger.debug({ trigger, files }, 'configuration files touched but not changed');
      return { ok: true, message: 'configuration unchanged' };
    }
    this.lastFingerprint = fingerprint;
    const validation = validateConfig(this.opts.root);
    if (!validation.ok) {
      this.noteReload(trigger, validation.errors);
      this.reloadCounts.rejected++;
      this.logger.error({ trigger, files, errors: validation.errors }, `configuration rejected, the running instance keeps its last good configuration: ${validation.errors[0]}`);
      return refuse(validation.errors);
    }
    const config = validation.config;
    for (const warning of validation.warnings) this.logger.warn({ trigger }, warning);

    let dispatcher: DispatcherReloadResult | null = null;
    const d = this.parts.dispatcher;
    if (d.state === 'running') {
      const reply = await d.request({ type: 'reload' }, PART_RELOAD_TIMEOUT_MS);
      if (reply?.type === 'reloaded') {
        dispatcher = reply;
        d.listeners = reply.listeners;
      } else {
        dispatcher = refusedReload('the dispatcher did not answer', d.listeners);
      }
      if (!dispatcher.ok) {
        // Nothing changed in the dispatcher: the job controller keeps its configuration too.
        this.reloadCounts.rejected++;
        const errors = reloadFailures({ dispatcher, jobController: { state: 'not running' } });
        this.noteReload(trigger, errors);
        this.logger.error({ trigger, files, errors }, `configuration not applied, the running instance keeps its last good configuration: ${errors[0]}`);
        return refuse(errors);
      }
    }

    let jobController: JobControllerOutcome = { state: 'not running' };
    if (this.parts.job_controller.state === 'running') {
      try {
        const reply = await askJobController(this.paths.jobControllerSocket, { op: 'reload' });
        jobController = !reply ? { state: 'not running' } : reply.ok ? { state: 'reloaded' } : { state: 'failed', error: reply.error || 'no reason given' };
      } catch (err) {
        jobController = { state: 'failed', error: (err as Error).message };
      }
    }

    this.config = config;
    recordConfigInForce(this.opts.root);
    await this.metrics.apply(config);
    this.logSizeProblem = null;
    // An operator who edits a file and runs `imsimta reload` is told what the edit changed even
    // when the watcher applied it first.
    if (trigger === 'watch') {
      this.lastWatchChanges = dispatcher ? { fingerprint, added: dispatcher.added, removed: dispatcher.removed } : null;
    } else {
      if (dispatcher && this.lastWatchChanges?.fingerprint === fingerprint) dispatcher = withEarlierChanges(dispatcher, this.lastWatchChanges);
      this.lastWatchChanges = null;
    }
    const outcome = { config, dispatcher, jobController };
    const summary = reloadSummary(outcome);
    const failures = reloadFailures(outcome);
    this.noteReload(trigger, failures);
    if (failures.length > 0) {
      this.logger.error({ trigger, files, summary, errors: failures }, `configuration partly applied: ${failures[0]}`);
      return { ok: false, error: [summary, ...failures].join('\n'), errors: failures };
    }
    if (trigger === 'watch') this.reloadCounts.watched++;
    else this.reloadCounts.commanded++;
    this.logger.info({ trigger, files, summary }, 'configuration reloaded');
    return { ok: true, message: summary };
  }

  /** Keeps the outcome of a configuration change for the status page and the metrics: applied when there are no errors. */
  private noteReload(trigger: ReloadTrigger, errors: string[]): void {
    const at = new Date().toISOString();
    const ok = errors.length === 0;
    this.lastReload = { at, trigger, ok, errors, lastSuccess: ok ? at : this.lastReload.lastSuccess };
  }

  private reloadStatus(): ReloadCounts {
    return { ...this.reloadCounts, pending: Boolean(this.configWatch?.pending) || this.reloadsInHand > 0 };
  }

  /** Passes a signal to the running parts (SIGHUP: they reopen their logs and pass it on). */
  private signalParts(signal: NodeJS.Signals): void {
    for (const name of PART_NAMES) this.parts[name].signal(signal);
  }

  /** LOG_MAX_SIZE: logs past it are renamed (mail.log → mail.log.1 …), then everyone reopens. */
  private rotateLargeLogs(): void {
    const setting = parseLogNumber('LOG_MAX_SIZE', this.config.options.raw.LOG_MAX_SIZE);
    if (setting.problem) {
      if (this.logSizeProblem !== setting.problem) this.logger.warn(`option.dat: ${setting.problem}; size-based log rotation is off`);
      this.logSizeProblem = setting.problem;
      return;
    }
    if (!setting.value) return;
    let names: string[];
    try {
      names = readdirSync(this.paths.log);
    } catch {
      return;
    }
    const entries: LogFileEntry[] = [];
    // Only live logs can be rotated: rotated copies and the rest of log/ are not looked at every second.
    for (const name of names.filter(isLiveLog)) {
      try {
        const st = statSync(join(this.paths.log, name));
        if (st.isFile()) entries.push({ name, size: st.size, mtimeMs: st.mtimeMs });
      } catch {
        /* gone meanwhile */
      }
    }
    const rotated: Array<{ file: string; size: number }> = [];
    for (const live of logsToRotate(entries, setting.value)) {
      try {
        for (const { from, to } of rotationRenames(live, names)) renameSync(join(this.paths.log, from), join(this.paths.log, to));
        rotated.push({ file: live, size: entries.find((e) => e.name === live)!.size });
      } catch (err) {
        this.logger.error({ file: live, err: (err as Error).message }, 'cannot rotate log');
      }
    }
    if (rotated.length === 0) return;
    reopenLogs();
    this.signalParts('SIGHUP');
    for (const r of rotated) this.logger.info({ ...r, maxSize: setting.value }, `log rotated: ${r.file} → ${r.file}.1`);
  }

  /** Null when etc/ is valid (and then the watcher's own settings follow it), else the lines to show. */
  private async configProblem(): Promise<string | null> {
    try {
      this.config = loadInstanceConfigOrThrow(this.opts.root);
      recordConfigInForce(this.opts.root);
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
      reloads: this.reloadStatus(),
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
          rows.push({
            role: 'smtp_server',
            pid: p.pid,
            service: p.service,
            connections: p.connections,
            max_conns: p.maxConns,
            served: p.served,
            ready: p.ready,
            retiring: p.retiring,
            started: p.started,
            ...(p.accepting !== undefined ? { accepting: p.accepting } : {}),
          });
        }
      }
    }
    const jc = this.parts.job_controller;
    const jcStatus = jc.status();
    if (jcStatus.pid !== null) {
      const row: ProcessRow = { role: 'job_controller', pid: jcStatus.pid, state: jcStatus.state, started: jcStatus.started };
      rows.push(row);
      try {
        const reply = await askJobController(this.paths.jobControllerSocket, { op: 'status' });
        // A queue scan under way (the start-up scan of a large queue): imsimta process shows it.
        if (reply?.ok && reply.scan) row.scan = reply.scan;
        // A farm's node: which one this is, and whether it reaches Redis.
        if (reply?.ok && reply.farm) Object.assign(row, { node: reply.farm.node, redis: reply.farm.redis });
        if (reply?.ok && Array.isArray(reply.jobs)) {
          for (const job of reply.jobs) rows.push({ ...job, role: 'job', pid: typeof job.pid === 'number' ? job.pid : null });
        }
      } catch (err) {
        this.logger.warn({ err }, 'job controller did not answer a status request');
      }
    }
    return rows;
  }
}
