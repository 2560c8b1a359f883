// How many more master jobs a channel may start now (reference §2.4): one job per `threaddepth`
// messages of backlog (or per `filesperjob` files / `addrsperjob` addresses when those ask for
// more), at least one while there is work, never more than the channel's `maxjobs` nor what is
// left of its pool's JOB_LIMIT.

export interface ChannelDemand {
  /** Messages waiting for the channel: due now, plus those in the hands of its jobs. */
  backlogMessages: number;
  /** Pending recipients of those messages. */
  backlogRecipients: number;
  /** Messages due now and not yet handed to a job (nothing to start a job for when 0). */
  readyMessages: number;
  runningJobs: number;
  /**
   * Of the running jobs, those whose batch has gone on for a while (waiting on slow or silent
   * hosts): they do not hold back the messages that arrived meanwhile, which get a job of their
   * own while maxjobs and the pool allow. Without this, one batch stuck on a host that never
   * greets would keep every new message of the channel waiting for the greeting timeout.
   */
  slowJobs?: number;
  threadDepth: number;
  maxJobs: number;
  filesPerJob: number;
  addrsPerJob: number;
}

export interface PoolRoom {
  jobLimit: number;
  runningJobs: number;
}

/** Jobs the channel would like to have running in all, before pool limits. */
export function jobsWanted(d: ChannelDemand): number {
  if (d.backlogMessages <= 0) return 0;
  const perDepth = Math.ceil(d.backlogMessages / Math.max(1, d.threadDepth));
  const perFiles = d.filesPerJob > 0 ? Math.ceil(d.backlogMessages / d.filesPerJob) : 1;
  const perAddrs = d.addrsPerJob > 0 ? Math.ceil(d.backlogRecipients / d.addrsPerJob) : 1;
  return Math.min(Math.max(1, perDepth, perFiles, perAddrs), Math.max(1, d.maxJobs));
}

/** Jobs to start now for the channel: what it wants beyond what runs, within the pool's room. */
export function jobsToStart(d: ChannelDemand, pool: PoolRoom): number {
  if (d.readyMessages <= 0) return 0;
  const wanted = jobsWanted(d) - (d.runningJobs - Math.min(d.slowJobs ?? 0, d.runningJobs));
  const underMaxJobs = Math.max(1, d.maxJobs) - d.runningJobs;
  const poolFree = pool.jobLimit - pool.runningJobs;
  return Math.max(0, Math.min(wanted, underMaxJobs, poolFree, d.readyMessages));
}

/** Messages a job takes per request: a threaddepth's worth (1…100), so that jobs share a backlog. */
export function batchSize(threadDepth: number): number {
  return Math.min(100, Math.max(1, Math.floor(threadDepth)));
}
