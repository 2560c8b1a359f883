// Gathers one InstanceSnapshot: the watcher's view of its parts, the dispatcher's processes and
// service totals (over the watcher's IPC channel to it), the job controller's status (over
// run/job_controller.sock), the queue depth from the queue directories, and, for the status
// page, the last deferrals of mail.log. The sources are asked at once; one that fails or does
// not answer in time leaves its part of the snapshot empty and adds a line to `problems`.
import { askJobController } from '../job-controller/client.js';
import { requestTimeoutMs } from '../job-controller/protocol.js';
import { addAuthCounts, type FromChild, type ListenerInfo, type ServiceSummary } from '../dispatcher/protocol.js';
import { addHistograms } from '../common/histogram.js';
import { readRecentDeferrals } from './mail-log-tail.js';
import { readQueueDepth, type ChannelQueueDepth } from '../queue/index.js';
import { readJobControllerStatus, type InstanceSnapshot, type JobControllerView, type PartView, type ProcessView, type ReloadView } from './snapshot.js';

export interface PartStatusLike {
  name: string;
  state: string;
  pid: number | null;
  started: string | null;
  restarts: number;
}

/** What the watcher hands the metrics endpoint. */
export interface MetricsSources {
  root: string;
  /** The watcher's own pid and start. */
  watcher: { pid: number; started: string };
  parts(): PartStatusLike[];
  listeners(): ListenerInfo[];
  /** The dispatcher's `processes` answer, null when it is not running or does not answer. */
  dispatcher(timeoutMs: number): Promise<FromChild | null>;
  jobControllerSocket: string;
  queueDir: string;
  mailLog: string;
  /** Channels of imta.cnf (listed even with an empty queue). */
  channelNames(): string[];
  /** The outcome of the last configuration change. */
  reload?(): ReloadView | null;
  now?(): number;
}

export interface GatherOptions {
  /** Read the last deferrals of mail.log (the status page shows them; /metrics does not need them). */
  deferrals: number;
  /** For the dispatcher's answer (the job controller's is protocol.ts's `status` time). */
  timeoutMs?: number;
}

export async function gatherSnapshot(src: MetricsSources, opts: GatherOptions): Promise<InstanceSnapshot> {
  const timeoutMs = opts.timeoutMs ?? 3000;
  const problems: string[] = [];
  const parts = src.parts().map((p): PartView => ({ name: p.name, state: p.state, pid: p.pid, started: p.started, restarts: p.restarts }));
  const running = (name: string) => parts.find((p) => p.name === name)?.state === 'running';

  const [dispatcher, jobController, queue, deferrals] = await Promise.all([
    running('dispatcher')
      ? src.dispatcher(timeoutMs).catch(() => null)
      : Promise.resolve(null),
    running('job_controller')
      ? askJobController(src.jobControllerSocket, { op: 'status' }).then(
          (reply): JobControllerView | null => (reply && reply.ok !== false ? readJobControllerStatus(reply) : null),
          () => null,
        )
      : Promise.resolve(null),
    readQueueDepth(src.queueDir, src.channelNames()).catch((err: Error): ChannelQueueDepth[] | null => {
      problems.push(`queue: ${err.message}`);
      return null;
    }),
    opts.deferrals > 0
      ? readRecentDeferrals(src.mailLog, { limit: opts.deferrals }).catch((err: Error) => {
          problems.push(`mail.log: ${err.message}`);
          return [];
        })
      : Promise.resolve([]),
  ]);
  const dispatcherReply = dispatcher?.type === 'processes' ? dispatcher : null;
  if (running('dispatcher') && !dispatcherReply) problems.push(`the dispatcher did not answer within ${timeoutMs / 1000} s`);
  if (running('job_controller') && !jobController) problems.push(`the job controller did not answer within ${requestTimeoutMs({ op: 'status' }) / 1000} s`);

  const processes: ProcessView[] = [{ role: 'watcher', pid: src.watcher.pid, service: null, connections: null, served: null, started: src.watcher.started, state: 'running' }];
  const partRow = (role: 'dispatcher' | 'job_controller') => {
    const p = parts.find((x) => x.name === role);
    if (p && p.pid !== null) processes.push({ role, pid: p.pid, service: null, connections: null, served: null, started: p.started, state: p.state });
  };
  partRow('dispatcher');
  for (const p of dispatcherReply?.processes ?? []) {
    processes.push({ role: 'smtp_server', pid: p.pid, service: p.service, connections: p.connections, served: p.served, started: p.started, state: p.retiring ? 'retiring' : p.ready ? 'ready' : 'starting' });
  }
  partRow('job_controller');

  return {
    takenAt: src.now?.() ?? Date.now(),
    root: src.root,
    watcher: src.watcher,
    parts,
    listeners: src.listeners(),
    processes,
    services: dispatcherReply ? mergeServices(dispatcherReply.services ?? []) : null,
    waitingConnections: dispatcherReply ? dispatcherReply.waiting : null,
    jobController,
    queue,
    deferrals,
    problems,
    reload: src.reload?.() ?? null,
  };
}

/** A service drained after a reload removed it and a namesake added again: one entry per name, added up. */
function mergeServices(list: readonly ServiceSummary[]): ServiceSummary[] {
  const byName = new Map<string, ServiceSummary>();
  for (const s of list) {
    const had = byName.get(s.service);
    byName.set(
      s.service,
      had
        ? { service: s.service, processes: had.processes + s.processes, connections: had.connections + s.connections, served: had.served + s.served, enqueueLatency: addHistograms(had.enqueueLatency, s.enqueueLatency), auth: addAuthCounts(had.auth, s.auth) }
        : s,
    );
  }
  return [...byName.values()].sort((a, b) => a.service.localeCompare(b.service));
}
