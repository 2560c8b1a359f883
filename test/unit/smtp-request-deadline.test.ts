// The per-request deadline of inbound sessions (src/smtp-server/request-deadline.ts), with the
// time passed in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RequestDeadline } from '../../src/smtp-server/request-deadline.js';

const b = (s: string) => Buffer.from(s, 'latin1');
const limits = { requestMs: 1000, minDataRate: 500 };

test('nothing owed before the first octet of a command', () => {
  const d = new RequestDeadline(limits);
  assert.equal(d.deadline(), null);
  assert.equal(d.expired(1e9), false);
});

test('a command line must end within the deadline of its first octet, however often octets come', () => {
  const d = new RequestDeadline(limits);
  d.received(100, b('E'));
  assert.equal(d.deadline(), 1100);
  // a byte every 400 ms does not move the deadline
  d.received(500, b('H'));
  d.received(900, b('L'));
  assert.equal(d.deadline(), 1100);
  assert.equal(d.expired(1099), false);
  assert.equal(d.expired(1100), true);
});

test('the line end settles the command; the next one starts with its own first octet', () => {
  const d = new RequestDeadline(limits);
  d.received(0, b('NOOP'));
  d.received(800, b('\r\n'));
  assert.equal(d.deadline(), null);
  d.received(5000, b('NO'));
  assert.equal(d.deadline(), 6000);
});

test('pipelined lines in one read: a complete group owes nothing, a partial last line starts now', () => {
  const d = new RequestDeadline(limits);
  d.received(0, b('MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n'));
  assert.equal(d.deadline(), null);
  d.received(10, b('RCPT TO:<e@f>\r\nDA'));
  assert.equal(d.deadline(), 1010);
  d.received(20, b('TA\r\n'));
  assert.equal(d.deadline(), null);
});

test('a bare LF ends a line as the parser sees it', () => {
  const d = new RequestDeadline(limits);
  d.received(0, b('NOOP\n'));
  assert.equal(d.deadline(), null);
});

test('DATA: a byte every 400 ms runs the budget out about requestMs after 354', () => {
  const d = new RequestDeadline(limits);
  d.dataStarted(0);
  assert.equal(d.deadline(), 1000);
  d.received(400, b('x'));
  // 1000 - 400 + 1000/500 = 602 ms left at 400
  assert.equal(d.deadline(), 1002);
  d.received(800, b('x'));
  assert.equal(d.deadline(), 1004);
  assert.equal(d.expired(1003), false);
  assert.equal(d.expired(1004), true);
});

test('DATA: a client keeping above the minimum rate is never cut, however long the message takes', () => {
  const d = new RequestDeadline(limits);
  d.dataStarted(0);
  // 300 octets every 400 ms = 750 octets/s > 500
  for (let t = 400; t <= 60_000; t += 400) {
    assert.equal(d.expired(t), false, `at ${t}`);
    d.received(t, Buffer.alloc(300, 0x61));
  }
  assert.ok(d.deadline()! > 60_000);
});

test('DATA: time cannot be banked: a fast start still leaves at most requestMs in hand', () => {
  const d = new RequestDeadline(limits);
  d.dataStarted(0);
  d.received(10, Buffer.alloc(10_000_000)); // 20,000 s worth at 500 octets/s
  assert.equal(d.deadline(), 1010);
  assert.equal(d.expired(1010), true);
});

test('DATA below the rate: 100 octets every 400 ms (250 octets/s) is cut in a few seconds', () => {
  const d = new RequestDeadline(limits);
  d.dataStarted(0);
  let t = 0;
  while (!d.expired(t) && t < 60_000) {
    t += 400;
    if (!d.expired(t)) d.received(t, Buffer.alloc(100));
  }
  // each 400 ms costs 400 and gives back 200: 1000 ms last 5 rounds
  assert.ok(t >= 1000 && t <= 2400, `cut at ${t}`);
});

