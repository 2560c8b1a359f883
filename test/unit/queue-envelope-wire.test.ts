// The envelope an "enqueued" notice carries (JSON) taken back to an Envelope, and what makes the
// job controller read the file instead: anything that is not a whole envelope of that file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { envelopeFromWire } from '../../src/queue/envelope-wire.js';
import { parseJobControllerRequest } from '../../src/job-controller/protocol.js';
import type { Envelope } from '../../src/queue/types.js';

const envelope: Envelope = {
  id: 'ID1',
  channel: 'tcp_local',
  from: 'a@example.org',
  mailParams: { size: 1234, body: '8BITMIME', ret: 'HDRS', envid: 'E1', smtputf8: true },
  sourceChannel: 'tcp_intranet',
  clientAddress: '127.0.0.1',
  clientHelo: 'client.example',
  arrival: new Date(Date.UTC(2026, 11, 7, 5, 0, 0, 123)),
  attempts: 0,
  nextAttempt: null,
  recipients: [
    { address: 'b@example.net', original: 'B@example.net', orcpt: 'rfc822;B@example.net', notify: ['FAILURE', 'DELAY'], state: 'pending', status: null },
    { address: 'c@example.net', original: 'c@example.net', orcpt: null, notify: null, state: 'failed', status: '550 5.1.1 no', warnings: 1 },
    { address: 'list-member@example.org', original: 'list@example.org', orcpt: null, notify: null, state: 'pending', status: null, mailbox: 'joe' },
  ],
  held: false,
};
const wire = (e: unknown): unknown => JSON.parse(JSON.stringify(e));

test('an envelope through JSON and back is the same envelope, its times Dates again', () => {
  assert.deepEqual(envelopeFromWire(wire(envelope)), envelope);
  const later = { ...envelope, attempts: 2, nextAttempt: new Date(Date.UTC(2026, 11, 8)), mailParams: {} };
  assert.deepEqual(envelopeFromWire(wire(later)), later);
  // XVERP's delimiters ride the notice too (else every XVERP message would make the job controller read its file).
  const xverp = { ...envelope, mailParams: { ...envelope.mailParams, verp: '-=' } };
  assert.deepEqual(envelopeFromWire(wire(xverp)), xverp);
});

test('anything that is not a whole envelope gives null', () => {
  const broken: Array<[string, unknown]> = [
    ['not an object', 'x'],
    ['no id', { ...(wire(envelope) as object), id: undefined }],
    ['a bad arrival', { ...(wire(envelope) as object), arrival: 'yesterday' }],
    ['a bad next attempt', { ...(wire(envelope) as object), nextAttempt: 5 }],
    ['a bad recipient state', { ...(wire(envelope) as object), recipients: [{ ...envelope.recipients[0], state: 'lost' }] }],
    ['notify not a list of strings', { ...(wire(envelope) as object), recipients: [{ ...envelope.recipients[0], notify: [1] }] }],
    ['a bad BODY', { ...(wire(envelope) as object), mailParams: { body: '9BIT' } }],
    ['bad VERP delimiters', { ...(wire(envelope) as object), mailParams: { verp: 'ab' } }],
    ['held not a boolean', { ...(wire(envelope) as object), held: 'no' }],
    ['a mailbox not a string', { ...(wire(envelope) as object), recipients: [{ ...envelope.recipients[0], mailbox: 3 }] }],
    // A field this build does not know: the file is read rather than the field lost.
    ['an unknown envelope field', { ...(wire(envelope) as object), priority: 'urgent' }],
    ['an unknown recipient field', { ...(wire(envelope) as object), recipients: [{ ...envelope.recipients[0], forwardedTo: 'x@y' }] }],
    ['an unknown MAIL parameter', { ...(wire(envelope) as object), mailParams: { mtPriority: 3 } }],
  ];
  for (const [what, value] of broken) assert.equal(envelopeFromWire(value), null, what);
});

test('an enqueued notice keeps a file’s envelope and size only when they are whole and that file’s', () => {
  const ref = { id: 'ID1', channel: 'tcp_local', path: '/q/tcp_local/ID1.00' };
  const parse = (r: object) => {
    const req = parseJobControllerRequest({ op: 'enqueued', refs: [r] });
    assert.equal(req.op, 'enqueued');
    return req.op === 'enqueued' ? req.refs[0] : null;
  };
  assert.deepEqual(parse({ ...ref, envelope: wire(envelope), size: 1300 }), { ...ref, envelope, size: 1300 });
  assert.deepEqual(parse(ref), ref, 'a plain ref, as submit and older writers send');
  assert.deepEqual(parse({ ...ref, envelope: wire({ ...envelope, id: 'ID2' }), size: 1300 }), ref, 'another file’s envelope');
  assert.deepEqual(parse({ ...ref, envelope: wire({ ...envelope, channel: 'l' }), size: 1300 }), ref, 'another channel’s');
  assert.deepEqual(parse({ ...ref, envelope: wire(envelope) }), ref, 'no size');
  assert.deepEqual(parse({ ...ref, envelope: wire(envelope), size: -1 }), ref, 'a bad size');
  assert.deepEqual(parse({ ...ref, envelope: { id: 'ID1' }, size: 10 }), ref, 'not a whole envelope');
});
