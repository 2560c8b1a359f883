// The stored message after the end-of-DATA checks (src/smtp-server/message-edits.ts): our fields
// on top, the filters' header requests counted without them, untouched fields byte for byte,
// recipients removed and added (an added one routed by the caller, an unroutable one left out),
// the sender and the body replaced; and where a header section ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { finalMessage, readHeaderSection } from '../../src/smtp-server/message-edits.js';
import { splitMessage } from '../../src/common/rfc5322-header.js';
import type { AcceptedRecipient } from '../../src/smtp-server/envelope-plan.js';
import type { Modification } from '../../src/milter/index.js';

const AR = { name: 'authentication-results', raw: 'Authentication-Results: mx.test;\r\n\tspf=pass\r\n' };
const RECEIVED = { name: 'received', raw: 'Received: from a by mx.test; Mon, 1 Jun 2026 10:00:00 +0000\r\n' };
const rcpt = (address: string, channel = 'l'): AcceptedRecipient => ({ channel, address, original: address, orcpt: null, notify: null });

test('no modification: our fields on top of the client’s header section as it came, then the empty line', () => {
  const fields = splitMessage('Subject: hi\r\nX-Folded: a\r\n  b\r\n\r\n').fields;
  const f = finalMessage({ own: [AR, RECEIVED], fields, modifications: [], recipients: [rcpt('a@x.test')], from: 's@y.test', route: () => null });
  assert.equal(f.header.toString('latin1'), AR.raw + RECEIVED.raw + 'Subject: hi\r\nX-Folded: a\r\n  b\r\n\r\n');
  assert.equal(f.body, null);
  assert.equal(f.from, 's@y.test');
  assert.deepEqual(f.recipients.map((r) => r.address), ['a@x.test']);
});

test('header requests count the fields the filters saw; inserts count ours; recipients, sender and body', () => {
  const fields = splitMessage('Subject: one\r\nX-Spam: old\r\nAuthentication-Results: other.test; none\r\n\r\n').fields;
  const mods: Modification[] = [
    { filter: 'f', type: 'add-header', name: 'X-Spamd-Result', value: ' default: False [0.00 / 15.00]' },
    { filter: 'f', type: 'change-header', name: 'Subject', occurrence: 1, value: ' two' },
    // the first Authentication-Results the filter saw is the client's, not ours
    { filter: 'f', type: 'delete-header', name: 'Authentication-Results', occurrence: 1 },
    { filter: 'f', type: 'insert-header', index: 2, name: 'X-Below-Ours', value: ' yes' },
    { filter: 'f', type: 'delete-recipient', address: '<b@x.test>' },
    { filter: 'f', type: 'add-recipient', address: '<copy@archive.test>', args: null },
    { filter: 'f', type: 'add-recipient', address: '<nowhere@bad.test>', args: null },
    { filter: 'f', type: 'change-sender', address: '<bounce@y.test>', args: null },
    { filter: 'f', type: 'replace-body', body: Buffer.from('new body\n') },
  ];
  const f = finalMessage({
    own: [AR, RECEIVED],
    fields,
    modifications: mods,
    recipients: [rcpt('a@x.test'), rcpt('b@x.test')],
    from: 's@y.test',
    route: (a) => (a.endsWith('@archive.test') ? rcpt(a, 'tcp_archive') : null),
  });
  assert.equal(
    f.header.toString('latin1'),
    AR.raw + RECEIVED.raw + 'X-Below-Ours: yes\r\nSubject: two\r\nX-Spam: old\r\nX-Spamd-Result: default: False [0.00 / 15.00]\r\n\r\n',
  );
  assert.deepEqual(f.recipients.map((r) => `${r.channel}:${r.address}`), ['l:a@x.test', 'tcp_archive:copy@archive.test']);
  assert.deepEqual(f.removed.map((r) => r.address), ['b@x.test']);
  assert.deepEqual(f.unroutable, ['nowhere@bad.test']);
  assert.equal(f.from, 'bounce@y.test');
  assert.equal(f.body!.toString(), 'new body\r\n');
});

test('where the header section ends: the empty line, a line that is no field, a message all header; too long', () => {
  const m = Buffer.from('A: 1\r\nB: 2\r\n\r\nbody\r\n');
  assert.deepEqual(readHeaderSection(m, m.length)?.bodyOffset, 14);
  const noBlank = Buffer.from('A: 1\r\nnot a field\r\n');
  assert.deepEqual(readHeaderSection(noBlank, noBlank.length)?.bodyOffset, 6);
  const allHeader = Buffer.from('A: 1\r\nB: 2\r\n');
  assert.deepEqual(readHeaderSection(allHeader, allHeader.length)?.bodyOffset, allHeader.length);
  // The section ends exactly where the part read ends: still found.
  assert.deepEqual(readHeaderSection(m.subarray(0, 14), m.length)?.bodyOffset, 14);
  // The part read ends inside the section while the message goes on: too long.
  assert.equal(readHeaderSection(m.subarray(0, 10), m.length), null);
});
