// IPC messages (child_process channel, JSON) between the watcher, the dispatcher and the
// SMTP server processes.
import type { HistogramSnapshot } from '../common/histogram.js';
import type { LedgerMessage } from './per-ip-ledger.js';

// ------------------------------------------------ dispatcher ⇄ SMTP server process

/** How a server process gets its connections (dispatcher.cnf ACCEPT_MODE). */
export type ConnectionSource = 'shared' | 'handoff';

/** What a server process needs to know of its service's limits (sent before any connection, and after a reload). */
export interface ProcessLimits {
  source: ConnectionSource;
  minConns: number;
  maxConns: number;
  /** 0 = never. */
  maxLifeConns: number;
  /** Sessions of one client address it may hold without asking (per-ip-ledger.ts). */
  perIpAllowance: number;
  /**
   * Shared accept: the service runs fewer than MAX_PROCS processes, so reaching MIN_CONNS may
   * start one and is reported at once; at MAX_PROCS it goes with the next report.
   */
  mayGrow: boolean;
}

/**
 * Dispatcher → server process. `connection` carries the socket as the send() handle (hand-off);
 * `listen` a listening socket to accept from (shared accept), as the raw handle.
 */
export type ToServerProcess =
  | { type: 'connection' }
  | { type: 'limits'; limits: ProcessLimits }
  /** Accept from this listening socket (its key names it in `unlisten`), with this backlog. */
  | { type: 'listen'; key: string; backlog: number }
  /** Stop accepting from it for good (a reload removed the port); answered with `unlistened`. */
  | { type: 'unlisten'; key: string }
  /** Report the counts now (answered with a `status` carrying `id`). */
  | { type: 'count'; id: number }
  /** Take no new connections; exit when the open sessions end. */
  | { type: 'retire' }
  /** Stop: open sessions get graceMs, then 421 and close; then exit. */
  | { type: 'shutdown'; graceMs: number }
  /** Load the configuration again: new sessions use it, open ones keep theirs. Answered with `reloaded`. */
  | { type: 'reload'; generation: number }
  | LedgerMessage;

/** Server process → dispatcher. */
export type FromServerProcess =
  | { type: 'ready' }
  /**
   * Its counts. Hand-off: sent at once when a session closes (the choice of process must not
   * count sessions that are gone), an arrival alone within REPORT_ARRIVAL_MS; `received` counts
   * every `connection` message the process got (a socket closed in transit arrives as null):
   * until a report counts them, the dispatcher counts its hand-offs as open sessions. Shared
   * accept: at once when it reaches MIN_CONNS or stops accepting, else within REPORT_SHARED_MS.
   * `id`: the answer to a `count`. `accepting`: it accepts from the shared sockets now.
   */
  | { type: 'status'; open: number; served: number; received: number; enqueueLatency?: HistogramSnapshot; auth?: AuthCounts; id?: number; accepting?: boolean }
  /** Shared accept: it stopped at MAX_CONNS and is below it again; send the listening sockets. */
  | { type: 'resume' }
  /** Shared accept: it listens on that socket now (after `listen`). */
  | { type: 'listening'; key: string }
  | { type: 'unlistened'; key: string }
  /** MAX_CONNS_PER_IP beyond its allowance: may it take one more session of `ip`? (per-ip-ledger.ts) */
  | { type: 'ip-acquire'; ip: string; id: number; have?: number }
  /** Its sessions of a tracked address (the answer to ip-track). */
  | { type: 'ip-count'; ip: string; epoch: number; count: number }
  /** A session of a tracked address ended. */
  | { type: 'ip-release'; ip: string }
  | { type: 'fatal'; message: string }
  /** The answer to `reload`: ok, or the reason it keeps its configuration. */
  | { type: 'reloaded'; generation: number; ok: boolean; error?: string };

