// The dispatcher process: forked by the watcher. Binds every service port of dispatcher.cnf,
// then says {type:'ready', listeners}; a bind or config failure is one {type:'fatal'} line.
// {type:'reload'} applies the configuration on disk without dropping a session; SIGHUP is
// passed on to the SMTP server processes (logs reopened). SIGTERM (or the watcher going
// away) stops it gracefully.
import { fileURLToPath } from 'node:url';
import { instancePaths, resolveRoot } from '../common/instance.js';
import { createLogger, syncLogs } from '../common/logger.js';
import { loadInstanceConfigOrThrow } from '../config/load.js';
import { loadConfigInForce } from '../config/in-force.js';
import { ServiceDispatcher, type StagedUpdate } from './service-dispatcher.js';
import { planServices } from './reload-plan.js';
import type { InstanceConfig } from '../config/types.js';
import { refusedReload, type DispatcherReloadResult, type FromChild, type ListenerInfo, type ToDispatcher } from './protocol.js';

const root = resolveRoot(undefined);
const paths = instancePaths(root);
const logger = createLogger(paths.log, 'dispatcher');
const serverModule = fileURLToPath(new URL('../smtp-server/main.js', import.meta.url));

function send(msg: FromChild): void {
  if (!process.connected) return;
  try {
    process.send!(msg);
  } catch {
    /* the watcher is gone */
  }
}

function fatal(message: string): never {
  logger.error(message);
  syncLogs();
  send({ type: 'fatal', message });
  process.exit(1);
}

let dispatchers: ServiceDispatcher[] = [];
/** Services removed by a reload, finishing their sessions. */
const draining = new Set<ServiceDispatcher>();
let stopping: Promise<void> | null = null;
let reloading: Promise<unknown> = Promise.resolve();

function stop(): Promise<void> {
  stopping ??= (async () => {
    logger.info('dispatcher stopping');
    await Promise.all([...dispatchers, ...draining].map((d) => d.shutdown()));
    logger.info('dispatcher stopped');
    syncLogs();
    process.exit(0);
  })();
  return stopping;
}

function allListeners(): ListenerInfo[] {
  return dispatchers.flatMap((d) => d.listenerInfo());
}

/** Applies dispatcher.cnf and tells the server processes to load imta.cnf and option.dat again. */
async function reload(): Promise<DispatcherReloadResult> {
  const unchanged = (error: string): DispatcherReloadResult => {
    logger.error({ error }, 'reload refused; keeping the configuration in force');
    return refusedReload(error, allListeners());
  };
  if (stopping) return unchanged('the dispatcher is stopping');
  let config: InstanceConfig;
  try {
    config = loadInstanceConfigOrThrow(root);
  } catch (err) {
    return unchanged((err as Error).message);
  }
  logServicesOff(config);
  const next = config.dispatcher.services;
  if (next.length === 0) return unchanged(`${paths.dispatcherCnf}:0: no [SERVICE=…] section: nothing to listen on`);
  const plan = planServices(
    dispatchers.map((d) => d.name),
    dispatchers.flatMap((d) => d.boundListeners()),
    next,
    new Map(dispatchers.map((d) => [d.name.toUpperCase(), d.acceptMode])),
  );
  if (plan.problems.length > 0) return unchanged(plan.problems.join('\n'));

  // Bind every new socket first: when one cannot be bound, nothing changes.
  const staged: StagedUpdate[] = [];
  const fresh: ServiceDispatcher[] = [];
  try {
    for (const k of plan.kept) staged.push(await dispatchers.find((d) => d.name.toUpperCase() === k.service.name.toUpperCase())!.stage(k.service, k.bind, k.close));
    for (const service of plan.added) {
      const d = new ServiceDispatcher({ service, root, serverModule, logger, maxConnsPerIp: config.options.maxConnsPerIp });
      fresh.push(d);
      await d.listen();
    }
    // Answered once the new ports take connections (shared accept: once a process listens).
    await Promise.all(fresh.map((d) => d.warmUp(20_000)));
  } catch (err) {
    for (const s of staged) s.abort();
    await Promise.all(fresh.map((d) => d.shutdown(0)));
    return unchanged((err as Error).message);
  }

  const added: ListenerInfo[] = fresh.flatMap((d) => d.listenerInfo());
  const removed: ListenerInfo[] = [];
  // The removed ports are free (no server process accepts from them) before the reload is answered.
  const released: Array<Promise<void>> = [];
  for (const s of staged) {
    const change = s.commit();
    added.push(...change.added);
    removed.push(...change.removed);
    released.push(change.released);
  }
  const kept = dispatchers.filter((d) => !plan.removed.includes(d.name));
  for (const d of kept) d.configurePerIp(config.options.maxConnsPerIp);
  for (const d of dispatchers.filter((d) => plan.removed.includes(d.name))) {
    removed.push(...d.listenerInfo());
    draining.add(d);
    logger.info({ service: d.name }, 'service removed: no new connections, open sessions finish');
    released.push(d.stopListening());
    void d.drain().then(() => {
      draining.delete(d);
      logger.info({ service: d.name }, 'removed service drained');
    });
  }
  dispatchers = [...kept, ...fresh];
  await Promise.all(released);

  const answers = await Promise.all(kept.map((d) => d.reloadProcesses()));
  const failedProcesses = answers.flatMap((a) => a.failed);
  const reloadedProcesses = answers.reduce((n, a) => n + a.reloaded, 0);
  logger.info({ added, removed, reloadedProcesses, failedProcesses }, 'dispatcher reloaded');
  return { ok: true, listeners: allListeners(), added, removed, reloadedProcesses, failedProcesses };
}

