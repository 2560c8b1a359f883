// What each item of a list or forwarding expansion becomes in the local channel
// (channels/expansion-plan.ts): list mail from the owner without the sender's DSN parameters and XVERP,
// alias and forwarding copies keeping NOTIFY and ORCPT, the SRS decision asked per channel,
// members the rewrite rules cannot route, failure statuses (RFC 3463) and who is told.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planCopy, failureStatus, type PlanContext } from '../../src/channels/expansion-plan.js';
import type { ExpandedRecipient } from '../../src/directory/expand.js';

const ctx = (extra: Partial<PlanContext> = {}): PlanContext => ({
  recipient: { address: 'fwd@here.test', original: 'Fwd@here.test', orcpt: null, notify: ['FAILURE', 'DELAY'], state: 'pending', status: null },
  from: 'alice@outside.test',
  mailParams: { size: 99, body: '8BITMIME', ret: 'HDRS', envid: 'E1', verp: '+=' },
  route: (a) => (a.endsWith('@nowhere.test') ? { ok: false, error: 'no rule' } : { ok: true, channel: 'tcp_local', address: a.toLowerCase() }),
  senderFor: (from, channel) => (channel === 'tcp_local' && from === 'alice@outside.test' ? 'SRS0=hash=TT=outside.test=alice@srs.here.test' : from),
  ...extra,
});
const list = { address: 'staff@here.test', owner: 'owner-staff@here.test' };
const alias = { address: 'team@here.test', owner: null };

test('through a list with an owner: the owner is the sender (no SRS: it is ours), no ENVID, RET, NOTIFY, ORCPT or XVERP carried', () => {
  const plan = planCopy({ kind: 'route', address: 'Bob@remote.test', list, via: [] }, ctx());
  assert.deepEqual(plan, {
    kind: 'queue',
    channel: 'tcp_local',
    from: 'owner-staff@here.test',
    mailParams: { body: '8BITMIME' },
    recipient: { address: 'bob@remote.test', original: 'bob@remote.test', orcpt: null, notify: null },
  });
});

test('through an alias or a forwarding address: the message\'s sender (SRS-encoded when the channels ask), NOTIFY, ORCPT and XVERP kept', () => {
  const plan = planCopy({ kind: 'route', address: 'bob@remote.test', list: alias, via: [] }, ctx());
  assert.deepEqual(plan, {
    kind: 'queue',
    channel: 'tcp_local',
    from: 'SRS0=hash=TT=outside.test=alice@srs.here.test',
    mailParams: { body: '8BITMIME', ret: 'HDRS', envid: 'E1', verp: '+=' },
    recipient: { address: 'bob@remote.test', original: 'bob@remote.test', orcpt: 'rfc822;fwd@here.test', notify: ['FAILURE', 'DELAY'] },
  });
  const given = planCopy({ kind: 'route', address: 'bob@remote.test', list: null, via: [] }, ctx({ recipient: { ...ctx().recipient, orcpt: 'rfc822;first@orig.test' } }));
  assert.equal(given.kind === 'queue' && given.recipient.orcpt, 'rfc822;first@orig.test');
});

test('mailboxes carry their mailbox; unroutable members, unknown users and loops fail with their status and who is told', () => {
  const mailbox = planCopy({ kind: 'mailbox', mailbox: 'Alice', address: 'alice@here.test', list, via: [] }, ctx());
  assert.equal(mailbox.kind === 'mailbox' && mailbox.recipient.mailbox, 'Alice');
  assert.equal(mailbox.kind === 'mailbox' && mailbox.from, 'owner-staff@here.test');
  assert.deepEqual(planCopy({ kind: 'route', address: 'x@nowhere.test', list, via: [] }, ctx()), { kind: 'failed', member: 'x@nowhere.test', status: '550 5.1.2 <x@nowhere.test>: no rule', reportTo: 'owner-staff@here.test' });
  const unknown: ExpandedRecipient = { kind: 'failed', member: 'ghost@here.test', reason: 'unknown', why: 'no such user: ghost@here.test', list: alias, via: [] };
  assert.deepEqual(planCopy(unknown, ctx()), { kind: 'failed', member: 'ghost@here.test', status: '550 5.1.1 <ghost@here.test>: user unknown', reportTo: 'alice@outside.test' });
  assert.equal((planCopy(unknown, ctx({ recipient: { ...ctx().recipient, notify: ['NEVER'] } })) as { reportTo: string | null }).reportTo, null, 'NOTIFY=NEVER: the sender is not told');
  assert.equal((planCopy(unknown, ctx({ from: '' })) as { reportTo: string | null }).reportTo, null, 'nobody to tell for the null sender');
  assert.equal(failureStatus('loop', 'a@x', 'loop: a@x → b@x → a@x'), '554 5.4.6 loop: a@x → b@x → a@x');
  assert.equal(failureStatus('include', ':include:/l', 'cannot read /l: ENOENT'), '550 5.2.4 :include:/l: cannot read /l: ENOENT');
  assert.equal(failureStatus('no-delivery', 'd@x', 'd@x has no delivery option'), '550 5.2.1 d@x has no delivery option');
  assert.deepEqual(planCopy({ kind: 'discard', list: null, via: [] }, ctx()), { kind: 'discard' });
  assert.deepEqual(planCopy({ kind: 'unavailable', why: 'down' }, ctx()), { kind: 'unavailable', why: 'down' });
});

test('a member the rewrite rules cannot route yet ($V before the hosted domains are known): the expansion is deferred, not failed', () => {
  const route: PlanContext['route'] = () => ({ ok: false, error: 'hosted domains unknown ($V/$Z for one.test)', temporary: true });
  assert.deepEqual(planCopy({ kind: 'route', address: 'bob@one.test', list, via: [] }, ctx({ route })), { kind: 'unavailable', why: 'hosted domains unknown ($V/$Z for one.test)' });
});
