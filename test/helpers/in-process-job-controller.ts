// The job controller class run in the test's own process (no pools, a scripted runner): the
// instance it runs on and the controller started on it, both cleaned up after the file's tests.
import { after } from 'node:test';
import { makeInstance, type TestInstance } from './instance.js';
import { loadInstanceConfigOrThrow } from '../../src/config/load.js';
import { silentLogger } from '../../src/common/logger.js';
import { JobController, type ControllerOptions } from '../../src/job-controller/controller.js';
import type { JobRunner } from '../../src/job-controller/runner.js';

const instances: TestInstance[] = [];
const controllers: JobController[] = [];
after(async () => {
  for (const c of controllers) await c.stop().catch(() => {});
  for (const i of instances) i.remove();
});

/** An instance whose remote mail goes to tcp_local (no MX, retry after 1 h), with `jc` as job_controller.cnf. */
export function jcInstance(jc = '[POOL=DEFAULT]\nJOB_LIMIT=2\n'): TestInstance {
  const inst = makeInstance({
    files: {
      'etc/imta.cnf': `. $U%$H@tcp-daemon\n\nl\nlocalhost\n\ntcp_local smtp nomx backoff "PT1H"\ntcp-daemon\n`,
      'etc/job_controller.cnf': jc,
      'etc/option.dat': 'LOCAL_HOST=mta.test\n',
      'etc/dispatcher.cnf': '[SERVICE=SMTP]\nPORT=2525\n',
    },
  });
  instances.push(inst);
  return inst;
}

/** A job controller on `inst`, started, with its first scan done. */
export async function startController(inst: TestInstance, runner: JobRunner, more: Partial<ControllerOptions> = {}): Promise<JobController> {
  const c = new JobController({ config: loadInstanceConfigOrThrow(inst.root), runner, logger: silentLogger(), ...more });
  controllers.push(c);
  const { scanned } = await c.start();
  await scanned;
  return c;
}
