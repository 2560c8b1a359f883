// What is said on run/job_controller.sock (newline-delimited JSON, common/ipc-socket.ts): every
// request and its reply as one type for both sides, the check the job controller makes of what
// arrives (parseJobControllerRequest: a line that is not one of these requests is answered with
// an error and goes no further), and how long each kind of request is given (requestTimeoutMs).
// Spoken only through client.ts, as Postfix speaks to each of its daemons through one client.
import type net from 'node:net';
import { BadRequest, serveJsonSocket } from '../common/ipc-socket.js';
import type { NoticedFile } from '../queue/types.js';
import { envelopeFromWire } from '../queue/envelope-wire.js';
import type { ChannelCounters, CounterTable } from './counters.js';
import type { DeliveryCounters } from './delivery-stats.js';
import type { FanoutStatus } from '../delivery/fanout.js';
import type { ChannelIndexStats } from './message-index.js';
import type { ScanProgressView } from './scan-progress.js';

export type QmMessageAction = 'hold' | 'release' | 'delete' | 'return';

export type JobControllerRequest =
  /**
   * A slave (SMTP server, submit) stored new messages: try them at once. A file that comes with
   * its envelope and size is admitted as it is, without reading it back.
   */
  | { op: 'enqueued'; refs: NoticedFile[] }
  /** Queue manager changes made on disk by `imsimta qm`. */
  | { op: 'qm'; action: QmMessageAction; ids: string[] }
  | { op: 'qm'; action: 'start' | 'stop'; channel: string }
  /**
   * Retry now: everything (null), `domain`, `@domain` (with subdomains) or `#channel`. ETRN uses
   * it too, with `origin: 'etrn'` and the client's address (rate limit, fast-flush domains only).
   */
  | { op: 'flush'; target: string | null; origin?: 'etrn' | 'operator'; client?: string }
  /** Running jobs, pools and counters (for `process`, `counters`, `qm jobs`, metrics). */
  | { op: 'status' }
  /** Per-channel counters (for `imsimta counters`). */
  | { op: 'counters' }
  /** Scan the queue directories now (as SYNCH_TIME does). */
  | { op: 'rescan' }
  /** Load the configuration again (the watcher, after it validated etc/). */
  | { op: 'reload' };

export type JobControllerOp = JobControllerRequest['op'];

/** A request carried out: `ok`, and no `error`. */
type Done<T> = { ok: true; error?: undefined } & T;

/** A request the job controller did not carry out, and why (not a request of this protocol, a reload refused, …). */
export interface Refusal {
  ok: false;
  error: string;
}

export interface FlushReply {
  ok: boolean;
  error?: undefined;
  /** RFC 1985 reply code the SMTP server gives for ETRN: 250, 251, 252, 253, 458, 459 (501: a bad target). */
  code: number;
  /** Messages scheduled. */
  count: number;
  text: string;
  /** For 458/459: the short reason the client is given (`service unavailable`, `no such channel`, …). */
  reason?: string;
  /** How it was carried out (fast-flush.ts FlushPlan: fast, slow, channel, all), for logs and tests. */
  way?: string;
}

export interface ChannelStatus extends ChannelIndexStats {
  /** Jobs running for it now. */
  jobs: number;
  stopped: boolean;
  counters: ChannelCounters | null;
}

export interface JobStatus {
  job: number;
  pid: number;
  thread: number | null;
  channel: string;
  pool: string;
  /** ISO time. */
  started: string;
  batches: number;
  messages: number;
  in_hand: number;
}

export type StatusReply = Done<{
  pid: number;
  index: { size: number; max: number; high_water: number; overflowed: boolean; scans: number };
  /** Batches handed to jobs and the messages in them, since start. */
  batches: { batches: number; messages: number };
  pools: Array<{ name: string; job_limit: number; running: number; threads: number }>;
  jobs: JobStatus[];
  channels: Record<string, ChannelStatus>;
  stopped: string[];
  fast_flush: { messages: number; domains: number; policy: string; off: boolean };
  /** Queue files whose envelope the job controller read (what a flush or scan cost). */
  files_read: number;
  /** The queue scan under way (the start-up scan of a large queue), or null. */
  scan: ScanProgressView | null;
  delivery: Record<string, DeliveryCounters>;
  /** Per SMTP channel, what its fan-out has in hand: connections, destinations, their traffic shaping. */
  fanout: Record<string, FanoutStatus>;
  /** A farm's node (FARM_REDIS_URL): its name, FARM_NODE_COUNT, and whether it reaches Redis now; null for a node alone. */
  farm: { node: string; node_count: number; redis: 'up' | 'down' } | null;
}>;

