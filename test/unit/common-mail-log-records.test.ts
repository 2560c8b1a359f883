// mail.log records: the nine fields DESIGN.md fixes, and the optional tls= token that ends the
// status of a record made over TLS (outbound: protocol/cipher/trust), parsed back apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatMailLogRecord, parseMailLogLine, type MailLogRecord } from '../../src/common/mail-log.js';

const base: MailLogRecord = { event: 'D', id: 'Q1', source: 'tcp_intranet', destination: 'tcp_local', size: 1234, from: 'a@example.org', recipient: 'b@example.net', status: '250 2.0.0 OK (mx.example.net[192.0.2.1])', time: new Date(Date.UTC(2026, 11, 7)) };

test('outbound TLS use in mail.log: a tls= token ends the status and parses back as its own field', () => {
  const line = formatMailLogRecord({ ...base, tls: 'TLSv1.3/TLS_AES_256_GCM_SHA384/Verified' });
  assert.equal(line, '2026-12-07T00:00:00.000Z D Q1 tcp_intranet tcp_local 1234 a@example.org b@example.net 250 2.0.0 OK (mx.example.net[192.0.2.1]) tls=TLSv1.3/TLS_AES_256_GCM_SHA384/Verified');
  const r = parseMailLogLine(line);
  assert.equal(r?.status, base.status);
  assert.equal(r?.tls, 'TLSv1.3/TLS_AES_256_GCM_SHA384/Verified');
  assert.equal(r?.recipient, 'b@example.net');
});

test('without TLS the line is as before and has no tls field; tls= inside a reply is part of the status', () => {
  const plain = parseMailLogLine(formatMailLogRecord(base));
  assert.equal(plain?.status, base.status);
  assert.equal(plain?.tls, undefined);
  const inside = parseMailLogLine(formatMailLogRecord({ ...base, status: '550 5.7.1 tls=required by policy here' }));
  assert.equal(inside?.status, '550 5.7.1 tls=required by policy here');
  assert.equal(inside?.tls, undefined);
  const empty = parseMailLogLine(formatMailLogRecord({ ...base, status: '', tls: 'TLSv1.2/ECDHE-RSA-AES128-GCM-SHA256' }));
  assert.equal(empty?.status, '');
  assert.equal(empty?.tls, 'TLSv1.2/ECDHE-RSA-AES128-GCM-SHA256');
});

test('values with white space, line breaks in the status and characters beyond ASCII: written as before the fast path', () => {
  // The formatting every record had before the loop over the characters (a regular expression per field).
  const before = (r: MailLogRecord): string => {
    const field = (s: string) => (s === '' ? '-' : s.replace(/\s+/g, '_'));
    const text = r.status.replace(/[\r\n]+/g, ' ').trim();
    const status = r.tls ? `${text} tls=${r.tls.replace(/\s+/g, '_')}`.trim() : text;
    return [r.time!.toISOString(), r.event, field(r.id), field(r.source), field(r.destination), String(r.size), r.from === '' ? '<>' : field(r.from), field(r.recipient), status === '' ? '-' : status].join(' ');
  };
  const cases: MailLogRecord[] = [
    base,
    { ...base, from: '', recipient: '' },
    { ...base, from: '"a  b"@example.org', recipient: 'tab\there@example.net' },
    { ...base, recipient: 'nbsp\u00a0x@example.net', from: 'ünï@exämple.org', id: 'line\u2028sep' },
    { ...base, status: '  451 4.3.0 first\r\nsecond\nthird  ' },
    { ...base, status: '', tls: 'TLS v1.3' },
    { ...base, status: 'ok', tls: '' },
    { ...base, source: '\u0001ctl' },
  ];
  for (const r of cases) assert.equal(formatMailLogRecord(r), before(r), JSON.stringify(r));
  assert.equal(formatMailLogRecord({ ...base, recipient: 'a b\t c@x' }).split(' ')[7], 'a_b_c@x');
});
