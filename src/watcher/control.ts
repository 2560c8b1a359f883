// Requests the watcher answers on run/watcher.sock (newline-delimited JSON), and the
// one-line summaries the commands print.
import { listenerAddress, type ListenerInfo } from '../dispatcher/protocol.js';
import type { PartName, PartStatus } from './part.js';

export type ControlRequest =
  | { op: 'status' }
  | { op: 'processes' }
  /** Start the part (both when absent) if it is not running. */
  | { op: 'start'; part?: PartName }
  /** Stop the part; without one, everything and then the watcher itself. */
  | { op: 'stop'; part?: PartName }
  /** Stop and start the part (both when absent); the watcher stays. */
  | { op: 'restart'; part?: PartName }
  /** Validate etc/ and apply it to the running parts (`imsimta reload`). */
  | { op: 'reload' };

/** The answer to `reload`. */
export type ReloadReply =
  | { ok: true; message: string }
  /** `error`: the lines to show (file:line for configuration errors); `errors`: the same, one per entry. */
  | { ok: false; error: string; errors: string[] };

export interface StatusReply {
  ok: true;
  pid: number;
  root: string;
  parts: Record<PartName, PartStatus>;
  listeners: ListenerInfo[];
  reloads: ReloadCounts;
}

/** Reloads since the watcher started, by outcome and trigger. */
export interface ReloadCounts {
  /** Applied after an edit in etc/ (one per burst of edits). */
  watched: number;
  /** Applied on `imsimta reload`. */
  commanded: number;
  /** Refused: the configuration had errors. */
  rejected: number;
  /** An edit in etc/ waits for the end of its burst, or a reload runs now. */
  pending: boolean;
}

/** A row of `imsimta process`. */
export interface ProcessRow {
  role: 'watcher' | 'dispatcher' | 'smtp_server' | 'job_controller' | 'job';
  pid: number | null;
  service?: string;
  connections?: number;
  served?: number;
  started?: string | null;
  [key: string]: unknown;
}

/** `SMTP on 127.0.0.1:25 and 127.0.0.1:587, LMTP on …` */
export function describeListeners(listeners: ListenerInfo[]): string {
  const byService = new Map<string, string[]>();
  for (const l of listeners) {
    const list = byService.get(l.service) ?? [];
    list.push(listenerAddress(l));
    byService.set(l.service, list);
  }
  return [...byService].map(([service, where]) => `${service} on ${where.join(' and ')}`).join(', ');
}