test('the end of DATA stops the budget; what came after the dot may start a command', () => {
  const d = new RequestDeadline(limits);
  d.dataStarted(0);
  d.dataEnded(100, b(''));
  assert.equal(d.deadline(), null);
  d.dataStarted(200);
  d.dataEnded(300, b('MAIL FRO'));
  assert.equal(d.deadline(), 1300);
  d.dataStarted(2000);
  d.dataEnded(2100, b('QUIT\r\n'));
  assert.equal(d.deadline(), null);
});

test('a TLS handshake must finish within the deadline of STARTTLS', () => {
  const d = new RequestDeadline(limits);
  d.handshakeStarted(50);
  assert.equal(d.deadline(), 1050);
  d.handshakeEnded();
  assert.equal(d.deadline(), null);
});

test('restart: when the server held things up, the client gets a fresh deadline', () => {
  const d = new RequestDeadline(limits);
  d.received(0, b('RC'));
  d.restart(2000);
  assert.equal(d.deadline(), 3000);
  d.received(2100, b('PT TO:<a@b>\r\n'));
  d.dataStarted(3000);
  d.received(3500, b('x'));
  d.restart(9000);
  assert.equal(d.deadline(), 10_000);
  // nothing owed: restart changes nothing
  const idle = new RequestDeadline(limits);
  idle.restart(5);
  assert.equal(idle.deadline(), null);
});

test('requestMs 0: no deadlines at all (SMTP_TIMEOUT alone)', () => {
  const d = new RequestDeadline({ requestMs: 0, minDataRate: 500 });
  assert.equal(d.enabled, false);
  d.received(0, b('EHL'));
  assert.equal(d.deadline(), null);
  d.dataStarted(0);
  assert.equal(d.deadline(), null);
  d.handshakeStarted(0);
  assert.equal(d.expired(1e12), false);
});

// ---------------------------------------------------------------- option.dat keys

import { join } from 'node:path';
import { parseOptionDat } from '../../src/config/option-dat.js';
import type { Diagnostic } from '../../src/config/types.js';
import { makeInstance } from '../helpers/instance.js';

function options(text: string) {
  const inst = makeInstance({ files: { 'etc/option.dat': text } });
  try {
    const diagnostics: Diagnostic[] = [];
    const config = parseOptionDat(join(inst.root, 'etc/option.dat'), diagnostics);
    return { config, messages: diagnostics.sort((a, b) => a.line - b.line).map((d) => `${d.line}: ${d.severity}: ${d.message}`) };
  } finally {
    inst.remove();
  }
}

test('SMTP_COMMAND_DEADLINE defaults to SMTP_TIMEOUT, SMTP_MIN_DATA_RATE to 500', () => {
  assert.deepEqual(
    [options('').config.smtpCommandDeadlineMs, options('').config.smtpMinDataRate, options('SMTP_TIMEOUT=30\n').config.smtpCommandDeadlineMs],
    [300_000, 500, 30_000],
  );
  const set = options('SMTP_TIMEOUT=30\nSMTP_COMMAND_DEADLINE=1.5\nSMTP_MIN_DATA_RATE=2000\n');
  assert.deepEqual(set.messages, []);
  assert.deepEqual([set.config.smtpCommandDeadlineMs, set.config.smtpMinDataRate], [1500, 2000]);
  assert.equal(options('SMTP_COMMAND_DEADLINE=0\n').config.smtpCommandDeadlineMs, 0);
});

test('bad values are errors at their line; a timer longer than Node can run (or Infinity) is refused', () => {
  const r = options('SMTP_COMMAND_DEADLINE=soon\nSMTP_MIN_DATA_RATE=0\nSMTP_TIMEOUT=1e309\nBANNER_PURGE_DELAY=3000000\n');
  assert.deepEqual(r.messages.map((m) => m.replace(/: .*/, '')), ['1', '2', '3', '4']);
  assert.match(r.messages[0]!, /SMTP_COMMAND_DEADLINE must be a number of seconds, found "soon"/);
  assert.match(r.messages[2]!, /SMTP_TIMEOUT must be at most 2147483 seconds/);
  assert.equal(r.config.smtpTimeoutMs, 300_000);
  assert.equal(r.config.bannerPurgeDelayMs, 100);
});
