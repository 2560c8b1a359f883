import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeValue, decodeValue, encodeEnvelope, parseEnvelope, formatBodyLength, findHeaderEnd } from '../../src/queue/envelope-format.js';
import { encodeAttempts, decodeAttempts, parseQueueFileName, queueFileName, subdirIndex } from '../../src/queue/file-name.js';
import { createIdGenerator, isQueueId } from '../../src/queue/message-id.js';
import { parseStoppedChannels } from '../../src/queue/stopped-channels.js';
import type { Envelope } from '../../src/queue/types.js';

test('values round-trip whatever they contain', () => {
  const samples = ['', '-', '--', 'a b', '"quoted local"@example.com', '%41', 'x=y,z', 'tab\there', 'cr\rlf\n', '\u0000nul', 'ünïcødé@例え.jp', '\ud800lone', 'pair\ud83d\ude00', 'end\udfff', '\x7f'];
  for (const s of samples) {
    const enc = encodeValue(s);
    assert.ok(!/[\s=,]/.test(enc), `encoded "${enc}" has no separators`);
    assert.equal(decodeValue(enc), s);
  }
  assert.equal(encodeValue(null), '-');
  assert.equal(decodeValue('-'), null);
  assert.throws(() => decodeValue('%zz'), /bad escape/);
});

test('every ASCII character and lone surrogate, alone and inside a plain value, is escaped or kept as it must be', () => {
  const units = [...Array(0x80).keys(), 0xd800, 0xdbff, 0xdc00, 0xdfff].map((c) => String.fromCharCode(c));
  for (const u of units) {
    for (const s of [u, `plain${u}value`]) {
      const enc = encodeValue(s);
      assert.ok(!/[\u0000-\u0020\u007f=,]/.test(enc), `${JSON.stringify(s)} → ${JSON.stringify(enc)} has no separators`);
      assert.ok(!/%(?![0-9A-F]{2}|u[0-9A-F]{4})/.test(enc), `${JSON.stringify(enc)}: every % starts an escape`);
      assert.equal(decodeValue(enc), s);
    }
  }
});

test('attempt counts use complemented base 36', () => {
  assert.equal(encodeAttempts(0), 'ZZ');
  assert.equal(encodeAttempts(1), 'ZY');
  assert.equal(encodeAttempts(25), 'ZA');
  assert.equal(encodeAttempts(35), 'Z0');
  assert.equal(encodeAttempts(36), 'YZ');
  assert.equal(encodeAttempts(5000), '00');
  for (const n of [0, 1, 35, 36, 37, 700, 1295]) assert.equal(decodeAttempts(encodeAttempts(n)), n);
  assert.equal(decodeAttempts('z!'), null);
});

test('queue file names parse back; other names do not', () => {
  const name = queueFileName('0MHXK3Z2A01F2K0001X7Q', 3, false);
  assert.equal(name, 'ZW0MHXK3Z2A01F2K0001X7Q.00');
  assert.deepEqual(parseQueueFileName(name), { attempts: 3, id: '0MHXK3Z2A01F2K0001X7Q', held: false });
  assert.deepEqual(parseQueueFileName('ZZ0MHXK3Z2A01F2K0001X7Q.HELD'), { attempts: 0, id: '0MHXK3Z2A01F2K0001X7Q', held: true });
  for (const bad of ['README', 'ZZabc.00', '$tmp', 'ZZ0MHXK3Z2A01F2K0001X7Q.01', 'ZZ0MHXK3Z2A01F2K0001X7Q.00.bak']) assert.equal(parseQueueFileName(bad), null, bad);
});

test('ids are unique, well-formed and spread over subdirectories', () => {
  const a = createIdGenerator(1234);
  const b = createIdGenerator(1234); // same pid after a restart
  const seen = new Set<string>();
  for (let i = 0; i < 20000; i++) {
    for (const g of [a, b]) {
      const id = g.next();
      assert.ok(isQueueId(id), id);
      assert.ok(!seen.has(id), `duplicate ${id}`);
      seen.add(id);
    }
  }
  const counts = new Array(20).fill(0);
  for (const id of seen) counts[subdirIndex(id, 20)!]++;
  assert.ok(Math.min(...counts) > 1000, `every subdirectory used: ${counts}`);
  assert.equal(subdirIndex('X', 0), null);
});

function sampleEnvelope(): Envelope {
  return {
    id: '0MHXK3Z2A01F2K0001X7Q',
    channel: 'tcp_local',
    from: '"odd sender"@example.com',
    mailParams: { size: 1234, body: '8BITMIME', ret: 'HDRS', envid: 'env id=1,+2', smtputf8: true },
    sourceChannel: 'tcp_intranet',
    clientAddress: '127.0.3.1',
    clientHelo: 'helo with spaces',
    arrival: new Date('2026-01-02T03:04:05.678Z'),
    attempts: 7,
    nextAttempt: new Date('2026-01-02T04:04:05.000Z'),
    recipients: [
      { address: 'bob@example.net', original: 'Bob@Example.NET', orcpt: 'rfc822;Bob@Example.NET', notify: ['FAILURE', 'DELAY'], state: 'pending', status: null, warnings: 1 },
      { address: 'ca rol@example.net', original: '-', orcpt: null, notify: null, state: 'failed', status: '550 5.1.1 <carol@example.net>: user unknown\r\nsecond line' },
      { address: 'dave@example.net', original: '', orcpt: null, notify: [], state: 'delivered', status: '250 2.0.0 ok' },
    ],
    held: false,
  };
}

