// An SMTP server process ("tcp_smtp_server"): forked by the dispatcher for one service. Its
// connections come one of two ways (dispatcher.cnf ACCEPT_MODE): it accepts them itself from the
// listening sockets the dispatcher passed it once (shared-listeners.ts), stopping at MAX_CONNS
// and asking for the sockets again below it; or the dispatcher hands each one over. Either way
// each new socket goes through takeSocket() to the SMTP service. Reports its counts to the
// dispatcher (process-reports.ts says how soon) and when asked; counts MAX_CONNS_PER_IP with the
// dispatcher across the service's processes (client-limits.ts); retires (finish sessions, exit)
// or shuts down when told.
// On `reload` it loads the configuration again and builds a new service from it: new sessions
// get the new rewrite rules, channels and options, while sessions already open finish on the
// service (and configuration) they started with.
import type net from 'node:net';
import { instancePaths, resolveRoot } from '../common/instance.js';
import { createLogger, syncLogs, reopenLogsOnHangup } from '../common/logger.js';
import type { InstanceConfig } from '../config/types.js';
import { QueueStore } from '../queue/index.js';
import { dkimPrefixesFor } from '../dkim/plan.js';
import type { SmtpService } from './service.js';
import { REPORT_ARRIVAL_MS, REPORT_SHARED_MS, type FromServerProcess, type ProcessLimits, type ToServerProcess } from '../dispatcher/protocol.js';
import { ENQUEUE_LATENCY_BOUNDS, LatencyHistogram } from '../common/histogram.js';
import { PerIpGate, type PerIpArbiter } from './client-limits.js';
import { SharedListeners } from './shared-listeners.js';
import { mayAccept, reportUrgency } from './process-reports.js';
import { KdfGate } from '../directory/kdf-gate.js';
import { AuthFailures } from './auth-failures.js';
import { newAuthCounters } from './auth-stage.js';
import { defaultSaslOptions } from '../config/sasl-options.js';

// Before anything else: a SIGHUP (log rotation) must never kill a server process.
reopenLogsOnHangup();

/** When the dispatcher disappears (killed), sessions in progress get this long to finish. */
const ORPHAN_GRACE_MS = 60_000;
/** An ask of the per-address count that the dispatcher does not answer in this time is a no. */
const PER_IP_ASK_MS = 10_000;

const root = resolveRoot(undefined);
const paths = instancePaths(root);
const serviceName = process.env.TSUBAME_SERVICE ?? 'SMTP';
const defaultGraceMs = Number(process.env.TSUBAME_GRACE_MS ?? 2000) || 2000;
const logger = createLogger(paths.log, 'tcp_smtp_server');

/** The configuration new sessions use. */
let config: InstanceConfig | null = null;
// One store for the life of the process (its message ids and directory handles), laid out by
// the configuration in force.
const store = new QueueStore({
  queueDir: paths.queue,
  corruptDir: paths.corrupt,
  subdirs: (channel) => config?.imta.channelByName.get(channel.toLowerCase())?.subdirs ?? 0,
  // DKIM: the copies for `dkimsign` channels are signed once, while the message is written.
  prefixesFor: (drafts) => dkimPrefixesFor(config, drafts),
  logger,
});

/** The service new sessions go to. */
let service: SmtpService | null = null;
/** Services replaced by a reload, still holding sessions opened before it. */
const previous = new Set<SmtpService>();
let received = 0;
let served = 0;
/** Every message this process queued, over all its services (reported to the dispatcher for the metrics). */
const enqueueLatency = new LatencyHistogram(ENQUEUE_LATENCY_BOUNDS);
// SMTP AUTH, kept across reloads: one gate on password hashes per process, the failures counted
// per client address and login (each service built sets its limits), the outcomes for the metrics.
const kdfGate = new KdfGate();
const defaults = defaultSaslOptions();
const authFailures = new AuthFailures({ perAddress: defaults.failuresPerAddress, perUser: defaults.failuresPerUser, windowMs: defaults.windowMs });
const authCounters = newAuthCounters();
let retiring = false;
let stopping: Promise<void> | null = null;
let reloading: Promise<unknown> = Promise.resolve();
const early: Array<{ msg: ToServerProcess; socket: net.Socket | undefined }> = [];
/** The service's limits, as the dispatcher sends them before any connection. */
let limits: ProcessLimits = { source: 'handoff', minConns: 1, maxConns: Number.MAX_SAFE_INTEGER, maxLifeConns: 0, perIpAllowance: 0, mayGrow: true };

