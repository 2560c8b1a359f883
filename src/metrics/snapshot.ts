// What one scrape gathers from the running instance, as plain data: the parts the watcher
// supervises, the dispatcher's processes and service totals, the job controller's pools, jobs
// and counters, the queue on disk, and (for the status page) the last deferrals of mail.log and
// the history of the last hours.
// The job controller's status comes from another process, maybe of an older or newer version than
// its type (job-controller/protocol.ts) says: readJobControllerStatus checks it field by field, so
// that a field missing from it reads as nothing.
import type { RejectionCount } from './rejections.js';
import type { ServiceSummary, ListenerInfo } from '../dispatcher/protocol.js';
import type { RecentDeferral } from './mail-log-tail.js';
import type { DeliveryCounters } from '../job-controller/delivery-stats.js';
import { COUNTER_FIELDS, type CounterField } from '../job-controller/counters.js';
import { readScanView, type ScanProgressView } from '../job-controller/scan-progress.js';
import type { ChannelQueueDepth } from '../queue/index.js';
import { shapingView, type DestinationShaping } from '../job-controller/shaping-view.js';
import type { FanoutStatus } from '../delivery/fanout.js';
import type { HistoryView, OutcomeGroup } from './history.js';

export interface PartView {
  name: string;
  state: string;
  pid: number | null;
  /** ISO time, null when not running. */
  started: string | null;
  restarts: number;
}

export interface ProcessView {
  role: 'watcher' | 'dispatcher' | 'smtp_server' | 'job_controller';
  pid: number | null;
  service: string | null;
  connections: number | null;
  served: number | null;
  /** ISO time. */
  started: string | null;
  state: string | null;
}

export type MessageCounts = Record<CounterField, number>;

export interface ChannelView {
  name: string;
  messages: MessageCounts;
  recipients: MessageCounts;
  /** Jobs running for it now. */
  jobs: number;
  stopped: boolean;
}

export interface PoolView {
  name: string;
  jobLimit: number;
  running: number;
  threads: number;
}

export interface JobView {
  job: number;
  channel: string;
  pool: string;
  /** ISO time. */
  started: string | null;
  batches: number;
  messages: number;
  inHand: number;
}

export interface JobControllerView {
  pid: number | null;
  index: { size: number; max: number };
  pools: PoolView[];
  jobs: JobView[];
  channels: ChannelView[];
  delivery: Record<string, DeliveryCounters>;
  /** The queue scan under way, null (or absent) when none is. */
  scan?: ScanProgressView | null;
  /** Each destination's traffic shaping in the SMTP channels' fan-outs (absent: not reported). */
  shaping?: DestinationShaping[];
  /** A farm's node: its name and whether it reaches Redis; null (or absent) for a node alone. */
  farm?: { node: string; redisUp: boolean } | null;
}

/** The outcome of the last configuration change the watcher handled: an edit in etc/ or `imsimta reload` (or the start). */
export interface ReloadView {
  /** ISO time. */
  at: string;
  trigger: 'start' | 'watch' | 'command';
  /** Applied (true), or rejected or partly applied (false). */
  ok: boolean;
  /** The file:line errors when not ok. */
  errors: string[];
  /** ISO time of the last change that was applied (the start when none was). */
  lastSuccess: string;
}

export interface InstanceSnapshot {
  /** When it was gathered (ms since the epoch). */
  takenAt: number;
  root: string;
  watcher: { pid: number; started: string };
  parts: PartView[];
  listeners: ListenerInfo[];
  processes: ProcessView[];
  /** null: the dispatcher is not running or did not answer. */
  services: ServiceSummary[] | null;
  /** Accepted connections no process could take yet. */
  waitingConnections: number | null;
  jobController: JobControllerView | null;
  /** null: the queue directories could not be read. */
  queue: ChannelQueueDepth[] | null;
  /** Newest first, each with what became of its recipient afterwards; empty unless asked for. */
  deferrals: RecentDeferral[];
  /** One line per source that could not be read. */
  problems: string[];
  /** The last configuration change (absent: not known to the gatherer). */
  reload?: ReloadView | null;
  /** The last hours, per minute, for the charts (absent: the metrics side keeps no history). */
  history?: HistoryView | null;
  /** Deferrals and returns of the last hours grouped by reason and destination, largest first. */
  outcomeGroups?: OutcomeGroup[];
  /** Refusals (J records) per rule since the metrics side started, largest first (absent: not counted). */
  rejections?: RejectionCount[];
}

function num(v: unknown, fallback = 0): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : fallback;
}

function str(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

function obj(v: unknown): Record<string, unknown> {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function counts(v: unknown): MessageCounts {
  const o = obj(v);
  return Object.fromEntries(COUNTER_FIELDS.map((f) => [f, num(o[f])])) as MessageCounts;
}

/** The job controller's `{op:'status'}` answer (job-controller/protocol.ts StatusReply), read leniently. */
export function readJobControllerStatus(status: object): JobControllerView {
  const reply = status as Record<string, unknown>;
  const index = obj(reply.index);
  const pools = (Array.isArray(reply.pools) ? reply.pools : []).map((p): PoolView => {
    const o = obj(p);
    return { name: str(o.name) ?? '?', jobLimit: num(o.job_limit), running: num(o.running), threads: num(o.threads) };
  });
  const jobs = (Array.isArray(reply.jobs) ? reply.jobs : []).map((j): JobView => {
    const o = obj(j);
    return { job: num(o.job), channel: str(o.channel) ?? '?', pool: str(o.pool) ?? '?', started: str(o.started), batches: num(o.batches), messages: num(o.messages), inHand: num(o.in_hand) };
  });
  const channels = Object.entries(obj(reply.channels))
    .map(([name, v]): ChannelView => {
      const o = obj(v);
      const c = obj(o.counters);
      return { name, messages: counts(c), recipients: counts(c.recipients), jobs: num(o.jobs), stopped: o.stopped === true };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
  const delivery: Record<string, DeliveryCounters> = {};
  for (const [name, v] of Object.entries(obj(reply.delivery))) {
    const o = obj(v);
    delivery[name] = { dnsCacheHits: num(o.dnsCacheHits), dnsCacheMisses: num(o.dnsCacheMisses), connectionsOpened: num(o.connectionsOpened), connectionsReused: num(o.connectionsReused) };
  }
  // The fan-outs' reports are the job controller's own data: only their shape is checked.
  const fanout: Record<string, FanoutStatus> = {};
  for (const [name, v] of Object.entries(obj(reply.fanout))) {
    const o = obj(v);
    if (Array.isArray(o.shaping) && Array.isArray(o.destinations)) fanout[name] = o as unknown as FanoutStatus;
  }
  const farm = obj(reply.farm);
  return {
    pid: typeof reply.pid === 'number' ? reply.pid : null,
    index: { size: num(index.size), max: num(index.max) },
    pools,
    jobs,
    channels,
    delivery,
    scan: readScanView(reply.scan),
    shaping: shapingView(fanout),
    farm: typeof farm.node === 'string' ? { node: farm.node, redisUp: farm.redis === 'up' } : null,
  };
}
