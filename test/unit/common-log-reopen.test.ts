// SIGHUP reopens every log of a process by name: log/mail.log (MailLog), pino component logs,
// and those of worker threads, which receive no signals themselves.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { MailLog } from '../../src/common/mail-log.js';
import { createLogger, syncLogs, reopenLogs } from '../../src/common/logger.js';
import { waitFor } from '../helpers/instance.js';

// One directory for the file, removed after its last test: a logger stays registered for reopening
// for the life of the process, so a later reopen (the second test's) would create a removed
// directory again.
const root = mkdtempSync(join(tmpdir(), 'tsubame-reopen-'));
after(() => rmSync(root, { recursive: true, force: true }));
const freshDir = (name: string) => {
  const dir = join(root, name);
  mkdirSync(dir);
  return dir;
};

const record = (recipient: string) => ({ event: 'J' as const, id: '', source: 'tcp_local', destination: '', size: 0, from: 'a@b.test', recipient, status: '550 no' });

test('mail.log and a component log are reopened by name on SIGHUP', async () => {
  const dir = freshDir('signal');
  const mailLog = new MailLog(join(dir, 'mail.log'));
  const logger = createLogger(dir, 'unit');
  mailLog.write([record('one@x.test')]);
  logger.info('before');
  await waitFor(() => existsSync(join(dir, 'unit.log')) && readFileSync(join(dir, 'unit.log'), 'utf8').includes('before'), { what: 'the first log record' });
  renameSync(join(dir, 'mail.log'), join(dir, 'mail.log.1'));
  renameSync(join(dir, 'unit.log'), join(dir, 'unit.log.1'));

  process.kill(process.pid, 'SIGHUP'); // without the handler this would end the test process
  await waitFor(() => existsSync(join(dir, 'unit.log')), { what: 'unit.log to be reopened' });
  mailLog.write([record('two@x.test')]);
  logger.info('after');
  syncLogs();
  await waitFor(() => readFileSync(join(dir, 'unit.log'), 'utf8').includes('after'), { what: 'the record in the new unit.log' });
  assert.match(readFileSync(join(dir, 'mail.log'), 'utf8'), /two@x\.test/);
  assert.doesNotMatch(readFileSync(join(dir, 'mail.log'), 'utf8'), /one@x\.test/);
  assert.doesNotMatch(readFileSync(join(dir, 'mail.log.1'), 'utf8'), /two@x\.test/);
  assert.doesNotMatch(readFileSync(join(dir, 'unit.log.1'), 'utf8'), /after/);
  mailLog.close();
});

test('a worker thread reopens its logs when the main thread does', async () => {
  const dir = freshDir('worker');
  const loggerUrl = pathToFileURL(join(import.meta.dirname, '../../src/common/logger.js')).href;
  const worker = new Worker(
    `const { parentPort } = require('node:worker_threads');
     import(${JSON.stringify(loggerUrl)}).then(({ createLogger }) => {
       const logger = createLogger(${JSON.stringify(dir)}, 'thread');
       parentPort.on('message', (m) => logger.info(m));
       parentPort.postMessage('ready');
     });`,
    { eval: true },
  );
  try {
    await new Promise((resolve) => worker.once('message', resolve));
    worker.postMessage('before');
    await waitFor(() => existsSync(join(dir, 'thread.log')) && readFileSync(join(dir, 'thread.log'), 'utf8').includes('before'), { what: 'the worker record' });
    renameSync(join(dir, 'thread.log'), join(dir, 'thread.log.1'));
    reopenLogs();
    await waitFor(() => existsSync(join(dir, 'thread.log')), { what: 'the worker to reopen thread.log' });
    worker.postMessage('after');
    await waitFor(() => readFileSync(join(dir, 'thread.log'), 'utf8').includes('after'), { what: 'the record in the new thread.log' });
    assert.doesNotMatch(readFileSync(join(dir, 'thread.log.1'), 'utf8'), /after/);
  } finally {
    await worker.terminate();
  }
});
