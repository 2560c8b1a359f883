import { test } from 'node:test';
import assert from 'node:assert/strict';
import { directoryRow, summarize, sortRows, formatSummaryTable, formatDirectoryTable } from '../../src/queue/report.js';
import type { Envelope } from '../../src/queue/types.js';

function env(over: Partial<Envelope>): Envelope {
  return {
    id: 'X',
    channel: 'tcp_local',
    from: 'a@example.com',
    mailParams: {},
    sourceChannel: 'l',
    clientAddress: null,
    clientHelo: null,
    arrival: new Date('2026-01-01T00:00:00.000Z'),
    attempts: 0,
    nextAttempt: null,
    recipients: [],
    held: false,
    ...over,
  };
}

const rcpt = (address: string, state: 'pending' | 'delivered' | 'failed') => ({ address, original: address, orcpt: null, notify: null, state, status: null });

test('a directory row lists only pending recipients', () => {
  const row = directoryRow(
    { id: 'ID1', channel: 'tcp_local', path: '/q/ZYID1.HELD', held: true, attempts: 1, mtimeMs: 0 },
    env({ attempts: 1, nextAttempt: new Date('2026-01-01T01:00:00.000Z'), recipients: [rcpt('p@x', 'pending'), rcpt('d@x', 'delivered'), rcpt('f@x', 'failed')] }),
    123,
  );
  assert.deepEqual(row, {
    id: 'ID1', channel: 'tcp_local', from: 'a@example.com', recipients: ['p@x'], attempts: 1,
    next_attempt: '2026-01-01T01:00:00.000Z', held: true, size: 123, arrival: '2026-01-01T00:00:00.000Z', source_channel: 'l',
    last_error: null, recipient_status: [{ address: 'p@x', status: null }], channel_stopped: false,
  });
});

test('qm directory shows why a message waits (its last deferral reason), per group of recipients, in text and JSON', () => {
  const refused = '451 4.4.1 connect to mx.x[192.0.2.1]:25: Connection refused';
  const row = directoryRow(
    { id: 'ID2', channel: 'tcp_local', path: '/q/ZYID2.01', held: false, attempts: 2, mtimeMs: 0 },
    env({
      attempts: 2,
      nextAttempt: new Date('2026-01-01T02:00:00.000Z'),
      recipients: [{ ...rcpt('a@x', 'pending'), status: refused }, { ...rcpt('b@y', 'pending'), status: '452 4.2.2 mailbox full (in reply to RCPT TO)' }, { ...rcpt('c@x', 'pending'), status: refused }],
    }),
    10,
  );
  assert.equal(row.last_error, refused);
  assert.deepEqual(row.recipient_status.map((r) => r.status), [refused, '452 4.2.2 mailbox full (in reply to RCPT TO)', refused]);
  const text = formatDirectoryTable([row]);
  assert.match(text, new RegExp(`\\(${refused.replace(/[.[\]()]/g, '\\$&')}\\)\n      to <a@x>\n      to <c@x>\n    \\(452 4\\.2\\.2 mailbox full \\(in reply to RCPT TO\\)\\)\n      to <b@y>`));
});

test('qm directory: a message on a stopped channel does not say "next attempt now"', () => {
  const entry = { id: 'ID3', channel: 'tcp_local', path: '/q/ZZID3.00', held: false, attempts: 0, mtimeMs: 0 };
  const stopped = directoryRow(entry, env({ recipients: [rcpt('a@x', 'pending')] }), 10, true);
  assert.equal(stopped.channel_stopped, true);
  assert.equal(stopped.next_attempt, null, 'the contract field is kept as it is');
  const text = formatDirectoryTable([stopped]);
  assert.match(text, /^ID3\s+tcp_local\s+10\s+0\s+2026-01-01 00:00:00Z\s+channel stopped \(qm start\)$/m);
  assert.doesNotMatch(text, /\snow$/m);
  assert.match(formatDirectoryTable([directoryRow(entry, env({ recipients: [rcpt('a@x', 'pending')] }), 10)]), /\snow$/m, 'a running channel: now');
});

test('summarize counts per channel, includes empty configured channels, marks stopped ones', () => {
  const mk = (id: string, channel: string, held: boolean, n: number) =>
    directoryRow({ id, channel, path: '', held, attempts: 0, mtimeMs: 0 }, env({ recipients: Array.from({ length: n }, (_, i) => rcpt(`r${i}@x`, 'pending')) }), 1);
  const s = summarize([mk('A', 'tcp_local', false, 2), mk('B', 'tcp_local', true, 1), mk('C', 'l', false, 1)], ['l', 'tcp_local', 'bitbucket'], ['bitbucket']);
  assert.deepEqual(s, {
    channels: [
      { name: 'bitbucket', messages: 0, recipients: 0, held: 0, stopped: true },
      { name: 'l', messages: 1, recipients: 1, held: 0, stopped: false },
      { name: 'tcp_local', messages: 2, recipients: 3, held: 1, stopped: false },
    ],
    messages: 3,
    recipients: 4,
    held: 1,
  });
  const text = formatSummaryTable(s);
  assert.match(text, /^bitbucket \(stopped\)\s+0\s+0\s+0$/m);
  assert.match(text, /^Total\s+3\s+4\s+1$/m);
  const rows = sortRows([mk('B', 'tcp_local', true, 1), mk('A', 'l', false, 1)]);
  assert.deepEqual(rows.map((r) => r.id), ['A', 'B']);
  assert.match(formatDirectoryTable(rows), /B\s+tcp_local\s+1\s+0\s+2026-01-01 00:00:00Z\s+held/);
  assert.equal(formatDirectoryTable([]), 'No messages queued.\n');
});
