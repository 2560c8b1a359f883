// SessionErrors, the pure error count of an inbound session: soft limit → delay, hard limit →
// close, junk commands past their limit count, an accepted message resets, 0 turns a limit off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SessionErrors } from '../../src/smtp-server/error-limits.js';

const LIMITS = { soft: 2, hard: 4, sleepMs: 1000, junkCommands: 3 };

test('errors up to the soft limit run at once, then with the delay, and the hard limit closes', () => {
  const e = new SessionErrors(LIMITS);
  const verdicts: string[] = [];
  for (let i = 0; i < 5; i++) {
    const v = e.beforeCommand('RCPT');
    verdicts.push(v.action === 'close' ? 'close' : String(v.delayMs));
    if (v.action === 'close') break;
    e.replied(550);
  }
  assert.deepEqual(verdicts, ['0', '0', '1000', '1000', 'close']);
});

test('only 4xx and 5xx replies are errors', () => {
  const e = new SessionErrors(LIMITS);
  for (const code of [220, 250, 251, 252, 334, 354, 221]) e.replied(code);
  assert.equal(e.errors, 0);
  for (const code of [421, 450, 501, 554]) e.replied(code);
  assert.equal(e.errors, 4);
});

test('junk commands are free up to the junk limit, each one after counts', () => {
  const e = new SessionErrors(LIMITS);
  for (const verb of ['RSET', 'NOOP', 'VRFY']) assert.deepEqual(e.beforeCommand(verb), { action: 'run', delayMs: 0 });
  assert.equal(e.errors, 0);
  e.beforeCommand('MAIL');
  assert.equal(e.errors, 0, 'MAIL is not junk');
  e.beforeCommand('ETRN');
  e.beforeCommand('RSET');
  assert.equal(e.errors, 2);
  assert.deepEqual(e.beforeCommand('RSET'), { action: 'run', delayMs: 1000 });
});

test('an accepted message starts both counts again', () => {
  const e = new SessionErrors(LIMITS);
  for (let i = 0; i < 5; i++) e.beforeCommand('RSET');
  e.replied(550);
  e.messageAccepted();
  assert.deepEqual([e.errors, e.junk], [0, 0]);
});

test('limits of 0 are off', () => {
  const e = new SessionErrors({ soft: 0, hard: 0, sleepMs: 1000, junkCommands: 0 });
  for (let i = 0; i < 1000; i++) {
    assert.deepEqual(e.beforeCommand('RSET'), { action: 'run', delayMs: 0 });
    e.replied(550);
  }
});
