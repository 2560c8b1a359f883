// The dispatcher process: forked by the watcher. Binds every service port of dispatcher.cnf,
// then says {type:'ready', listeners}; a bind or config failure is one {type:'fatal'} line.
// SIGTERM (or the watcher going away) stops it gracefully.
import { fileURLToPath } from 'node:url';
import { instancePaths, resolveRoot } from '../common/instance.js';
import { createLogger, flushLogs } from '../common/logger.js';
import { loadConfigOrThrow } from '../watcher/load-config.js';
import { ServiceDispatcher } from './service-dispatcher.js';
import type { InstanceConfig } from '../config/types.js';
import type { FromChild, ListenerInfo, ToDispatcher } from './protocol.js';

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
  flushLogs();
  send({ type: 'fatal', message });
  process.exit(1);
}

let dispatchers: ServiceDispatcher[] = [];
let stopping: Promise<void> | null = null;

function stop(): Promise<void> {
  stopping ??= (async () => {
    logger.info('dispatcher stopping');
    await Promise.all(dispatchers.map((d) => d.shutdown()));
    logger.info('dispatcher stopped');
    flushLogs();
    process.exit(0);
  })();
  return stopping;
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void stop());
process.on('disconnect', () => void stop());
process.on('message', (msg: ToDispatcher) => {
  if (msg?.type === 'processes') {
    send({ type: 'processes', id: msg.id, processes: dispatchers.flatMap((d) => d.processes()), waiting: dispatchers.reduce((n, d) => n + d.waitingCount(), 0) });
  }
});

let config: InstanceConfig;
try {
  config = await loadConfigOrThrow(root);
} catch (err) {
  fatal((err as Error).message);
}
const services = config.dispatcher.services;
if (services.length === 0) fatal(`${paths.dispatcherCnf}:0: no [SERVICE=…] section: nothing to listen on`);

const listeners: ListenerInfo[] = [];
dispatchers = services.map((service) => new ServiceDispatcher({ service, root, serverModule, logger }));
try {
  for (const d of dispatchers) listeners.push(...(await d.listen()));
  await Promise.all(dispatchers.map((d) => d.warmUp(20_000)));
} catch (err) {
  await Promise.all(dispatchers.map((d) => d.shutdown(0)));
  fatal((err as Error).message);
}
logger.info({ listeners }, 'dispatcher listening');
send({ type: 'ready', listeners });
