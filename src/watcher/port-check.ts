// Before `imsimta restart` stops a running dispatcher: can the ports of the new dispatcher.cnf be
// bound? A restart stops the dispatcher first and only then learns that a new port is taken (or
// needs a privilege), and the SMTP service is then down, every port of it, until the port is free.
// A reload checks this by binding first and keeping the old configuration; a restart must refuse
// the same way, before anything is stopped. The ports the running dispatcher holds now are its
// own and are not probed (they are bound again by the new one once the old one let them go).
import net from 'node:net';
import type { DispatcherConfig } from '../config/types.js';
import { describeListenError } from '../dispatcher/listen-errors.js';
import { listenerKey, targetsOf, type ListenTarget } from '../dispatcher/reload-plan.js';

/** The operator's line for the first port of `config` that cannot be bound, or null when all can. */
export async function unbindablePort(config: DispatcherConfig, held: readonly ListenTarget[]): Promise<string | null> {
  const mine = new Set(held.map(listenerKey));
  for (const service of config.services) {
    for (const target of targetsOf(service)) {
      if (mine.has(listenerKey(target))) continue;
      try {
        await probe(target);
      } catch (err) {
        return describeListenError(err as NodeJS.ErrnoException, { service: service.name, ...target });
      }
    }
  }
  return null;
}

/** Listens on `target` and closes at once (a listen, not only a bind: Linux refuses a taken port at listen()). */
function probe(target: ListenTarget): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ port: target.port, host: target.address ?? undefined, exclusive: true }, () => server.close(() => resolve()));
  });
}
