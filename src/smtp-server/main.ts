// An SMTP server process ("tcp_smtp_server"): forked by the dispatcher for one service, fed
// accepted sockets over IPC, each handed to the SMTP service. Reports its counts to the
// dispatcher on every change; retires (finish sessions, exit) or shuts down when told.
import type net from 'node:net';
import { resolveRoot } from '../common/instance.js';
import type { SmtpService } from './service.js';
import type { FromServerProcess, ToServerProcess } from '../dispatcher/protocol.js';

/** When the dispatcher disappears (killed), sessions in progress get this long to finish. */
const ORPHAN_GRACE_MS = 60_000;

const root = resolveRoot(undefined);
const serviceName = process.env.TSUBAME_SERVICE ?? 'SMTP';
const defaultGraceMs = Number(process.env.TSUBAME_GRACE_MS ?? 2000) || 2000;

let service: SmtpService | null = null;
let received = 0;
let served = 0;
let retiring = false;
let stopping: Promise<void> | null = null;
const early: Array<{ msg: ToServerProcess; socket: net.Socket | undefined }> = [];

function send(msg: FromServerProcess): void {
  if (!process.connected) return;
  try {
    process.send!(msg);
  } catch {
    /* the dispatcher is gone: 'disconnect' handles it */
  }
}

let reportQueued = false;
/** Several changes in one turn of the event loop make one report. */
function report(): void {
  if (reportQueued) return;
  reportQueued = true;
  setImmediate(() => {
    reportQueued = false;
    send({ type: 'status', open: service?.openConnections() ?? 0, served, received });
    if (retiring && !stopping && (service?.openConnections() ?? 0) === 0) stop(0);
  });
}

function stop(graceMs: number): Promise<void> {
  stopping ??= (async () => {
    try {
      await service?.close(graceMs);
    } finally {
      process.exit(0);
    }
  })();
  return stopping;
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
      report();
      break;
    case 'retire':
      retiring = true;
      report();
      break;
    case 'shutdown':
      void stop(msg.graceMs);
      break;
  }
}

process.on('message', (msg: ToServerProcess, socket: net.Socket | undefined) => onMessage(msg, socket));
process.on('disconnect', () => void stop(ORPHAN_GRACE_MS));
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void stop(defaultGraceMs));

try {
  // Loaded here so that a service that cannot even load is reported like any start-up failure.
  const { createSmtpService } = await import('./service.js');
  service = await createSmtpService({ root, service: serviceName });
} catch (err) {
  send({ type: 'fatal', message: `SMTP service ${serviceName}: ${(err as Error).message}` });
  process.exit(1);
}
service.onChange(report);
send({ type: 'ready' });
for (const { msg, socket } of early.splice(0)) onMessage(msg, socket);
