// The watcher keeps the parts running: a killed dispatcher or job controller comes back, and
// `imsimta restart`, `stop-msg PART`, `start-msg PART` act on one part while the rest runs; a
// restart the new configuration cannot carry out (a port taken) stops nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { freePort, waitFor } from '../helpers/instance.js';
import { MtaInstance, greeting, refused, isAlive, SERVER_GREETING } from '../helpers/running-instance.js';

const ADDRESS = '127.0.4.4';
let mta: MtaInstance;

before(async () => {
  mta = await MtaInstance.create({ address: ADDRESS, service: 'MIN_PROCS=1' });
  const r = await mta.cli('start-msg', []);
  assert.equal(r.code, 0, r.stderr);
});
after(async () => mta?.cleanup());

/** Pids of the parts that are up (a part being started or stopped counts as absent). */
const pids = async () => {
  const rows = await mta.processes();
  const of = (role: string) => rows.find((r) => r.role === role && (r.state === undefined || r.state === 'running'))?.pid;
  return { watcher: of('watcher'), dispatcher: of('dispatcher'), job_controller: of('job_controller') };
};

test('SIGKILL of the dispatcher: the watcher starts a new one and the port answers again', async () => {
  const before = await pids();
  process.kill(before.dispatcher!, 'SIGKILL');
  const now = await waitFor(async () => {
    const p = await pids();
    return p.dispatcher && p.dispatcher !== before.dispatcher ? p : null;
  }, { what: 'a new dispatcher' });
  assert.equal(now.watcher, before.watcher);
  assert.equal(now.job_controller, before.job_controller);
  assert.match(await waitFor(() => greeting(ADDRESS, mta.port), { what: 'the port to answer' }), SERVER_GREETING);
});

test('SIGKILL of the job controller: restarted', async () => {
  const before = await pids();
  process.kill(before.job_controller!, 'SIGKILL');
  const now = await waitFor(async () => {
    const p = await pids();
    return p.job_controller && p.job_controller !== before.job_controller ? p : null;
  }, { what: 'a new job controller' });
  assert.equal(now.dispatcher, before.dispatcher);
  assert.ok(mta.runFiles().includes('job_controller.sock'));
});

test('imsimta restart dispatcher: new dispatcher, same job controller', async () => {
  const before = await pids();
  const r = await mta.imsimta(['restart', 'dispatcher']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^restarted: SMTP on ${ADDRESS.replace(/\./g, '\\.')}:${mta.port}\\n$`));
  const now = await pids();
  assert.notEqual(now.dispatcher, before.dispatcher);
  assert.equal(isAlive(before.dispatcher!), false);
  assert.equal(now.job_controller, before.job_controller);
  assert.equal(now.watcher, before.watcher);
  assert.match(await greeting(ADDRESS, mta.port), SERVER_GREETING);
});

test('imsimta restart with a configuration error: refused with file:line, nothing stopped', async () => {
  const before = await pids();
  const good = mta.inst.read('etc/dispatcher.cnf');
  mta.inst.write('etc/dispatcher.cnf', `${good}\nMAX_PROCS=many\n`);
  try {
    const r = await mta.imsimta(['restart']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^imsimta: \S*dispatcher\.cnf:\d+: .*\n$/);
    assert.deepEqual(await pids(), before);
  } finally {
    mta.inst.write('etc/dispatcher.cnf', good);
  }
});

test('imsimta restart with a new port another program holds: refused before anything is stopped, the SMTP port still answers', async () => {
  const before = await pids();
  const taken = await freePort(ADDRESS);
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen(taken, ADDRESS, resolve));
  const good = mta.inst.read('etc/dispatcher.cnf');
  mta.inst.write('etc/dispatcher.cnf', `${good}\n[SERVICE=SMTP_SUBMIT]\nPORT=${taken}\nINTERFACE_ADDRESS=${ADDRESS}\n`);
  try {
    const r = await mta.imsimta(['restart', 'dispatcher']);
    assert.equal(r.code, 1, r.stdout);
    assert.equal(r.stderr, `imsimta: port ${taken} on ${ADDRESS} is in use by another program: nothing restarted, the running dispatcher keeps its ports\n`);
    assert.deepEqual(await pids(), before);
    assert.match(await greeting(ADDRESS, mta.port), SERVER_GREETING);
  } finally {
    squatter.close();
    mta.inst.write('etc/dispatcher.cnf', good);
  }
});

test('stop-msg dispatcher, then start-msg dispatcher; the job controller runs on', async () => {
  const before = await pids();
  const stop = await mta.cli('stop-msg', ['dispatcher']);
  assert.equal(stop.code, 0, stop.stderr);
  assert.equal(stop.stdout, 'dispatcher stopped\n');
  assert.equal(isAlive(before.dispatcher!), false);
  assert.ok(await refused(ADDRESS, mta.port));
  let now = await pids();
  assert.equal(now.dispatcher, undefined);
  assert.equal(now.job_controller, before.job_controller);
  assert.ok(!mta.runFiles().includes('dispatcher.pid'));

  const again = await mta.cli('stop-msg', ['dispatcher']);
  assert.equal(again.stdout, 'dispatcher is not running\n');

  const start = await mta.cli('start-msg', ['dispatcher']);
  assert.equal(start.code, 0, start.stderr);
  assert.match(start.stdout, /^started: SMTP on /);
  now = await pids();
  assert.ok(now.dispatcher && now.dispatcher !== before.dispatcher);
  assert.equal(now.job_controller, before.job_controller);
  assert.match(await greeting(ADDRESS, mta.port), SERVER_GREETING);
});

test('imsimta restart: both parts anew, the watcher stays', async () => {
  const before = await pids();
  const r = await mta.imsimta(['restart']);
  assert.equal(r.code, 0, r.stderr);
  const now = await pids();
  assert.equal(now.watcher, before.watcher);
  assert.notEqual(now.dispatcher, before.dispatcher);
  assert.notEqual(now.job_controller, before.job_controller);
  assert.match(await greeting(ADDRESS, mta.port), SERVER_GREETING);
});

test('bad arguments are usage errors', async () => {
  const r = await mta.imsimta(['restart', 'smtp']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^imsimta: unknown part "smtp" \(dispatcher or job_controller\)\nusage: /);
  const s = await mta.cli('stop-msg', ['everything']);
  assert.equal(s.code, 2);
});
