// start-msg / stop-msg on a temporary instance, as an operator uses them.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { binDir, waitFor } from '../helpers/instance.js';
import { MtaInstance, greeting, refused, isAlive, SERVER_GREETING } from '../helpers/running-instance.js';
import { requestJson } from '../../src/common/ipc-socket.js';

const ADDRESS = '127.0.4.1';
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups) await c();
});

async function instance(service = ''): Promise<MtaInstance> {
  const mta = await MtaInstance.create({ address: ADDRESS, service });
  cleanups.push(() => mta.cleanup());
  return mta;
}

test('start-msg with a configuration error: one line with file:line, nothing started', async () => {
  const mta = await instance();
  mta.inst.write('etc/dispatcher.cnf', `[SERVICE=SMTP]\nPORT=${mta.port}\nMAX_CONNS=lots\n`);
  const r = await mta.cli('start-msg', []);
  assert.notEqual(r.code, 0);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /dispatcher\.cnf:3:/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  assert.deepEqual(mta.runFiles(), []);
  assert.ok(await refused(ADDRESS, mta.port));
});

test('start-msg when the port is taken: one line naming port and address, nothing left running', async () => {
  const mta = await instance();
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen(mta.port, ADDRESS, resolve));
  try {
    const r = await mta.cli('start-msg', []);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr.trim(), `start-msg: port ${mta.port} on ${ADDRESS} is in use by another program`);
    assert.deepEqual(mta.runFiles(), []);
    // The dispatcher exits before its log file had been opened: no stack trace ("sonic boom is not
    // ready yet") on the console, and its one line in dispatcher.log.
    assert.equal(mta.inst.read('log/console.log'), '');
    assert.match(mta.inst.read('log/dispatcher.log'), new RegExp(`"msg":"port ${mta.port} on ${ADDRESS.replace(/\./g, '\\.')} is in use by another program"`));
    const status = await mta.imsimta(['process']);
    assert.equal(status.code, 1);
    assert.match(status.stderr, /not running/);
  } finally {
    squatter.close();
  }
});

test('start-msg, process, start-msg again, stop-msg, stop-msg again', async () => {
  const mta = await instance('MIN_PROCS=2');
  const start = await mta.cli('start-msg', []);
  assert.equal(start.code, 0, start.stderr);
  assert.match(start.stdout, new RegExp(`^tsubame started: SMTP on ${ADDRESS.replace(/\./g, '\\.')}:${mta.port}; job controller pid \\d+ \\(watcher pid \\d+\\)\\n$`));

  assert.match(await greeting(ADDRESS, mta.port), SERVER_GREETING);
  const rows = await waitFor(async () => {
    const r = await mta.processes();
    return r.filter((p) => p.role === 'smtp_server').length === 2 && r.some((p) => p.role === 'smtp_server' && p.served === 1) ? r : null;
  }, { what: 'two SMTP server processes, one of which served the greeting' });
  for (const role of ['watcher', 'dispatcher', 'job_controller']) assert.equal(rows.filter((p) => p.role === role).length, 1, role);
  for (const row of rows.filter((p) => p.role === 'smtp_server')) assert.equal(row.service, 'SMTP');
  for (const f of ['watcher.pid', 'dispatcher.pid', 'job_controller.pid', 'watcher.sock']) assert.ok(mta.runFiles().includes(f), f);

  const table = await mta.imsimta(['process']);
  assert.equal(table.code, 0);
  assert.match(table.stdout, /^ROLE\s+PID\s+SERVICE\/CHANNEL\s+CONNS\s+SERVED\s+STARTED\n/);
  assert.match(table.stdout, /\nsmtp_server\s+\d+\s+SMTP\s+0\s+/);

  const again = await mta.cli('start-msg', []);
  assert.equal(again.code, 0);
  assert.match(again.stdout, /already running/);

  const stop = await mta.cli('stop-msg', []);
  assert.equal(stop.code, 0, stop.stderr);
  assert.equal(stop.stdout, 'tsubame stopped\n');
  for (const row of rows) assert.equal(isAlive(row.pid), false, `${row.role} ${row.pid} still alive`);
  assert.deepEqual(mta.runFiles(), []);
  assert.ok(await refused(ADDRESS, mta.port));

  const stopAgain = await mta.cli('stop-msg', []);
  assert.equal(stopAgain.code, 0);
  assert.equal(stopAgain.stdout, 'tsubame is not running\n');
});

