// An SMTP server process ("tcp_smtp_server"): forked by the dispatcher for one service, fed
// accepted sockets over IPC, each handed to the SMTP service. Reports its counts to the
// dispatcher on every change; retires (finish sessions, exit) or shuts down when told.
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
import { REPORT_ARRIVAL_MS, type FromServerProcess, type ToServerProcess } from '../dispatcher/protocol.js';
import { ENQUEUE_LATENCY_BOUNDS, LatencyHistogram } from '../common/histogram.js';
import { KdfGate } from '../directory/kdf-gate.js';
import { AuthFailures } from './auth-failures.js';
import { newAuthCounters } from './auth-stage.js';
import { defaultSaslOptions } from '../config/sasl-options.js';

// Before anything else: a SIGHUP (log rotation) must never kill a server process.
reopenLogsOnHangup();

/** When the dispatcher disappears (killed), sessions in progress get this long to finish. */
const ORPHAN_GRACE_MS = 60_000;

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
    if (lazyReport) clearTimeout(lazyReport);
    lazyReport = null;
    send({ type: 'status', open: openConnections(), served, received, enqueueLatency: enqueueLatency.snapshot(), auth: { ...authCounters } });
    closeIdlePrevious();
    if (retiring && !stopping && openConnections() === 0) void stop(0);
  });
}

/** An arrival goes with the next report, at the latest after REPORT_ARRIVAL_MS. */
function reportSoon(): void {
  if (reportQueued || lazyReport) return;
  lazyReport = setTimeout(report, REPORT_ARRIVAL_MS);
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
  const built = await createSmtpService({ root, service: serviceName, logger, config: loaded, store, enqueueLatency, kdfGate, authFailures, authCounters });
  // Arrivals are reported from the `connection` message (reportSoon); a closed session at once.
  built.onChange((change) => {
    if (change === 'closed') report();
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
      if (socket) {
        served++;
        try {
          service.handle(socket);
        } catch {
          socket.destroy();
        }
      }
      reportSoon();
      break;
    case 'retire':
      retiring = true;
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
process.on('disconnect', () => void stop(ORPHAN_GRACE_MS));
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
