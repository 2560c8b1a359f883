// What a new dispatcher.cnf changes in a running dispatcher, as pure functions of plain data:
// services added, removed or kept, and per kept service the ports to bind and to close.
import type { AcceptMode, DispatcherService } from '../config/types.js';
import type { ServiceLimits } from './policy.js';

export interface ListenTarget {
  address: string | null; // null = all interfaces
  port: number;
}

/** One listening socket of one service, as bound now. */
export interface BoundListener extends ListenTarget {
  service: string;
}

export function listenerKey(t: ListenTarget): string {
  return `${t.address ?? '*'}|${t.port}`;
}

/** The sockets a service definition asks for. */
export function targetsOf(service: DispatcherService): ListenTarget[] {
  const seen = new Set<string>();
  const out: ListenTarget[] = [];
  for (const port of service.ports) {
    const t = { address: service.interfaceAddress, port };
    if (seen.has(listenerKey(t))) continue;
    seen.add(listenerKey(t));
    out.push(t);
  }
  return out;
}

export function limitsOf(s: DispatcherService): ServiceLimits {
  return {
    minProcs: s.minProcs,
    maxProcs: Math.max(1, s.maxProcs),
    minConns: s.minConns,
    maxConns: Math.max(1, s.maxConns),
    maxHandoffs: s.maxHandoffs,
    maxLifeTimeSec: s.maxLifeTimeSec,
    maxLifeConns: s.maxLifeConns,
    maxIdleTimeSec: s.maxIdleTimeSec,
    maxShutdown: s.maxShutdown,
  };
}

export interface ServicePlan {
  /** Services new in the file. */
  added: DispatcherService[];
  /** Names of services no longer in the file: they stop listening and drain. */
  removed: string[];
  /** Services in both, with their new definition and the sockets to open and to close. */
  kept: Array<{ service: DispatcherService; bind: ListenTarget[]; close: ListenTarget[] }>;
  /** Changes a running dispatcher cannot make (the operator restarts it for them). */
  problems: string[];
}

const sameName = (a: string, b: string) => a.toUpperCase() === b.toUpperCase();

/**
 * Plans the switch from the sockets bound now (`bound`, with their services) to `next`.
 * `modes`: the ACCEPT_MODE each current service runs in (a change needs a restart).
 */
export function planServices(currentNames: readonly string[], bound: readonly BoundListener[], next: readonly DispatcherService[], modes?: ReadonlyMap<string, AcceptMode>): ServicePlan {
  const plan: ServicePlan = { added: [], removed: [], kept: [], problems: [] };
  for (const name of currentNames) if (!next.some((s) => sameName(s.name, name))) plan.removed.push(name);
  const holder = new Map(bound.map((b) => [listenerKey(b), b.service]));
  for (const service of next) {
    const wanted = targetsOf(service);
    // A socket that another service holds now cannot be bound before that one lets go of it.
    for (const t of wanted) {
      const owner = holder.get(listenerKey(t));
      if (owner !== undefined && !sameName(owner, service.name)) {
        plan.problems.push(
          `${service.file}:${service.line}: port ${t.port} moves from service ${owner} to service ${service.name}: restart the dispatcher (imsimta restart dispatcher) for this change`,
        );
      }
    }
    if (!currentNames.some((n) => sameName(n, service.name))) {
      plan.added.push(service);
      continue;
    }
    const mode = modes?.get(service.name.toUpperCase());
    if (mode !== undefined && mode !== service.acceptMode) {
      plan.problems.push(`${service.file}:${service.line}: ACCEPT_MODE of service ${service.name} changes to ${service.acceptMode.toUpperCase()}: restart the dispatcher (imsimta restart dispatcher) for this change`);
    }
    const mine = bound.filter((b) => sameName(b.service, service.name));
    const wantedKeys = new Set(wanted.map(listenerKey));
    const boundKeys = new Set(mine.map(listenerKey));
    plan.kept.push({
      service,
      bind: wanted.filter((t) => !boundKeys.has(listenerKey(t))),
      close: mine.filter((b) => !wantedKeys.has(listenerKey(b))).map(({ address, port }) => ({ address, port })),
    });
  }
  return plan;
}
