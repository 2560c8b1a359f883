// A piscina worker thread of a job controller pool: runs master channel jobs, keeping each
// channel's job (connections, DNS and reachability caches) between requests.
import { threadId, workerData } from 'node:worker_threads';
import { createLogger } from '../common/logger.js';
import { JobHost, type JobTask, type JobTaskResult } from './job-host.js';

const { logDir } = workerData as { logDir: string };
const host = new JobHost(createLogger(logDir, 'job'), threadId);

export default function run(task: JobTask): Promise<JobTaskResult> {
  return host.run(task);
}