test('start-msg --foreground: one line on stdout, stops on SIGTERM', async () => {
  const mta = await instance();
  const child = spawn(join(binDir, 'start-msg'), ['--foreground', '--root', mta.root], { stdio: ['ignore', 'pipe', 'pipe'] });
  mta.pids.add(child.pid!);
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await waitFor(() => stdout.includes('\n'), { what: 'the started line', timeoutMs: 20_000 });
  assert.match(stdout, new RegExp(`^tsubame started: SMTP on ${ADDRESS.replace(/\./g, '\\.')}:${mta.port}; job controller pid \\d+ \\(watcher pid ${child.pid}\\)\\n$`));
  assert.match(await greeting(ADDRESS, mta.port), SERVER_GREETING);
  const rows = await mta.processes();
  assert.equal(rows.find((r) => r.role === 'watcher')?.pid, child.pid);

  child.kill('SIGTERM');
  assert.equal(await exited, 0);
  assert.match(stdout, /tsubame stopped\n$/);
  for (const row of rows) assert.equal(isAlive(row.pid), false, `${row.role} ${row.pid} still alive`);
  assert.deepEqual(mta.runFiles(), []);
});

test('stale pid files and sockets of a killed watcher do not block start-msg; its parts are stopped', async () => {
  const mta = await instance();
  assert.equal((await mta.cli('start-msg', [])).code, 0);
  const before = await mta.processes();
  const pid = (role: string) => before.find((r) => r.role === role)!.pid;
  process.kill(pid('watcher'), 'SIGKILL');
  await waitFor(() => !isAlive(pid('watcher')), { what: 'the watcher to die' });

  const r = await mta.cli('start-msg', []);
  assert.equal(r.code, 0, r.stderr);
  const afterRows = await mta.processes();
  for (const role of ['watcher', 'dispatcher', 'job_controller']) {
    const now = afterRows.find((x) => x.role === role)?.pid;
    assert.ok(now && now !== pid(role), `${role} has a new process`);
    assert.equal(isAlive(pid(role)), false, `old ${role} is gone`);
  }
  assert.match(await greeting(ADDRESS, mta.port), SERVER_GREETING);
});

test('a channel stopped with qm stop: run/ is empty after stop-msg, and the channel is still stopped after the next start', async () => {
  const mta = await instance();
  assert.equal((await mta.cli('start-msg', [])).code, 0);
  await mta.processes();
  const stop = await mta.imsimta(['qm', 'stop', 'tcp_local']);
  assert.equal(stop.code, 0, stop.stderr);
  assert.equal((await mta.cli('stop-msg', [])).code, 0);
  assert.deepEqual(mta.runFiles(), [], 'nothing left in run/');

  assert.equal((await mta.cli('start-msg', [])).code, 0);
  await mta.processes();
  const status = await mta.imsimta(['qm', 'summarize', '--json']);
  assert.equal(status.code, 0, status.stderr);
  const channels = (JSON.parse(status.stdout) as { channels: Array<{ name: string; stopped?: boolean }> }).channels;
  assert.equal(channels.find((c) => c.name === 'tcp_local')?.stopped, true, 'still stopped');
  const jc = await runningJobControllerStatus(mta);
  assert.deepEqual(jc.stopped, ['tcp_local'], 'the job controller honours it');
  assert.equal((await mta.cli('stop-msg', [])).code, 0);
  assert.deepEqual(mta.runFiles(), []);
});

async function runningJobControllerStatus(mta: MtaInstance): Promise<{ stopped: string[] }> {
  const reply = await requestJson(join(mta.root, 'run', 'job_controller.sock'), { op: 'status' }, 10_000);
  assert.ok(reply, 'the job controller answers');
  return reply as unknown as { stopped: string[] };
}