/**
 * How late a server process may report a connection's arrival. The dispatcher learns of the
 * arrival at once from Node's own acknowledgement of the passed socket; reporting each one too
 * cost a message and a wake-up of both processes per connection.
 */
export const REPORT_ARRIVAL_MS = 50;

/**
 * Shared accept: how late a server process may report a change of its counts that does not
 * bear on the spawn rule (the dispatcher asks for fresh counts for `imsimta process`).
 */
export const REPORT_SHARED_MS = 250;

// ------------------------------------------------------- watcher ⇄ its children

/** `127.0.0.1:25`, `[::1]:25`, and for every address `0.0.0.0:25` (or `anyAddress`). */
export function listenerAddress(l: ListenerInfo, anyAddress = '0.0.0.0'): string {
  return `${l.address === null ? anyAddress : l.address.includes(':') ? `[${l.address}]` : l.address}:${l.port}`;
}

export interface ListenerInfo {
  service: string;
  address: string | null;
  port: number;
}

export interface ServerProcessInfo {
  pid: number;
  service: string;
  /** Sessions it holds, including connections being handed to it. */
  connections: number;
  served: number;
  ready: boolean;
  retiring: boolean;
  started: string; // ISO time
  /** MAX_CONNS of its service now. */
  maxConns: number;
  /** ACCEPT_MODE=SHARED: it accepts from the listening sockets now (false at MAX_CONNS, retiring, starting). */
  accepting?: boolean;
}

/** SMTP AUTH outcomes of a server process since it started (metrics). */
export interface AuthCounts {
  succeeded: number;
  failed: number;
  /** Answered 421: past SASL_FAILURES_PER_ADDRESS / _PER_USER or the channel's disconnectbadauthlimit. */
  refused: number;
}

export function addAuthCounts(a: AuthCounts | null | undefined, b: AuthCounts | null | undefined): AuthCounts {
  return { succeeded: (a?.succeeded ?? 0) + (b?.succeeded ?? 0), failed: (a?.failed ?? 0) + (b?.failed ?? 0), refused: (a?.refused ?? 0) + (b?.refused ?? 0) };
}

/** A service's totals since the dispatcher started, exited processes included (metrics endpoint). */
export interface ServiceSummary {
  service: string;
  processes: number;
  /** Sessions open now. */
  connections: number;
  /** Sessions handed to its processes so far. */
  served: number;
  /** From the end of DATA to the message on disk, in seconds. */
  enqueueLatency: HistogramSnapshot;
  /** SMTP AUTH outcomes (absent from a dispatcher that does not count them). */
  auth?: AuthCounts;
}

/** Watcher → dispatcher. `reload`: apply the configuration on disk (validated by the watcher). */
export type ToDispatcher = { type: 'processes'; id: number } | { type: 'reload'; id: number };

/** What a reload changed in the dispatcher. */
export interface DispatcherReloadResult {
  ok: boolean;
  /** Why nothing was changed (ok false). */
  error?: string;
  /** Every port listened on now. */
  listeners: ListenerInfo[];
  added: ListenerInfo[];
  removed: ListenerInfo[];
  /** SMTP server processes that switched to the new configuration, and those that could not. */
  reloadedProcesses: number;
  failedProcesses: string[];
}

/** A reload that changed nothing, and why. */
export function refusedReload(error: string, listeners: ListenerInfo[]): DispatcherReloadResult {
  return { ok: false, error, listeners, added: [], removed: [], reloadedProcesses: 0, failedProcesses: [] };
}

/** Dispatcher (and job controller, for ready/fatal) → watcher. */
export type FromChild =
  | { type: 'ready'; listeners?: ListenerInfo[] }
  | { type: 'fatal'; message: string }
  /** `waiting`: accepted connections no process could take yet. */
  | { type: 'processes'; id: number; processes: ServerProcessInfo[]; waiting: number; services?: ServiceSummary[] }
  | ({ type: 'reloaded'; id: number } & DispatcherReloadResult);
