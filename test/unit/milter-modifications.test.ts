// A filter's end-of-message requests carried out on a header section and a recipient list.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { splitMessage, type HeaderField } from '../../src/common/rfc5322-header.js';
import {
  applyHeaderEdits,
  applyModifications,
  applyRecipientEdits,
  headerValueFromFilter,
  milterHeader,
  replacedBody,
  senderChange,
  type Modification,
} from '../../src/milter/modifications.js';

const RECEIVED = 'Received: from c ([192.0.2.1])\r\n\tby mx (tsubame) with ESMTP id Q1;\r\n\tMon, 1 Dec 2025 10:00:00 +0000\r\n';
const section = (text: string): HeaderField[] => splitMessage(text + '\r\nbody\r\n').fields;
const raw = (hs: HeaderField[]) => hs.map((h) => h.raw).join('');
const F = { filter: 'inet:127.0.0.1:11332' };

const headers = section(`${RECEIVED}From: a@example.com\r\nSubject: one\r\nX-Tag: first\r\nTo: b@example.org\r\nX-TAG: second\r\n`);

test('what a filter is sent: the name as written, the value without one leading space, folds as LF', () => {
  const [, from] = headers;
  assert.deepEqual(milterHeader(from!, false), { name: 'From', value: 'a@example.com' });
  assert.deepEqual(milterHeader(from!, true), { name: 'From', value: ' a@example.com' });
  const folded = section('Subject : a long\r\n\tsubject\r\n')[0]!;
  assert.deepEqual(milterHeader(folded, false), { name: 'Subject', value: 'a long\n\tsubject' });
  const tab = section('X-A:\tvalue\r\n')[0]!;
  assert.deepEqual(milterHeader(tab, false), { name: 'X-A', value: '\tvalue' });
});

test('a filter’s value: one space added unless SMFIP_HDR_LEADSPC; LF folds become CRLF; no field can be injected', () => {
  assert.equal(headerValueFromFilter('Yes', false), ' Yes');
  assert.equal(headerValueFromFilter(' Yes', true), ' Yes');
  assert.equal(headerValueFromFilter('mx;\n\tnone', false), ' mx;\r\n\tnone');
  assert.equal(headerValueFromFilter('a\r\n b', false), ' a\r\n b');
  // A line that does not start with white space would begin a new field: it is indented.
  assert.equal(headerValueFromFilter('x\nBcc: victim@example.org', false), ' x\r\n\tBcc: victim@example.org');
  // Empty lines (which would end the header section) and lone CRs are dropped.
  assert.equal(headerValueFromFilter('x\n\nFrom: evil\r', false), ' x\r\n\tFrom: evil');
});

test('add appends; insert counts every field (0 = above the MTA’s Received:, 1 = just below it)', () => {
  const out = applyHeaderEdits(
    headers,
    [
      { ...F, type: 'add-header', name: 'X-Spam-Status', value: ' No, score=0.00' },
      { ...F, type: 'insert-header', index: 1, name: 'Authentication-Results', value: ' mx;\r\n\tnone' },
      { ...F, type: 'insert-header', index: 0, name: 'X-Top', value: ' 1' },
      { ...F, type: 'insert-header', index: 99, name: 'X-End', value: ' 2' },
    ],
    1,
  );
  assert.deepEqual(
    out.map((h) => h.name),
    ['x-top', 'received', 'authentication-results', 'from', 'subject', 'x-tag', 'to', 'x-tag', 'x-spam-status', 'x-end'],
  );
  assert.equal(out[2]!.raw, 'Authentication-Results: mx;\r\n\tnone\r\n');
  assert.equal(out.at(-2)!.raw, 'X-Spam-Status: No, score=0.00\r\n');
  // The input is left as it was.
  assert.equal(headers.length, 6);
});

test('change and delete count occurrences of the name, without case, among the fields the filters saw', () => {
  const mods: Modification[] = [
    { ...F, type: 'change-header', name: 'x-tag', occurrence: 2, value: ' changed' },
    { ...F, type: 'delete-header', name: 'X-Tag', occurrence: 1 },
    { ...F, type: 'change-header', name: 'Subject', occurrence: 0, value: ' [SPAM] one' },
  ];
  const out = applyHeaderEdits(headers, mods, 1);
  assert.equal(raw(out), `${RECEIVED}From: a@example.com\r\nSubject: [SPAM] one\r\nTo: b@example.org\r\nx-tag: changed\r\n`);
  // The hidden Received: is not the first "Received" a filter can change or delete.
  const withTrace = section(`${RECEIVED}Received: from relay\r\nFrom: a@example.com\r\n`);
  const del = applyHeaderEdits(withTrace, [{ ...F, type: 'delete-header', name: 'Received', occurrence: 1 }], 1);
  assert.equal(raw(del), `${RECEIVED}From: a@example.com\r\n`);
  // Without a hidden field, the first is the first.
  assert.equal(raw(applyHeaderEdits(withTrace, [{ ...F, type: 'delete-header', name: 'Received', occurrence: 1 }])), 'Received: from relay\r\nFrom: a@example.com\r\n');
});