// MAX_CONNS_PER_IP, counted with the dispatcher across the service's processes.
let nextAsk = 1;
const asks = new Map<number, (ok: boolean) => void>();
const arbiter: PerIpArbiter = {
  ask: (ip, have) =>
    new Promise((resolve) => {
      const id = nextAsk++;
      const timer = setTimeout(() => answerAsk(id, false), PER_IP_ASK_MS);
      asks.set(id, (ok) => {
        clearTimeout(timer);
        resolve(ok);
      });
      send({ type: 'ip-acquire', ip, id, ...(have !== undefined ? { have } : {}) });
      if (!process.connected) answerAsk(id, false);
    }),
  released: (ip) => send({ type: 'ip-release', ip }),
  counted: (ip, epoch, count) => send({ type: 'ip-count', ip, epoch, count }),
};
const perIp = new PerIpGate(0, arbiter);

function answerAsk(id: number, ok: boolean): void {
  const answer = asks.get(id);
  asks.delete(id);
  answer?.(ok);
}

// Shared accept: the listening sockets the dispatcher passed.
const listeners = new SharedListeners(
  (socket) => takeSocket(socket),
  (key) => send({ type: 'listening', key }),
  logger,
);

function send(msg: FromServerProcess): void {
  if (!process.connected) return;
  try {
    process.send!(msg);
  } catch {
    /* the dispatcher is gone: 'disconnect' handles it */
  }
}

function openConnections(): number {
  let n = service?.openConnections() ?? 0;
  for (const s of previous) n += s.openConnections();
  return n;
}

let reportQueued = false;
let lazyReport: NodeJS.Timeout | null = null;
/** Several changes in one turn of the event loop make one report. */
function report(): void {
  if (reportQueued) return;
  reportQueued = true;
  setImmediate(() => {
    reportQueued = false;
    sendStatus();
    upkeep();
  });
}

/**
 * What a closed session may allow: a replaced service's close, a retiring process's exit. Not
 * left to the lazy report alone: a status asked for meanwhile (`imsimta process` polls) cancels
 * that report, and a retiring process would then never exit.
 */
function upkeep(): void {
  closeIdlePrevious();
  if (retiring && !stopping && openConnections() === 0) {
    // The dispatcher adds an exited process's last reported counts to the service's totals.
    sendStatus();
    void stop(0);
  }
}

function sendStatus(id?: number): void {
  if (lazyReport) clearTimeout(lazyReport);
  lazyReport = null;
  const accepting = limits.source === 'shared' ? { accepting: accepts() } : {};
  send({ type: 'status', open: openConnections(), served, received, enqueueLatency: enqueueLatency.snapshot(), auth: { ...authCounters }, ...accepting, ...(id !== undefined ? { id } : {}) });
}

/** A change goes with the next report, at the latest after REPORT_ARRIVAL_MS (hand-off) or REPORT_SHARED_MS. */
function reportSoon(): void {
  if (reportQueued || lazyReport) return;
  lazyReport = setTimeout(report, limits.source === 'shared' ? REPORT_SHARED_MS : REPORT_ARRIVAL_MS);
}

/** A session opened or closed: shared accept may stop or start again, and the dispatcher is told, now or soon. */
function changed(change: 'opened' | 'closed', openBefore: number): void {
  const acceptingBefore = accepts();
  updateAccepting();
  const urgency = reportUrgency(limits, change, openBefore, openConnections(), accepts() !== acceptingBefore);
  if (urgency === 'now') report(); // its upkeep() runs with it
  else {
    reportSoon();
    if (change === 'closed') setImmediate(upkeep);
  }
}

/** Shared accept: whether it takes connections now (below MAX_CONNS and MAX_LIFE_CONNS, not leaving). */
function accepts(): boolean {
  return mayAccept({ open: openConnections(), served }, limits, retiring || stopping !== null);
}

/** Shared accept: stops at MAX_CONNS (or MAX_LIFE_CONNS) at once, and asks for the sockets again below it. */
function updateAccepting(): void {
  if (limits.source !== 'shared') return;
  if (!accepts()) {
    listeners.pause();
  } else if (listeners.resumable) {
    listeners.unpause();
    send({ type: 'resume' });
  }
}

/** Every new socket, accepted here or handed over, reaches the service (and smtp-server) through here. */
function takeSocket(socket: net.Socket): void {
  const openBefore = openConnections();
  served++;
  try {
    service!.handle(socket);
  } catch {
    socket.destroy();
  }
  changed('opened', openBefore);
}

