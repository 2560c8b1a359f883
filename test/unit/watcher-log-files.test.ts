// The files of log/: live or rotated, the renames of a size-based rotation, what purge removes,
// and the summaries a reload prints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isLiveLog, isRotatedLog, logsToPurge, logsToRotate, parseLogNumber, rotationRenames } from '../../src/watcher/log-files.js';
import { reloadFailures, reloadSummary, withEarlierChanges } from '../../src/watcher/reload.js';
import type { InstanceConfig } from '../../src/config/types.js';

test('live and rotated names', () => {
  for (const live of ['mail.log', 'watcher.log', 'tcp_smtp_server.log', 'job_controller.log', 'console.log']) {
    assert.equal(isLiveLog(live), true, live);
    assert.equal(isRotatedLog(live), false, live);
  }
  for (const rotated of ['mail.log.1', 'mail.log.12', 'mail.log.2.gz', 'mail.log-20261130', 'mail.log-20261130.gz', 'job.log-20261130-1764460800', 'dispatcher.log.1.xz']) {
    assert.equal(isRotatedLog(rotated), true, rotated);
    assert.equal(isLiveLog(rotated), false, rotated);
  }
  for (const other of ['counters.json', 'mail.log.bak', 'notes.txt', 'mail.log-old', 'transcript']) {
    assert.equal(isRotatedLog(other), false, other);
    assert.equal(isLiveLog(other), false, other);
  }
});

test('logs over LOG_MAX_SIZE rotate; console.log and rotated copies never; 0 or null is off', () => {
  const entries = [
    { name: 'mail.log', size: 5000, mtimeMs: 0 },
    { name: 'watcher.log', size: 100, mtimeMs: 0 },
    { name: 'console.log', size: 9000, mtimeMs: 0 },
    { name: 'mail.log.1', size: 9000, mtimeMs: 0 },
    { name: 'tcp_smtp_server.log', size: 4097, mtimeMs: 0 },
  ];
  assert.deepEqual(logsToRotate(entries, 4096), ['mail.log', 'tcp_smtp_server.log']);
  assert.deepEqual(logsToRotate(entries, 0), []);
  assert.deepEqual(logsToRotate(entries, null), []);
});

test('rotation shifts the numbered copies, oldest first', () => {
  assert.deepEqual(rotationRenames('mail.log', ['mail.log']), [{ from: 'mail.log', to: 'mail.log.1' }]);
  assert.deepEqual(rotationRenames('mail.log', ['mail.log', 'mail.log.1', 'mail.log.2', 'mail.log.4', 'mail.log.3.gz', 'job.log.1']), [
    { from: 'mail.log.2', to: 'mail.log.3' },
    { from: 'mail.log.1', to: 'mail.log.2' },
    { from: 'mail.log', to: 'mail.log.1' },
  ]);
});

test('purge takes rotated files older than N days, never live ones', () => {
  const day = 86_400_000;
  const now = 100 * day;
  const entries = [
    { name: 'mail.log', size: 1, mtimeMs: now - 30 * day },
    { name: 'console.log', size: 1, mtimeMs: now - 30 * day },
    { name: 'mail.log.1', size: 1, mtimeMs: now - 1 * day },
    { name: 'mail.log.2', size: 1, mtimeMs: now - 8 * day },
    { name: 'mail.log-20261101.gz', size: 1, mtimeMs: now - 30 * day },
    { name: 'counters.json', size: 1, mtimeMs: now - 30 * day },
  ];
  assert.deepEqual(logsToPurge(entries, now, 7), ['mail.log-20261101.gz', 'mail.log.2']);
  assert.deepEqual(logsToPurge(entries, now, 0), ['mail.log-20261101.gz', 'mail.log.1', 'mail.log.2']);
  assert.deepEqual(logsToPurge(entries, now, 60), []);
});

test('LOG_MAX_SIZE and LOG_KEEP_DAYS are whole numbers', () => {
  assert.deepEqual(parseLogNumber('LOG_MAX_SIZE', undefined), { value: null, problem: null });
  assert.deepEqual(parseLogNumber('LOG_MAX_SIZE', ' 1048576 '), { value: 1048576, problem: null });
  assert.match(parseLogNumber('LOG_MAX_SIZE', '10M').problem!, /LOG_MAX_SIZE must be a whole number/);
  assert.match(parseLogNumber('LOG_KEEP_DAYS', '-1').problem!, /LOG_KEEP_DAYS/);
});

test('the reload summary is one line naming rules, channels, ports and the parts', () => {
  const config = { imta: { rules: [1, 2, 3], channels: [1, 2] } } as unknown as InstanceConfig;
  const dispatcher = {
    ok: true,
    listeners: [
      { service: 'SMTP', address: '127.0.11.1', port: 2525 },
      { service: 'SMTP', address: '127.0.11.1', port: 2526 },
    ],
    added: [{ service: 'SMTP', address: '127.0.11.1', port: 2526 }],
    removed: [{ service: 'SUBMIT', address: '127.0.11.1', port: 587 }],
    reloadedProcesses: 2,
    failedProcesses: [],
  };
  const line = reloadSummary({ config, dispatcher, jobController: { state: 'reloaded' } });
  assert.equal(
    line,
    'configuration reloaded: 3 rewrite rules, 2 channels; SMTP on 127.0.11.1:2525 and 127.0.11.1:2526 (new: SMTP 127.0.11.1:2526; closed: SUBMIT 127.0.11.1:587); 2 SMTP server processes switched; job controller reloaded',
  );
  assert.doesNotMatch(line, /\n/);
  assert.deepEqual(reloadFailures({ dispatcher, jobController: { state: 'reloaded' } }), []);
  assert.deepEqual(reloadFailures({ dispatcher: { ...dispatcher, failedProcesses: ['SMTP server process 7: bad'] }, jobController: { state: 'failed', error: 'x' } }), [
    'SMTP server process 7: bad (it keeps its configuration)',
    'job controller kept its configuration: x',
  ]);
  assert.match(reloadSummary({ config, dispatcher: null, jobController: { state: 'not running' } }), /dispatcher not running; job controller not running$/);
});

test('a command after the watcher applied the same edit reports the port changes of that edit', () => {
  const submit = { service: 'SUBMIT', address: '127.0.11.1', port: 587 };
  const extra = { service: 'SMTP', address: '127.0.11.1', port: 2526 };
  const now = { ok: true, listeners: [], added: [], removed: [], reloadedProcesses: 0, failedProcesses: [] };
  assert.deepEqual(withEarlierChanges(now, { added: [extra], removed: [submit] }), { ...now, added: [extra], removed: [submit] });
  // Added by the edit, removed again by the command's own reload: no change to report.
  assert.deepEqual(withEarlierChanges({ ...now, removed: [{ ...extra }] }, { added: [extra], removed: [] }), now);
  assert.deepEqual(withEarlierChanges({ ...now, added: [{ ...submit }] }, { added: [], removed: [submit] }), now);
});
