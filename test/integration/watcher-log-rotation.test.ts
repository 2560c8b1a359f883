// Log handling: logrotate style (rename, SIGHUP to the watcher: every process reopens its
// logs), size-based rotation with LOG_MAX_SIZE, and `imsimta purge` removing only old rotated files.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { makeInstance, runCli, waitFor } from '../helpers/instance.js';
import type { MtaInstance } from '../helpers/running-instance.js';
import { parseMailLogLine } from '../../src/common/mail-log.js';
import { imtaCnf, REFUSE_BLOCKED, logRecords, startMta, swaks } from './reload-harness.js';

const ADDRESS = '127.0.11.3';
let mta: MtaInstance;

before(async () => {
  mta = await startMta({ address: ADDRESS });
});
after(async () => mta?.cleanup());

const log = (name: string) => join(mta.root, 'log', name);
/** Recipients of the J (rejected) records in a mail.log file. */
const rejectedIn = (name: string) =>
  existsSync(log(name))
    ? readFileSync(log(name), 'utf8')
        .split('\n')
        .map(parseMailLogLine)
        .filter((r) => r?.event === 'J')
        .map((r) => r!.recipient)
    : [];
const refuse = (...to: string[]) => swaks(ADDRESS, mta.port, ['--from', 'sender@client.test', '--to', to.join(','), '--quit-after', 'RCPT']);

test('logrotate style: after mv and SIGHUP to the watcher, new records go into new files', async () => {
  await refuse('before@blocked.test');
  await waitFor(() => rejectedIn('mail.log').includes('before@blocked.test'), { what: 'the first J record' });

  const components = ['watcher.log', 'dispatcher.log', 'job_controller.log', 'tcp_smtp_server.log'];
  for (const name of ['mail.log', ...components]) renameSync(log(name), log(`${name}.1`));
  const watcherPid = Number(readFileSync(join(mta.root, 'run', 'watcher.pid'), 'utf8'));
  process.kill(watcherPid, 'SIGHUP');
  // Each process opens its component log again by name as it handles the signal.
  await waitFor(() => components.every((name) => existsSync(log(name))), { what: 'the component logs to be reopened' });

  await refuse('after@blocked.test');
  await waitFor(() => rejectedIn('mail.log').includes('after@blocked.test'), { what: 'the J record in the new mail.log' });
  assert.deepEqual(rejectedIn('mail.log'), ['after@blocked.test']);
  assert.deepEqual(rejectedIn('mail.log.1'), ['before@blocked.test']);

  // The watcher writes into its new log too, and it still runs (SIGHUP did not stop it).
  const r = await mta.imsimta(['reload']);
  assert.equal(r.code, 0, r.stderr);
  await waitFor(() => logRecords(mta, 'watcher.log').some((x) => x.msg === 'configuration reloaded'), { what: 'a record in the new watcher.log' });
  assert.equal(logRecords(mta, 'watcher.log.1').filter((x) => x.msg === 'configuration reloaded').length, 0);
  for (const row of await mta.processes()) assert.ok(row.pid, `${row.role} runs`);
});

test('LOG_MAX_SIZE: a log past it is rotated (numbered copies shift) and writing goes on in a new file', async () => {
  mta.inst.write('etc/option.dat', 'INTERNAL_IP=127.0.0.0/8\nLOG_MAX_SIZE=1500\n');
  const r = await mta.imsimta(['reload']);
  assert.equal(r.code, 0, r.stderr);
  const olderCopy = readFileSync(log('mail.log.1'), 'utf8');

  // 20 records of ~120 bytes: past 1500 (the rotation may fall among them).
  const rcpts = Array.from({ length: 20 }, (_, i) => `r${i}@blocked.test`);
  await refuse(...rcpts);
  await waitFor(() => existsSync(log('mail.log.2')), { what: 'mail.log to be rotated', timeoutMs: 15_000 });
  assert.equal(readFileSync(log('mail.log.2'), 'utf8'), olderCopy);
  assert.ok(statSync(log('mail.log.1')).size > 1500);
  await waitFor(() => rcpts.every((x) => rejectedIn('mail.log.1').includes(x) || rejectedIn('mail.log').includes(x)), { what: 'every record in mail.log.1 or mail.log' });
  assert.ok(rejectedIn('mail.log.1').includes('r0@blocked.test'));
  assert.ok(logRecords(mta, 'watcher.log').some((x) => /^log rotated: mail\.log/.test(String(x.msg))));

  // The writers reopen as the SIGHUP reaches them: new records then go into the new mail.log.
  let n = 0;
  await waitFor(
    async () => {
      await refuse(`fresh${n++}@blocked.test`);
      return rejectedIn('mail.log').some((x) => x.startsWith('fresh'));
    },
    { what: 'a record in the new mail.log', timeoutMs: 15_000 },
  );
  assert.ok(statSync(log('mail.log')).size < 1500);
  assert.equal(existsSync(log('mail.log.3')), false, 'rotated once only');
});

test('purge removes rotated logs older than N days (LOG_KEEP_DAYS, default 7, --days), never live ones', async () => {
  const inst = makeInstance({ files: { 'etc/imta.cnf': imtaCnf(REFUSE_BLOCKED) } });
  try {
    const day = 86_400_000;
    const files: Record<string, number> = {
      'mail.log': 30,
      'console.log': 30,
      'watcher.log': 30,
      'mail.log.1': 1,
      'mail.log.2': 10,
      'mail.log.3.gz': 40,
      'mail.log-20261101': 20,
      'tcp_smtp_server.log.1': 3,
      'counters.json': 30,
    };
    for (const [name, ageDays] of Object.entries(files)) {
      inst.write(`log/${name}`, 'x\n');
      const t = (Date.now() - ageDays * day) / 1000;
      utimesSync(join(inst.root, 'log', name), t, t);
    }
    const present = () => Object.keys(files).filter((n) => existsSync(join(inst.root, 'log', n)));

    const first = await runCli('imsimta', ['purge', '--root', inst.root]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^purged 3 rotated log files \(6 bytes\) older than 7 days from /);
    assert.deepEqual(present(), ['mail.log', 'console.log', 'watcher.log', 'mail.log.1', 'tcp_smtp_server.log.1', 'counters.json']);

    inst.write('etc/option.dat', 'LOG_KEEP_DAYS=2\n');
    const configured = await runCli('imsimta', ['purge', '--root', inst.root]);
    assert.equal(configured.code, 0, configured.stderr);
    assert.match(configured.stdout, /^purged 1 rotated log file .* older than 2 days/);
    assert.deepEqual(present(), ['mail.log', 'console.log', 'watcher.log', 'mail.log.1', 'counters.json']);

    const all = await runCli('imsimta', ['purge', '--days', '0', '--root', inst.root]);
    assert.equal(all.code, 0, all.stderr);
    assert.deepEqual(present(), ['mail.log', 'console.log', 'watcher.log', 'counters.json']);

    const bad = await runCli('imsimta', ['purge', '--days', 'week', '--root', inst.root]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^imsimta: --days must be a whole number of days/);
  } finally {
    inst.remove();
  }
});