/** A replaced service whose last session ended is closed (its mail.log descriptor, its transcript). */
function closeIdlePrevious(): void {
  for (const s of previous) {
    if (s.openConnections() > 0) continue;
    previous.delete(s);
    void s.close(0);
  }
}

function stop(graceMs: number): Promise<void> {
  listeners.stop();
  stopping ??= (async () => {
    try {
      await Promise.all([service, ...previous].filter((s) => s !== null).map((s) => s.close(graceMs)));
      await store.close();
    } finally {
      syncLogs();
      process.exit(0);
    }
  })();
  return stopping;
}

/** Loads the configuration and builds a service on it; throws with the operator's line(s). */
async function build(): Promise<{ built: SmtpService; loaded: InstanceConfig }> {
  // Loaded here so that a service that cannot even load is reported like any start-up failure.
  const { loadConfigInForce } = await import('../config/in-force.js');
  const { createSmtpService } = await import('./service.js');
  // etc/ may hold an edit the watcher rejected: then the configuration in force is used.
  const { config: loaded, etcErrors } = loadConfigInForce(root);
  if (etcErrors) logger.warn({ errors: etcErrors }, 'etc/ has errors; serving with the configuration in force');
  const built = await createSmtpService({ root, service: serviceName, logger, config: loaded, store, enqueueLatency, perIp, kdfGate, authFailures, authCounters });
  // Arrivals are counted in takeSocket(); a closed session here.
  built.onChange((change) => {
    if (change === 'closed') changed('closed', openConnections() + 1);
  });
  return { built, loaded };
}

async function reload(generation: number): Promise<void> {
  try {
    const { built: next, loaded } = await build();
    if (stopping) {
      void next.close(0);
      return;
    }
    if (service) previous.add(service);
    service = next;
    config = loaded;
    logger.info({ service: serviceName, generation, sessionsOnOldConfig: openConnections() }, 'configuration reloaded');
    send({ type: 'reloaded', generation, ok: true });
    report();
  } catch (err) {
    const error = (err as Error).message;
    logger.error({ service: serviceName, generation, error }, 'reload failed; keeping the configuration in force');
    send({ type: 'reloaded', generation, ok: false, error });
  }
}

function onMessage(msg: ToServerProcess, socket: net.Socket | undefined): void {
  if (!service) return void early.push({ msg, socket });
  switch (msg?.type) {
    case 'connection':
      received++;
      // A socket the client closed while in transit arrives as null.
      if (socket) takeSocket(socket);
      else reportSoon();
      break;
    case 'limits':
      limits = msg.limits;
      perIp.setAllowance(limits.perIpAllowance);
      updateAccepting();
      report();
      break;
    case 'listen':
      // The handle comes as Node passed it (a raw TCP handle), in the place of `socket`.
      listeners.add(msg.key, socket, msg.backlog);
      break;
    case 'unlisten':
      listeners.remove(msg.key);
      send({ type: 'unlistened', key: msg.key });
      break;
    case 'count':
      sendStatus(msg.id);
      break;
    case 'ip-track':
      perIp.track(msg.ip, msg.epoch);
      break;
    case 'ip-untrack':
      perIp.untrack(msg.ip);
      break;
    case 'ip-answer':
      answerAsk(msg.id, msg.ok);
      break;
    case 'retire':
      retiring = true;
      listeners.stop();
      report();
      break;
    case 'shutdown':
      void stop(msg.graceMs);
      break;
    case 'reload': {
      const generation = msg.generation;
      reloading = reloading.then(() => reload(generation));
      break;
    }
  }
}

process.on('message', (msg: ToServerProcess, socket: net.Socket | undefined) => onMessage(msg, socket));
process.on('disconnect', () => {
  // The dispatcher is gone: its successor binds the ports again, so let go of them at once.
  listeners.stop();
  for (const id of [...asks.keys()]) answerAsk(id, false);
  void stop(ORPHAN_GRACE_MS);
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void stop(defaultGraceMs));

try {
  const first = await build();
  service = first.built;
  config = first.loaded;
} catch (err) {
  send({ type: 'fatal', message: `SMTP service ${serviceName}: ${(err as Error).message}` });
  syncLogs();
  process.exit(1);
}
send({ type: 'ready' });
for (const { msg, socket } of early.splice(0)) onMessage(msg, socket);
