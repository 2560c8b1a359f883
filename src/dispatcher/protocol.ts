// IPC messages (child_process channel, JSON) between the watcher, the dispatcher and the
// SMTP server processes.

// ------------------------------------------------ dispatcher ⇄ SMTP server process

/** Dispatcher → server process. `connection` carries the socket as the send() handle. */
export type ToServerProcess =
  | { type: 'connection' }
  /** Take no new connections; exit when the open sessions end. */
  | { type: 'retire' }
  /** Stop: open sessions get graceMs, then 421 and close; then exit. */
  | { type: 'shutdown'; graceMs: number };

/** Server process → dispatcher. */
export type FromServerProcess =
  | { type: 'ready' }
  /**
   * Sent whenever a count changes. `received` counts every `connection` message the process
   * got (a socket closed in transit arrives as null), so the dispatcher knows which of its
   * hand-offs have arrived.
   */
  | { type: 'status'; open: number; served: number; received: number }
  | { type: 'fatal'; message: string };

// ------------------------------------------------------- watcher ⇄ its children

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
}

/** Watcher → dispatcher. */
export type ToDispatcher = { type: 'processes'; id: number };

/** Dispatcher (and job controller, for ready/fatal) → watcher. */
export type FromChild =
  | { type: 'ready'; listeners?: ListenerInfo[] }
  | { type: 'fatal'; message: string }
  /** `waiting`: accepted connections no process could take yet. */
  | { type: 'processes'; id: number; processes: ServerProcessInfo[]; waiting: number };
