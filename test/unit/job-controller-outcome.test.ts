// Applying a job's outcomes to a queued envelope.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyOutcome, describeAge, expiredStatus, wantsNotice, withoutSettled } from '../../src/job-controller/outcome.js';
import type { Envelope, QueuedRecipient } from '../../src/queue/types.js';
import type { RecipientOutcome } from '../../src/channels/types.js';

const DAY = 86_400_000;
const rcpt = (address: string, over: Partial<QueuedRecipient> = {}): QueuedRecipient => ({ address, original: address, orcpt: null, notify: null, state: 'pending', status: null, ...over });
const envelope = (recipients: QueuedRecipient[], over: Partial<Envelope> = {}): Envelope => ({
  id: 'ID1',
  channel: 'tcp_local',
  from: 'sender@example.org',
  mailParams: {},
  sourceChannel: 'tcp_intranet',
  clientAddress: null,
  clientHelo: null,
  arrival: new Date(0),
  attempts: 0,
  nextAttempt: null,
  recipients,
  held: false,
  ...over,
});
const out = (address: string, result: RecipientOutcome['result'], status: string): RecipientOutcome => ({ address, result, status, remoteHost: 'mx.example [127.0.0.1]' });
const policy = { backoffMs: [1000, 5000], noticesMs: [3 * DAY, 6 * DAY] };

test('all delivered: nothing pending, attempts unchanged', () => {
  const r = applyOutcome(envelope([rcpt('a@x'), rcpt('b@x')]), [out('a@x', 'delivered', '250 ok'), out('B@X', 'delivered', '250 ok')], new Date(1000), policy);
  assert.equal(r.pending, false);
  assert.equal(r.delivered.length, 2);
  assert.equal(r.envelope.attempts, 0);
  assert.ok(r.envelope.recipients.every((x) => x.state === 'delivered'));
});

test('partial: delivered one is marked, deferred one waits the first backoff step', () => {
  const env = envelope([rcpt('a@x'), rcpt('b@x')]);
  const r = applyOutcome(env, [out('a@x', 'delivered', '250 ok'), out('b@x', 'deferred', '451 4.3.0 later')], new Date(10_000), policy);
  assert.equal(r.pending, true);
  assert.deepEqual(r.delivered.map((x) => x.address), ['a@x']);
  assert.deepEqual(r.deferred.map((x) => x.address), ['b@x']);
  assert.equal(r.envelope.attempts, 1);
  assert.equal(r.envelope.nextAttempt!.getTime(), 11_000);
  assert.equal(r.envelope.recipients[0]!.state, 'delivered');
  assert.equal(r.envelope.recipients[1]!.status, '451 4.3.0 later');
  assert.equal(env.recipients[0]!.state, 'pending', 'the input is not changed');
  // The second failure waits the second step, and so on (the last repeats).
  const r2 = applyOutcome(r.envelope, [out('b@x', 'deferred', '451')], new Date(20_000), policy);
  assert.equal(r2.envelope.attempts, 2);
  assert.equal(r2.envelope.nextAttempt!.getTime(), 25_000);
  assert.equal(r2.delivered.length, 0, 'the delivered recipient is not reported again');
});

test('failed recipients are reported for a notice and dropped once settled', () => {
  const r = applyOutcome(envelope([rcpt('a@x'), rcpt('b@x', { notify: ['NEVER'] })]), [out('a@x', 'failed', '550 5.1.1 unknown'), out('b@x', 'failed', '550 5.1.1 unknown')], new Date(1000), policy);
  assert.equal(r.pending, false);
  assert.equal(r.failed.length, 2);
  assert.deepEqual(withoutSettled(r.envelope).recipients, []);
  assert.equal(wantsNotice(r.failed[0]!.notify, 'failure'), true);
  assert.equal(wantsNotice(r.failed[1]!.notify, 'failure'), false);
});

test('recipients failed earlier (qm return) are owed a notice at the next settle', () => {
  const r = applyOutcome(envelope([rcpt('a@x', { state: 'failed', status: '5.0.0 returned by the postmaster' }), rcpt('b@x')]), [out('b@x', 'delivered', '250')], new Date(1000), policy);
  assert.deepEqual(r.failed.map((x) => [x.address, x.status]), [['a@x', '5.0.0 returned by the postmaster']]);
  assert.equal(r.pending, false);
});

test('no outcome for a pending recipient (crashed job): deferred, keeps its last status', () => {
  const r = applyOutcome(envelope([rcpt('a@x', { status: '421 busy' })]), [], new Date(1000), policy);
  assert.equal(r.pending, true);
  assert.equal(r.deferred[0]!.status, '421 busy');
  assert.equal(r.envelope.attempts, 1);
});

test('notices: a delay warning once per age, return after the last age', () => {
  const env = envelope([rcpt('a@x')]);
  const warn = applyOutcome(env, [out('a@x', 'deferred', '451 later')], new Date(3 * DAY + 1), policy);
  assert.deepEqual(warn.warned.map((x) => x.address), ['a@x']);
  assert.equal(warn.envelope.recipients[0]!.warnings, 1);
  const again = applyOutcome(warn.envelope, [out('a@x', 'deferred', '451 later')], new Date(4 * DAY), policy);
  assert.equal(again.warned.length, 0);
  const expired = applyOutcome(again.envelope, [out('a@x', 'deferred', '451 still later')], new Date(6 * DAY), policy);
  assert.equal(expired.pending, false);
  assert.equal(expired.failed.length, 1);
  assert.match(expired.failed[0]!.status, /^4\.4\.7 .*last error: 451 still later/);
  assert.match(expiredStatus(null, 6 * DAY), /after 6 days/);
});

