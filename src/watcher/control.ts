// What is said on run/watcher.sock (newline-delimited JSON, common/ipc-socket.ts): every request
// and its reply as one type for both sides, the check the watcher makes of what arrives
// (parseControlRequest: anything else is answered with an error), how long each kind of request is
// given (controlTimeoutMs, used by client.ts, the one client), and the one-line summaries the
// commands print.
import type net from 'node:net';
import { BadRequest, serveJsonSocket } from '../common/ipc-socket.js';
import { listenerAddress, type ListenerInfo } from '../dispatcher/protocol.js';
import { PART_NAMES, type PartName, type PartStatus } from './part.js';

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

export type ControlOp = ControlRequest['op'];

/** A request the watcher did not carry out, and why (the line to show). */
export interface Refusal {
  ok: false;
  error: string;
}

/** The answer to `reload`. */
export type ReloadReply =
  | { ok: true; message: string; error?: undefined }
  /** `error`: the lines to show (file:line for configuration errors); `errors`: the same, one per entry. */
  | { ok: false; error: string; errors: string[] };

/** The answer to `start`, `stop` and `restart`: the line to show; for `stop` of everything, the watcher's pid (it exits next). */
export interface PartReply {
  ok: true;
  error?: undefined;
  message: string;
  pid?: number;
}

export interface ControlReplies {
  status: StatusReply;
  processes: { ok: true; error?: undefined; processes: ProcessRow[] };
  start: PartReply;
  stop: PartReply;
  restart: PartReply;
  reload: ReloadReply;
}

export type ControlReplyTo<Op extends ControlOp> = ControlReplies[Op] | Refusal;
export type ControlReply = ControlReplyTo<ControlOp>;

/** How long the command waits for each kind of request. */
const TIMEOUT_MS: Record<ControlOp, number> = {
  status: 10_000,
  processes: 10_000,
  // Until the parts are up (or have failed to start).
  start: 60_000,
  // Jobs finish the message in hand: allow them time (the watcher kills after its own deadlines).
  stop: 180_000,
  restart: 180_000,
  // Long enough for every part to answer (each has 60 s) on a loaded machine.
  reload: 180_000,
};

export function controlTimeoutMs(request: ControlRequest): number {
  return TIMEOUT_MS[request.op];
}

/** Serves the socket: `handle` gets only requests that passed parseControlRequest. */
export function serveControlSocket(path: string, handle: (request: ControlRequest) => Promise<ControlReply>): Promise<net.Server> {
  return serveJsonSocket(path, handle, parseControlRequest);
}

/** The request in `raw` (a parsed JSON line); throws BadRequest saying what does not fit. */
export function parseControlRequest(raw: unknown): ControlRequest {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new BadRequest('bad request: not a JSON object');
  const r = raw as Record<string, unknown>;
  const part = r.part;
  if (part !== undefined && !PART_NAMES.includes(part as PartName)) throw new BadRequest(`unknown part "${typeof part === 'string' ? part : JSON.stringify(part)}" (dispatcher or job_controller)`);
  switch (r.op) {
    case 'status':
    case 'processes':
    case 'reload':
      return { op: r.op };
    case 'start':
    case 'stop':
    case 'restart':
      return part === undefined ? { op: r.op } : { op: r.op, part: part as PartName };
    default:
      throw new BadRequest(`unknown request "${String(r.op)}"`);
  }
}

export interface StatusReply {
  ok: true;
  error?: undefined;
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
  /** A job's channel and pool (role job). */
  channel?: string;
  pool?: string;
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
