// The delivery's error policy (src/delivery/reply-policy.ts), pure: what a transaction's replies,
// a broken connection, a local problem and a failed connection attempt mean for each recipient.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectFailure, judgeTransaction, MAX_OVERFLOWS, noHostLeftStatus, resultOf, skippedHostStatus, type RecipientVerdict } from '../../src/delivery/reply-policy.js';
import { ConnectError, type RcptRejection } from '../../src/delivery/smtp-client.js';

const rcpt = (rcptTo: string, overflows = 0) => ({ rcptTo, overflows });
const rejection = (recipient: string, code: number, reply: string, command = 'RCPT TO'): RcptRejection => ({ recipient, code, reply, command });
const verdicts = (v: ReturnType<typeof judgeTransaction>): RecipientVerdict[] => {
  assert.equal(v.kind, 'replied');
  return v.kind === 'replied' ? v.recipients : [];
};

test('reply codes: 2xx delivered, 5xx failed, the rest deferred', () => {
  assert.equal(resultOf(250), 'delivered');
  assert.equal(resultOf(251), 'delivered');
  assert.equal(resultOf(421), 'deferred');
  assert.equal(resultOf(452), 'deferred');
  assert.equal(resultOf(550), 'failed');
  assert.equal(resultOf(554), 'failed');
});

test('a message taken: every accepted recipient is delivered with the server reply, refused ones get their RCPT reply', () => {
  const v = verdicts(
    judgeTransaction(
      { kind: 'sent', reply: '250 2.0.0 Ok: queued as X', accepted: ['a@x.test', 'd@x.test'], rejected: [rejection('b@x.test', 550, '550 5.1.1 no such user'), rejection('c@x.test', 450, '450 4.2.1 try later')] },
      [rcpt('a@x.test'), rcpt('b@x.test'), rcpt('c@x.test'), rcpt('d@x.test')],
    ),
  );
  assert.deepEqual(v, [
    { kind: 'decided', result: 'delivered', status: '250 2.0.0 Ok: queued as X', byServer: true },
    { kind: 'decided', result: 'failed', status: '550 5.1.1 no such user (in reply to RCPT TO)', byServer: true },
    { kind: 'decided', result: 'deferred', status: '450 4.2.1 try later (in reply to RCPT TO)', byServer: true },
    { kind: 'decided', result: 'delivered', status: '250 2.0.0 Ok: queued as X', byServer: true },
  ]);
});

test('452 too many recipients while others were taken: the recipient goes in the next transaction, at most MAX_OVERFLOWS times', () => {
  const outcome = { kind: 'sent' as const, reply: '250 2.0.0 Ok', accepted: ['a@x.test'], rejected: [rejection('b@x.test', 452, '452 4.5.3 Too many recipients')] };
  assert.deepEqual(verdicts(judgeTransaction(outcome, [rcpt('a@x.test'), rcpt('b@x.test')]))[1], { kind: 'overflow' });
  assert.deepEqual(verdicts(judgeTransaction(outcome, [rcpt('a@x.test'), rcpt('b@x.test', MAX_OVERFLOWS - 1)]))[1], { kind: 'overflow' });
  assert.deepEqual(verdicts(judgeTransaction(outcome, [rcpt('a@x.test'), rcpt('b@x.test', MAX_OVERFLOWS)]))[1], {
    kind: 'decided',
    result: 'deferred',
    status: '452 4.5.3 Too many recipients (in reply to RCPT TO)',
    byServer: true,
  });
  // The words alone are enough (a server without enhanced codes).
  const words = { ...outcome, rejected: [rejection('b@x.test', 452, '452 4.0.0 too many recipients, slow down')] };
  assert.deepEqual(verdicts(judgeTransaction(words, [rcpt('a@x.test'), rcpt('b@x.test')]))[1], { kind: 'overflow' });
});