test('an envelope round-trips field by field', () => {
  const env = sampleEnvelope();
  const { header } = encodeEnvelope(env, 42);
  const parsed = parseEnvelope(Buffer.concat([header, Buffer.alloc(42, 0x41)]), false);
  assert.deepEqual(parsed.envelope, env);
  assert.equal(parsed.headerLength, header.length);
  assert.equal(parsed.bodyLength, 42);
  // readable: one record per line, the terminator, no raw control characters in values
  const text = header.toString('utf8');
  assert.match(text, /^tsubame-queue 1\nid 0MHXK3Z2A01F2K0001X7Q\n/);
  assert.match(text, /\nend-of-envelope\n$/);
});

test('minimal envelope (null sender, no MAIL parameters) round-trips', () => {
  const env: Envelope = { ...sampleEnvelope(), from: '', mailParams: {}, clientAddress: null, clientHelo: null, nextAttempt: null, attempts: 0 };
  const parsed = parseEnvelope(encodeEnvelope(env, 0).header, true);
  assert.deepEqual(parsed.envelope, { ...env, held: true });
});

test('a recipient a list expansion resolved keeps its mailbox; older files without the field read as before', () => {
  const env: Envelope = { ...sampleEnvelope(), channel: 'l', recipients: [{ address: 'alice@example.com', original: 'alice@example.com', orcpt: null, notify: null, state: 'pending', status: null, mailbox: 'Al ice=,%' }] };
  const { header } = encodeEnvelope(env, 0);
  assert.match(header.toString('utf8'), / mailbox=Al%20ice%3D%2C%25 /);
  assert.deepEqual(parseEnvelope(header, false).envelope, env);
  const without = parseEnvelope(Buffer.from(header.toString('utf8').replace(/ mailbox=\S+/, '')), false).envelope.recipients[0]!;
  assert.equal('mailbox' in without, false);
});

test('a message that asked for XVERP keeps its delimiters; an older file without the record reads as no VERP', () => {
  for (const verp of ['+=', '-=', '=+']) {
    const env: Envelope = { ...sampleEnvelope(), mailParams: { ...sampleEnvelope().mailParams, verp } };
    const { header } = encodeEnvelope(env, 0);
    assert.match(header.toString('utf8'), new RegExp(`\\nverp ${encodeValue(verp).replace(/[+]/g, '\\+')}\\n`));
    assert.deepEqual(parseEnvelope(header, false).envelope, env);
  }
  // A file written before XVERP: the same envelope without the record.
  const old = encodeEnvelope(sampleEnvelope(), 0).header;
  assert.doesNotMatch(old.toString('utf8'), /\nverp /);
  assert.equal('verp' in parseEnvelope(old, false).envelope.mailParams, false);
  // Delimiters smtp-server would never have taken are not ours.
  const withVerp = encodeEnvelope({ ...sampleEnvelope(), mailParams: { verp: '+=' } }, 0).header.toString('utf8');
  assert.throws(() => parseEnvelope(Buffer.from(withVerp.replace('\nverp +%3D\n', '\nverp ab\n')), false), /bad VERP delimiters "ab"/);
});

test('the body length can be filled in afterwards at its offset', () => {
  const enc = encodeEnvelope(sampleEnvelope(), 0);
  const len = formatBodyLength(987654);
  len.copy(enc.header, enc.bodyLengthOffset);
  assert.equal(parseEnvelope(enc.header, false).bodyLength, 987654);
});

test('damaged envelopes are refused with a reason', () => {
  const good = encodeEnvelope(sampleEnvelope(), 0).header.toString('utf8');
  const cases: Array<[string, RegExp]> = [
    [good.replace('tsubame-queue 1', 'tsubame-queue 9'), /unsupported queue file version 9/],
    [good.replace('tsubame-queue 1\n', ''), /not a tsubame queue file/],
    [good.replace('\nend-of-envelope\n', '\n'), /no end-of-envelope/],
    [good.replace(/\nattempts 7/, ''), /no "attempts" record/],
    [good.replace('state=pending', 'state=lost'), /bad recipient state/],
    [good.replace(/\nrcpt .*/g, ''), /no recipients/],
    [good.replace('arrival 2026', 'arrival x2026'), /bad arrival time/],
  ];
  for (const [text, re] of cases) assert.throws(() => parseEnvelope(Buffer.from(text), false), re);
  assert.equal(findHeaderEnd(Buffer.from('no terminator')), -1);
});

test('stopped channels file: one per line, comments and blanks ignored', () => {
  assert.deepEqual(parseStoppedChannels('tcp_local\n\n# comment\n l \ntcp_local\n'), ['l', 'tcp_local']);
});
