// The files of log/ (src/common/log-files.ts): live or rotated, the renames of a size-based
// rotation, what purge removes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isLiveLog, isRotatedLog, logsToPurge, logsToRotate, parseLogNumber, rotationRenames } from '../../src/common/log-files.js';

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