test('452 for another reason, or when nothing was taken, or not at RCPT: deferred, never moved', () => {
  const full = { kind: 'sent' as const, reply: '250 2.0.0 Ok', accepted: ['a@x.test'], rejected: [rejection('b@x.test', 452, '452 4.2.2 mailbox full')] };
  assert.equal(verdicts(judgeTransaction(full, [rcpt('a@x.test'), rcpt('b@x.test')]))[1]!.kind, 'decided');
  const none = { kind: 'refused' as const, reply: '554 5.5.1 no valid recipients', code: 554, command: 'DATA', rejected: [rejection('b@x.test', 452, '452 4.5.3 Too many recipients')] };
  assert.deepEqual(verdicts(judgeTransaction(none, [rcpt('b@x.test')])), [{ kind: 'decided', result: 'deferred', status: '452 4.5.3 Too many recipients (in reply to RCPT TO)', byServer: true }]);
  const lmtp = { kind: 'sent' as const, reply: '250 2.0.0 Ok', accepted: ['a@x.test'], rejected: [rejection('b@x.test', 452, '452 4.5.3 Too many recipients', 'DATA')] };
  assert.equal(verdicts(judgeTransaction(lmtp, [rcpt('a@x.test'), rcpt('b@x.test')]))[1]!.kind, 'decided');
});

test('a transaction refused: the reply applies to every recipient not refused on its own', () => {
  const v = verdicts(
    judgeTransaction({ kind: 'refused', reply: '554 5.7.1 rejected by policy', code: 554, command: 'DATA', rejected: [rejection('b@x.test', 450, '450 4.1.1 later')] }, [rcpt('a@x.test'), rcpt('b@x.test')]),
  );
  assert.deepEqual(v, [
    { kind: 'decided', result: 'failed', status: '554 5.7.1 rejected by policy (in reply to DATA)', byServer: true },
    { kind: 'decided', result: 'deferred', status: '450 4.1.1 later (in reply to RCPT TO)', byServer: true },
  ]);
  const temporary = verdicts(judgeTransaction({ kind: 'refused', reply: '421 4.3.2 shutting down', code: 421, command: 'MAIL FROM', rejected: [] }, [rcpt('a@x.test')]));
  assert.deepEqual(temporary, [{ kind: 'decided', result: 'deferred', status: '421 4.3.2 shutting down (in reply to MAIL FROM)', byServer: true }]);
});

test('a broken connection decides nothing; a local problem defers every recipient without a remote host', () => {
  assert.deepEqual(judgeTransaction({ kind: 'broken', reply: '451 4.4.2 connection lost' }, [rcpt('a@x.test')]), { kind: 'broken', status: '451 4.4.2 connection lost' });
  assert.deepEqual(verdicts(judgeTransaction({ kind: 'local', reply: '451 4.3.0 could not read' }, [rcpt('a@x.test'), rcpt('b@x.test')])), [
    { kind: 'decided', result: 'deferred', status: '451 4.3.0 could not read', byServer: false },
    { kind: 'decided', result: 'deferred', status: '451 4.3.0 could not read', byServer: false },
  ]);
});

test('connection failures: a ConnectError stands as it is; any other error is a closed connection that marks nothing down', () => {
  const target = { key: '192.0.2.1:2525', ip: '192.0.2.1', port: 2525, host: 'mx.x.test', preference: 10 };
  const refused = new ConnectError('refused', '451 4.4.1 connect to mx.x.test[192.0.2.1]:2525: Connection refused', true);
  assert.equal(connectFailure(refused, target), refused);
  const other = connectFailure(new Error('socket hang up'), target);
  assert.ok(other instanceof ConnectError);
  assert.equal(other.status, '451 4.4.2 mx.x.test[192.0.2.1]:2525: socket hang up');
  assert.equal(other.unreachable, false);
});

test('statuses of hosts not tried: skipped as down (with the time it is tried again), or none left', () => {
  assert.equal(skippedHostStatus('451 4.4.1 refused', Date.UTC(2026, 0, 2, 3, 4, 5)), '451 4.4.1 refused (host not tried again until 2026-01-02T03:04:05.000Z)');
  assert.equal(noHostLeftStatus(null), '451 4.4.1 no reachable host');
  assert.equal(noHostLeftStatus('451 4.4.2 broke'), '451 4.4.2 broke');
});