test('NOTIFY: none given means failures and delays; SUCCESS only when asked; NEVER never', () => {
  assert.equal(wantsNotice(null, 'delay'), true);
  assert.equal(wantsNotice(null, 'success'), false);
  assert.equal(wantsNotice(['SUCCESS'], 'success'), true);
  assert.equal(wantsNotice(['SUCCESS'], 'failure'), false);
  assert.equal(wantsNotice(['failure', 'delay'], 'delay'), true);
  assert.equal(wantsNotice(['NEVER'], 'failure'), false);
});

test('the expiry text says hours or minutes for a notices period under a day (it said "after 0 days")', () => {
  assert.match(expiredStatus(null, 3000), /after 3 seconds in the queue/);
  assert.match(expiredStatus(null, 90 * 60_000), /after 1\.5 hours in the queue/);
  assert.match(expiredStatus('451 later', 20 * 60_000), /^4\.4\.7 message expired after 20 minutes in the queue; last error: 451 later$/);
  assert.equal(describeAge(1000), '1 second');
  assert.equal(describeAge(60_000), '1 minute');
  assert.equal(describeAge(4 * 3_600_000), '4 hours');
  assert.equal(describeAge(36 * 3_600_000), '1.5 days');
  assert.doesNotMatch(expiredStatus(null, 2 * 3_600_000), /0 days/);
});

test('tries counted without trying: a retry skipped inside the host-retry window is no try and waits for the window, not the next backoff step', () => {
  const tried = applyOutcome(envelope([rcpt('a@x')]), [out('a@x', 'deferred', '451 4.4.1 connect refused')], new Date(10_000), policy);
  assert.equal(tried.envelope.attempts, 1);
  assert.equal(tried.envelope.nextAttempt!.getTime(), 11_000);
  // Due at 11 s, the host is still down until 40 s: nothing is tried.
  const skipped = { ...out('a@x', 'deferred', '451 4.4.1 connect refused (host not tried again until …)'), notTriedUntil: 40_000 };
  const r = applyOutcome(tried.envelope, [skipped], new Date(11_000), policy);
  assert.equal(r.envelope.attempts, 1, 'not a try');
  assert.equal(r.envelope.nextAttempt!.getTime(), 40_000, 'tried again when the host may be');
  // The real try at 40 s is the second one, and waits the second step.
  const again = applyOutcome(r.envelope, [out('a@x', 'deferred', '451 4.4.1 connect refused')], new Date(40_000), policy);
  assert.equal(again.envelope.attempts, 2);
  assert.equal(again.envelope.nextAttempt!.getTime(), 45_000);
});

test('tries counted without trying: one recipient tried and one skipped is a try', () => {
  const env = envelope([rcpt('a@x'), rcpt('b@y')]);
  const r = applyOutcome(env, [out('a@x', 'deferred', '451 later'), { ...out('b@y', 'deferred', '451 down'), notTriedUntil: 90_000 }], new Date(10_000), policy);
  assert.equal(r.envelope.attempts, 1);
  assert.equal(r.envelope.nextAttempt!.getTime(), 11_000);
});

test('tries counted without trying: recipients delivered and the rest held back untried (a destination paused) is no try for the rest', () => {
  const env = envelope([rcpt('a@x'), rcpt('b@y')]);
  const r = applyOutcome(env, [out('a@x', 'delivered', '250 ok'), { ...out('b@y', 'deferred', '451 4.4.5 destination mx:y throttled until …'), notTriedUntil: 70_000 }], new Date(10_000), policy);
  assert.equal(r.envelope.attempts, 0, 'not a try for b@y');
  assert.equal(r.envelope.nextAttempt!.getTime(), 70_000, 'due when its destination may be tried again, not at the next backoff step');
  assert.equal(r.envelope.recipients.find((x) => x.address === 'a@x')!.state, 'delivered');
});

test('a try made before the message was due (flush, ETRN, release) keeps its try count and its schedule', () => {
  const env = envelope([rcpt('a@x')], { attempts: 3, nextAttempt: new Date(50_000) });
  const r = applyOutcome(env, [out('a@x', 'deferred', '451 4.4.1 connect refused')], new Date(20_000), policy);
  assert.equal(r.envelope.attempts, 3);
  assert.equal(r.envelope.nextAttempt!.getTime(), 50_000);
  // Skipped early: still its own schedule when that is later than the window.
  const skipped = applyOutcome(env, [{ ...out('a@x', 'deferred', '451 down'), notTriedUntil: 30_000 }], new Date(20_000), policy);
  assert.equal(skipped.envelope.attempts, 3);
  assert.equal(skipped.envelope.nextAttempt!.getTime(), 50_000);
  // Delivered early is delivered.
  assert.equal(applyOutcome(env, [out('a@x', 'delivered', '250 ok')], new Date(20_000), policy).pending, false);
});