/** One line per service (or TLS port) left off for want of a certificate, saying how to turn it on. */
function logServicesOff(loaded: InstanceConfig): void {
  for (const off of loaded.dispatcher.off ?? []) logger.warn({ service: off.service, ports: off.ports }, off.message);
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void stop());
// logger.ts reopens this process's logs on SIGHUP; the server processes get it too.
process.on('SIGHUP', () => {
  for (const d of [...dispatchers, ...draining]) d.signalProcesses('SIGHUP');
});
process.on('disconnect', () => void stop());
process.on('message', (msg: ToDispatcher) => {
  if (msg?.type === 'processes') {
    const all = [...dispatchers, ...draining];
    void Promise.all(all.map((d) => d.refreshCounts())).then(() =>
      send({ type: 'processes', id: msg.id, processes: all.flatMap((d) => d.processes()), waiting: all.reduce((n, d) => n + d.waitingCount(), 0), services: all.map((d) => d.summary()) }),
    );
  } else if (msg?.type === 'reload') {
    const run = reloading.then(reload);
    reloading = run.catch(() => {});
    void run.then(
      (result) => send({ type: 'reloaded', id: msg.id, ...result }),
      (err: Error) => send({ type: 'reloaded', id: msg.id, ...refusedReload(err.message, allListeners()) }),
    );
  }
});

let config: InstanceConfig;
try {
  // etc/ may hold an edit the watcher rejected (a restart after a crash): use the configuration in force.
  const loaded = loadConfigInForce(root);
  config = loaded.config;
  if (loaded.etcErrors) logger.warn({ errors: loaded.etcErrors }, 'etc/ has errors; starting with the configuration in force');
} catch (err) {
  fatal((err as Error).message);
}
logServicesOff(config);
const services = config.dispatcher.services;
if (services.length === 0) fatal(`${paths.dispatcherCnf}:0: no [SERVICE=…] section${config.dispatcher.off?.length ? ' that can run without a certificate' : ''}: nothing to listen on`);

const listeners: ListenerInfo[] = [];
dispatchers = services.map((service) => new ServiceDispatcher({ service, root, serverModule, logger, maxConnsPerIp: config.options.maxConnsPerIp }));
try {
  for (const d of dispatchers) listeners.push(...(await d.listen()));
  await Promise.all(dispatchers.map((d) => d.warmUp(20_000)));
} catch (err) {
  await Promise.all(dispatchers.map((d) => d.shutdown(0)));
  fatal((err as Error).message);
}
logger.info({ listeners }, 'dispatcher listening');
send({ type: 'ready', listeners });