/** The reply to each request. */
export interface JobControllerReplies {
  enqueued: Done<{ admitted: number }>;
  /** `found`: for release and return, the messages found on disk. */
  qm: Done<{ found?: number }>;
  flush: FlushReply;
  status: StatusReply;
  counters: Done<{ counters: CounterTable }>;
  rescan: Done<{ index: number }>;
  reload: Done<{ generation: number }>;
}

export type ReplyTo<Op extends JobControllerOp> = JobControllerReplies[Op] | Refusal;
export type JobControllerReply = ReplyTo<JobControllerOp>;

// ------------------------------------------------------------------ timeouts

/** How long each kind of request may take before its caller gives up (client.ts). */
const TIMEOUT_MS: Record<JobControllerOp, number> = {
  // Best effort: a lost notice is made up for by the next scan.
  enqueued: 5000,
  qm: 5000,
  // The operator's flush may have to read the files of a destination.
  flush: 15_000,
  // For `imsimta process` and the metrics endpoint, which show what they have without it.
  status: 3000,
  counters: 5000,
  rescan: 60_000,
  // The watcher waits for the reload to be applied (or refused).
  reload: 60_000,
};

/** ETRN is answered within this long, or 458: a client on the network is waiting. */
const ETRN_TIMEOUT_MS = 5000;

export function requestTimeoutMs(request: JobControllerRequest): number {
  return request.op === 'flush' && request.origin === 'etrn' ? ETRN_TIMEOUT_MS : TIMEOUT_MS[request.op];
}

// ---------------------------------------------------------------- the server

/** Serves the socket: `handle` gets only requests that passed parseJobControllerRequest. */
export function serveJobControllerSocket(path: string, handle: (request: JobControllerRequest) => Promise<JobControllerReply>): Promise<net.Server> {
  return serveJsonSocket(path, handle, parseJobControllerRequest);
}

// ---------------------------------------------------------------- validation

/** The request in `raw` (a parsed JSON line); throws BadRequest saying what does not fit. */
export function parseJobControllerRequest(raw: unknown): JobControllerRequest {
  const r = record(raw);
  switch (r.op) {
    case 'enqueued': {
      if (!Array.isArray(r.refs)) throw bad('enqueued: refs must be a list');
      return { op: 'enqueued', refs: r.refs.map(queueRef) };
    }
    case 'qm': {
      if (r.action === 'start' || r.action === 'stop') return { op: 'qm', action: r.action, channel: text(r.channel, 'qm: channel') };
      if (r.action === 'hold' || r.action === 'release' || r.action === 'delete' || r.action === 'return') {
        if (!Array.isArray(r.ids)) throw bad(`qm ${r.action}: ids must be a list`);
        const action = r.action;
        return { op: 'qm', action, ids: r.ids.map((id) => text(id, `qm ${action}: ids`)) };
      }
      throw bad(`unknown qm action ${JSON.stringify(r.action)}`);
    }
    case 'flush': {
      if (r.target !== undefined && r.target !== null && typeof r.target !== 'string') throw bad('flush: target must be a string or null');
      if (r.origin !== undefined && r.origin !== 'etrn' && r.origin !== 'operator') throw bad('flush: origin must be "etrn" or "operator"');
      if (r.client !== undefined && typeof r.client !== 'string') throw bad('flush: client must be a string');
      return { op: 'flush', target: r.target ?? null, ...(r.origin ? { origin: r.origin } : {}), ...(r.client !== undefined ? { client: r.client } : {}) };
    }
    case 'status':
    case 'counters':
    case 'rescan':
    case 'reload':
      return { op: r.op };
    default:
      throw bad(`unknown request ${JSON.stringify(r.op)}`);
  }
}

function bad(message: string): BadRequest {
  return new BadRequest(message);
}

function record(raw: unknown): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('bad request: not a JSON object');
  return raw as Record<string, unknown>;
}

function text(value: unknown, what: string): string {
  if (typeof value !== 'string' || value === '') throw bad(`${what}: a non-empty string expected`);
  return value;
}

function queueRef(value: unknown): NoticedFile {
  const r = record(value);
  const ref = { id: text(r.id, 'enqueued: a ref id'), channel: text(r.channel, 'enqueued: a ref channel'), path: text(r.path, 'enqueued: a ref path') };
  // An envelope that does not fit (or is not this file's) is left out: the file is read instead.
  const envelope = r.envelope === undefined ? null : envelopeFromWire(r.envelope);
  const size = r.size;
  if (envelope?.id !== ref.id || envelope.channel !== ref.channel || typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return ref;
  return { ...ref, envelope, size };
}
