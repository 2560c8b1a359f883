// The job controller process, forked by the watcher. Contract with the watcher: {type:'ready'}
// once it serves run/job_controller.sock, {type:'fatal', message} before exiting on a start-up
// error; SIGTERM = finish the batches in hand, save the counters and exit 0.
import { processHasCapability } from '../common/capabilities.js';
import { instancePaths, resolveRoot } from '../common/instance.js';
import { createLogger, syncLogs } from '../common/logger.js';
import { loadConfig } from './config.js';
import { loadConfigInForce } from '../config/in-force.js';
import { JobController } from './controller.js';
import { serveJobControllerSocket } from './protocol.js';
import { PiscinaRunner } from './runner.js';

const root = resolveRoot(undefined);
const paths = instancePaths(root);
const logger = createLogger(paths.log, 'job_controller');

function fatal(message: string): never {
  const line = message.split('\n').filter(Boolean).join('; ');
  logger.error({ error: line }, 'job controller cannot start');
  syncLogs();
  process.send?.({ type: 'fatal', message: `job controller: ${line}` });
  process.exit(1);
}

let controller: JobController;
try {
  // etc/ may hold an edit the watcher rejected (a restart after a crash): use the configuration in force.
  const { config, etcErrors } = loadConfigInForce(root);
  if (etcErrors) logger.warn({ errors: etcErrors }, 'etc/ has errors; starting with the configuration in force');
  controller = new JobController({
    config,
    runner: new PiscinaRunner({ logDir: paths.log, logger }),
    logger,
    loadConfig: () => loadConfig(root),
  });
} catch (err) {
  fatal((err as Error).message ?? String(err));
}

const { scanned } = await controller.start();
let server: import('node:net').Server;
try {
  server = await serveJobControllerSocket(paths.jobControllerSocket, (req) => controller.handle(req));
} catch (err) {
  fatal(`cannot listen on ${paths.jobControllerSocket}: ${(err as Error).message}`);
}
logger.info({ pid: process.pid }, 'job controller ready');
// Said once here rather than at each delivery (delivery/maildir.ts decides by the same test).
if (!processHasCapability('chown')) {
  logger.info(
    { uid: process.getuid?.() },
    "no CAP_CHOWN: Maildir files in a mailbox directory another user owns stay this process's user's, 0640 in the directory's group " +
      '(started as root, or given CAP_CHOWN by systemd, they are given to the owner)',
  );
}
process.send?.({ type: 'ready' });
void scanned;

let stopping = false;
const shutdown = () => {
  if (stopping) return;
  stopping = true;
  logger.info('job controller stopping: finishing the batches in hand');
  server.close();
  controller
    .stop()
    .catch((err: unknown) => logger.error({ err }, 'error while stopping'))
    .finally(() => {
      logger.info('job controller stopped');
      syncLogs();
      process.exit(0);
    });
};
process.on('SIGTERM', shutdown);
process.on('SIGHUP', () => controller.reopenLogs());
process.on('SIGINT', shutdown);
// The watcher went away (its IPC channel closed): do not run on unsupervised.
process.on('disconnect', shutdown);