test('changing an occurrence that does not exist adds the field; deleting one is a no-op', () => {
  const out = applyHeaderEdits(
    headers,
    [
      { ...F, type: 'change-header', name: 'X-Tag', occurrence: 3, value: ' third' },
      { ...F, type: 'delete-header', name: 'X-Missing', occurrence: 1 },
    ],
    1,
  );
  assert.equal(out.length, 7);
  assert.equal(out.at(-1)!.raw, 'X-Tag: third\r\n');
});

test('a hidden field keeps its identity through edits: inserts above it do not expose it', () => {
  const mods: Modification[] = [
    { ...F, type: 'insert-header', index: 0, name: 'Received', value: ' from filter' },
    { ...F, type: 'delete-header', name: 'Received', occurrence: 1 },
  ];
  const withTrace = section(`${RECEIVED}From: a@example.com\r\n`);
  // The first visible Received is the inserted one: that is what goes.
  assert.equal(raw(applyHeaderEdits(withTrace, mods, 1)), `${RECEIVED}From: a@example.com\r\n`);
});

test('recipients: delete by address (brackets and case aside), add without duplicates', () => {
  const rcpts = [{ address: 'User@Example.org', channel: 'l' }, { address: 'other@example.org', channel: 'l' }];
  const e = applyRecipientEdits(rcpts, (r) => r.address, [
    { ...F, type: 'delete-recipient', address: '<user@example.org>' },
    { ...F, type: 'add-recipient', address: '<quarantine@example.org>', args: null },
    { ...F, type: 'add-recipient', address: 'OTHER@example.org', args: null },
    { ...F, type: 'add-recipient', address: '<archive@example.org>', args: 'NOTIFY=NEVER' },
    { ...F, type: 'add-recipient', address: 'archive@example.org', args: null },
    { ...F, type: 'add-recipient', address: '<>', args: null },
    { ...F, type: 'delete-recipient', address: 'quarantine@example.org' },
  ]);
  assert.deepEqual(e.kept, [rcpts[1]]);
  assert.deepEqual(e.removed, [rcpts[0]]);
  assert.deepEqual(e.added, [{ address: 'archive@example.org', args: 'NOTIFY=NEVER' }]);
});

test('sender change and body replacement: the last one counts; the body gets CRLF line ends', () => {
  const mods: Modification[] = [
    { ...F, type: 'change-sender', address: '<first@example.org>', args: null },
    { ...F, type: 'change-sender', address: '<>', args: 'SIZE=10' },
    { ...F, type: 'replace-body', body: Buffer.from('old\r\n') },
    { ...F, type: 'replace-body', body: Buffer.from('line 1\nline 2\r\nno final newline') },
  ];
  assert.deepEqual(senderChange(mods), { address: '', args: 'SIZE=10' });
  assert.equal(replacedBody(mods)!.toString(), 'line 1\r\nline 2\r\nno final newline\r\n');
  assert.equal(senderChange([]), null);
  assert.equal(replacedBody([]), null);
  assert.equal(replacedBody([{ ...F, type: 'replace-body', body: Buffer.alloc(0) }])!.length, 0);
});

test('applyModifications does all of it at once', () => {
  const e = applyModifications({ headers, hiddenHeaders: 1, recipients: ['b@example.org'], addressOf: (r) => r }, [
    { ...F, type: 'add-header', name: 'X-Spam', value: ' Yes' },
    { ...F, type: 'add-recipient', address: '<c@example.org>', args: null },
    { ...F, type: 'change-sender', address: '<s@example.org>', args: null },
  ]);
  assert.equal(e.headers.at(-1)!.raw, 'X-Spam: Yes\r\n');
  assert.deepEqual(e.kept, ['b@example.org']);
  assert.deepEqual(e.added, [{ address: 'c@example.org', args: null }]);
  assert.deepEqual(e.sender, { address: 's@example.org', args: null });
  assert.equal(e.body, null);
});
