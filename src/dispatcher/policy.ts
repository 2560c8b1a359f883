// The dispatcher's choice of SMTP server process, as pure functions of plain data
// (Messaging Server's spawn rule, reference §1.4). The I/O side (service-dispatcher.ts)
// feeds them the current process states and carries out what they decide.

/** The dispatcher.cnf limits of one service that the policy needs. */
export interface ServiceLimits {
  minProcs: number;
  maxProcs: number;
  minConns: number;
  maxConns: number;
  /** Hand-offs in progress (assigned to a process, not yet received by it) per service; 0 = no cap. */
  maxHandoffs: number;
  maxLifeTimeSec: number; // 0 = never
  maxLifeConns: number; // 0 = never
  maxIdleTimeSec: number; // 0 = never
  /** Most processes retiring (draining their sessions) at once. */
  maxShutdown: number;
}

/** One SMTP server process as the dispatcher sees it. */
export interface ProcessState {
  id: number;
  /** Sessions it holds, plus the connections handed (or being handed) to it. */
  open: number;
  /** Connections assigned to it that it has not received yet. */
  handoffs: number;
  /** Connections it was given in its life (including those being handed over). */
  served: number;
  /** ms since the epoch. */
  startedAt: number;
  /** ms since the epoch: when its number of sessions last changed. */
  lastActive: number;
  /** Takes no new connections; exits when its sessions end. */
  retiring: boolean;
  /** It said it is ready (a process still starting can be given connections: they wait for it). */
  ready: boolean;
  /** Shared accept: false while it does not accept (at MAX_CONNS or MAX_LIFE_CONNS). Absent: true. */
  accepting?: boolean;
}

export type Choice =
  | { action: 'use'; id: number }
  | { action: 'spawn' }
  | { action: 'wait'; reason: 'max_conns' | 'max_handoffs' };

export interface Housekeeping {
  /** New processes to start now (to reach MIN_PROCS). */
  spawn: number;
  /** Processes to retire now, with the reason (for the log). */
  retire: Array<{ id: number; reason: 'life_conns' | 'life_time' | 'idle' | 'max_procs' }>;
}

/** Prefers a ready process, then the least loaded one, then the oldest. */
function best(candidates: ProcessState[]): ProcessState {
  return [...candidates].sort((a, b) => Number(b.ready) - Number(a.ready) || a.open - b.open || a.startedAt - b.startedAt || a.id - b.id)[0]!;
}

/**
 * Which process takes a new connection.
 * - A non-retiring process below MIN_CONNS takes it (the least loaded one).
 * - When every process is "busy enough" (≥ MIN_CONNS) or there is none, a new process is
 *   started, never beyond MAX_PROCS (retiring processes still count: they still run).
 * - At MAX_PROCS, the least loaded process below MAX_CONNS takes it.
 * - When no process can take it, or MAX_HANDOFFS hand-offs are in progress, it waits.
 * `spawnAllowed` false (new processes keep dying at start-up: the caller backs off) leaves
 * the connection to the processes there are.
 */
export function chooseProcess(limits: ServiceLimits, procs: readonly ProcessState[], spawnAllowed = true): Choice {
  const handoffs = procs.reduce((n, p) => n + p.handoffs, 0);
  if (limits.maxHandoffs > 0 && handoffs >= limits.maxHandoffs) return { action: 'wait', reason: 'max_handoffs' };
  const candidates = procs.filter((p) => !p.retiring && p.open < limits.maxConns);
  const notBusy = candidates.filter((p) => p.open < limits.minConns);
  if (notBusy.length > 0) return { action: 'use', id: best(notBusy).id };
  if (spawnAllowed && procs.length < limits.maxProcs) return { action: 'spawn' };
  if (candidates.length > 0) return { action: 'use', id: best(candidates).id };
  return { action: 'wait', reason: 'max_conns' };
}

/**
 * Periodic upkeep: retire processes past MAX_LIFE_CONNS or MAX_LIFE_TIME, or idle for
 * MAX_IDLE_TIME while more than MIN_PROCS run, with at most MAX_SHUTDOWN retiring at once
 * (oldest first), and those beyond MAX_PROCS (least loaded first); then start processes up to MIN_PROCS (retiring ones do not count towards
 * MIN_PROCS, but do towards MAX_PROCS).
 */
export function housekeeping(limits: ServiceLimits, procs: readonly ProcessState[], now: number): Housekeeping {
  const retire: Housekeeping['retire'] = [];
  const shutdownCap = Math.max(1, limits.maxShutdown);
  let retiring = procs.filter((p) => p.retiring).length;
  let live = procs.length - retiring;
  const byAge = procs.filter((p) => !p.retiring && p.ready).sort((a, b) => a.startedAt - b.startedAt || a.id - b.id);
  for (const p of byAge) {
    if (retiring >= shutdownCap) break;
    let reason: Housekeeping['retire'][number]['reason'] | null = null;
    if (limits.maxLifeConns > 0 && p.served >= limits.maxLifeConns) reason = 'life_conns';
    else if (limits.maxLifeTimeSec > 0 && now - p.startedAt >= limits.maxLifeTimeSec * 1000) reason = 'life_time';
    else if (limits.maxIdleTimeSec > 0 && p.open === 0 && live > limits.minProcs && now - p.lastActive >= limits.maxIdleTimeSec * 1000) reason = 'idle';
    if (reason) {
      retire.push({ id: p.id, reason });
      retiring++;
      live--;
    }
  }
  // MAX_PROCS lowered by a reload: the least loaded of the processes beyond it retire.
  const chosen = new Set(retire.map((r) => r.id));
  const extra = procs.filter((p) => !p.retiring && p.ready && !chosen.has(p.id)).sort((a, b) => a.open - b.open || a.startedAt - b.startedAt || a.id - b.id);
  for (const p of extra) {
    if (live <= limits.maxProcs || retiring >= shutdownCap) break;
    retire.push({ id: p.id, reason: 'max_procs' });
    retiring++;
    live--;
  }
  const spawn = Math.max(0, Math.min(limits.minProcs - live, limits.maxProcs - procs.length));
  return { spawn, retire };
}

/**
 * ACCEPT_MODE=SHARED: the kernel, not the dispatcher, gives each connection to one of the
 * processes that accept, so the rule is kept by when processes start: one more (up to MAX_PROCS,
 * retiring ones counted) once every running process holds at least MIN_CONNS, and none while
 * one is still starting (its share of the load is not known yet). Each process stops accepting
 * at MAX_CONNS (and at MAX_LIFE_CONNS, until it is retired) itself, and counts as busy then.
 */
export function spawnForLoad(limits: ServiceLimits, procs: readonly ProcessState[]): number {
  if (procs.length >= limits.maxProcs) return 0;
  const running = procs.filter((p) => !p.retiring);
  if (running.length === 0 || running.some((p) => !p.ready)) return 0;
  return running.every((p) => p.accepting === false || p.open >= limits.minConns) ? 1 : 0;
}

/** The limits a service runs by in ACCEPT_MODE=SHARED: at least one process, for someone must accept. */
export function sharedLimits(limits: ServiceLimits): ServiceLimits {
  return { ...limits, minProcs: Math.max(1, limits.minProcs) };
}
