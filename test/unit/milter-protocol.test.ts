// The milter wire protocol: framing, encoding and decoding, reply codes, and the byte exchanges
// recorded with a real rspamd (test/fixtures/milter/rspamd-*.json) decoded and re-encoded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  decodeAnswer,
  decodeCommand,
  decodeOptneg,
  encodeAnswer,
  encodeBody,
  encodeCommand,
  encodeConnect,
  encodeEnvelope,
  encodeHeader,
  encodeMacros,
  encodeOptneg,
  encodePacket,
  eventsOutsideVersion,
  MAX_BODY_CHUNK,
  MilterProtocolError,
  MTA_ACTIONS,
  MTA_PROTOCOL,
  PacketReader,
  parseReplyCode,
  SMFIC,
  SMFIP,
  SMFIR,
  type FilterAnswer,
  type Packet,
} from '../../src/milter/protocol.js';
import { repoRoot } from '../helpers/instance.js';
import type { Fixture } from '../fixtures/milter/record.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

test('a packet is a 4-byte big-endian length (command byte included), the command, the data', () => {
  assert.deepEqual(encodePacket('c'), hex('00000001 63'));
  assert.deepEqual(encodeOptneg(6, 0x1ff, 0x1fffff), hex('0000000d 4f 00000006 000001ff 001fffff'));
  assert.deepEqual(encodeEnvelope(SMFIC.MAIL, ['<a@b>', 'SIZE=10']), hex('0000000f 4d 3c614062 3e00 53495a453d3130 00'));
  assert.deepEqual(encodeMacros('C', [['j', 'mx'], ['{daemon_name}', 'd']]), Buffer.concat([hex('00000017 44 43'), Buffer.from('j\0mx\0{daemon_name}\0d\0')]));
  assert.deepEqual(encodeConnect({ hostname: '[192.0.2.1]', family: '4', port: 25, address: '192.0.2.1' }), Buffer.concat([hex('0000001a 43'), Buffer.from('[192.0.2.1]\0'), hex('34 0019'), Buffer.from('192.0.2.1\0')]));
  assert.deepEqual(encodeConnect({ hostname: 'localhost', family: 'U', port: 0, address: '' }), Buffer.concat([hex('0000000c 43'), Buffer.from('localhost\0U')]));
});

test('strings end at their NUL: an embedded NUL cannot shift the fields after it', () => {
  const packet = encodeHeader('Subject', 'a\0b');
  const cmd = decodeCommand({ command: 'L', data: packet.subarray(5) });
  assert.deepEqual(cmd, { type: 'header', name: 'Subject', value: 'a' });
});

test('header text is bytes (latin1 in, latin1 out); envelope strings are UTF-8', () => {
  const h = encodeHeader('Subject', 'caf\xe9');
  assert.equal(h.readUInt32BE(0), 1 + 8 + 5);
  assert.deepEqual(h.subarray(-2), Buffer.from([0xe9, 0]));
  const m = encodeEnvelope(SMFIC.RCPT, ['<ü@例え.jp>']);
  assert.deepEqual(decodeCommand({ command: 'R', data: m.subarray(5) }), { type: 'rcpt', argv: ['<ü@例え.jp>'] });
});

test('body chunks are at most 65535 bytes', () => {
  assert.equal(encodeBody(Buffer.alloc(MAX_BODY_CHUNK)).length, MAX_BODY_CHUNK + 5);
  assert.throws(() => encodeBody(Buffer.alloc(MAX_BODY_CHUNK + 1)), RangeError);
});

test('the reader splits a stream cut anywhere into the same packets', () => {
  const stream = Buffer.concat([encodePacket('c'), encodeAnswer({ type: 'addheader', name: 'X-A', value: 'v' }), encodePacket('b', Buffer.alloc(70_000, 0x61)), encodePacket('a')]);
  for (const step of [1, 2, 3, 5, 7, 4096, stream.length]) {
    const r = new PacketReader(1 << 20);
    const got: Packet[] = [];
    for (let i = 0; i < stream.length; i += step) {
      r.push(stream.subarray(i, i + step));
      for (let p = r.next(); p; p = r.next()) got.push(p);
    }
    assert.deepEqual(got.map((p) => [p.command, p.data.length]), [['c', 0], ['h', 6], ['b', 70_000], ['a', 0]], `step ${step}`);
    assert.equal(r.pending, 0);
  }
});

test('the reader refuses a zero or oversized length as soon as it sees the length', () => {
  const r = new PacketReader(1024);
  assert.throws(() => r.push(hex('00000000')), /bad packet length 0/);
  const big = new PacketReader(1024);
  // Only the length has arrived: refused before any of the 2 GiB is waited for.
  assert.throws(() => big.push(hex('7fffffff')), (e: Error) => e instanceof MilterProtocolError && /2147483647 exceeds 1024/.test(e.message));
  const split = new PacketReader(1024);
  split.push(hex('0000'));
  assert.throws(() => split.push(hex('0401')), /1025 exceeds 1024/);
  const ok = new PacketReader(1024);
  ok.push(hex('00000400'));
  assert.equal(ok.next(), null);
});

test('bare answers: continue, accept, reject, tempfail, discard, progress, skip, shutdown; data after them is an error', () => {
  const cases: Array<[string, FilterAnswer['type']]> = [
    [SMFIR.CONTINUE, 'continue'],
    [SMFIR.ACCEPT, 'accept'],
    [SMFIR.REJECT, 'reject'],
    [SMFIR.TEMPFAIL, 'tempfail'],
    [SMFIR.DISCARD, 'discard'],
    [SMFIR.PROGRESS, 'progress'],
    [SMFIR.SKIP, 'skip'],
    [SMFIR.SHUTDOWN, 'shutdown'],
  ];
  for (const [c, type] of cases) {
    assert.deepEqual(decodeAnswer({ command: c, data: Buffer.alloc(0) }), { type });
    assert.throws(() => decodeAnswer({ command: c, data: Buffer.from('x') }), /followed by 1 data bytes/);
  }
  assert.throws(() => decodeAnswer({ command: 'Z', data: Buffer.alloc(0) }), /unknown answer 'Z'/);
  assert.throws(() => decodeAnswer({ command: '\x01', data: Buffer.alloc(0) }), /unknown answer \? \(0x01\)/);
});

test('modification answers decode, and bad ones are refused', () => {
  const rt = (a: FilterAnswer) => {
    const bytes = encodeAnswer(a);
    return decodeAnswer({ command: String.fromCharCode(bytes[4]!), data: bytes.subarray(5) });
  };
  for (const a of [
    { type: 'addheader', name: 'X-Spam', value: 'Yes' },
    { type: 'insheader', index: 1, name: 'Authentication-Results', value: 'mx;\n\tnone' },
    { type: 'chgheader', index: 2, name: 'Subject', value: '' },
    { type: 'addrcpt', address: '<new@example.org>', args: null },
    { type: 'addrcpt', address: '<new@example.org>', args: 'NOTIFY=NEVER' },
    { type: 'delrcpt', address: '<old@example.org>' },
    { type: 'chgfrom', address: '<bounce@example.org>', args: null },
    { type: 'chgfrom', address: '<bounce@example.org>', args: 'SIZE=5' },
    { type: 'replbody', chunk: Buffer.from('new body\r\n') },
    { type: 'quarantine', reason: 'looks odd' },
  ] as FilterAnswer[]) {
    assert.deepEqual(rt(a), a);
  }
  assert.throws(() => decodeAnswer({ command: 'h', data: Buffer.from('X-A\0no terminator') }), /without its NUL/);
  assert.throws(() => decodeAnswer({ command: 'h', data: Buffer.from('X-A\0v\0extra\0') }), /left-over data/);
  assert.throws(() => decodeAnswer({ command: 'm', data: Buffer.from([0, 0]) }), /too short for a 32-bit number/);
});

test('reply codes: Postfix’s rules for SMFIR_REPLYCODE', () => {
  assert.deepEqual(parseReplyCode('554 5.7.1 Gtube pattern'), { code: 554, enhanced: '5.7.1', lines: ['Gtube pattern'] });
  assert.deepEqual(parseReplyCode('450-4.2.0 first line\r\n450-second\r\n450 4.2.0 third'), { code: 450, enhanced: '4.2.0', lines: ['first line', 'second', 'third'] });
  assert.deepEqual(parseReplyCode('550 no enhanced code'), { code: 550, enhanced: '5.7.1', lines: ['no enhanced code'] });
  assert.deepEqual(parseReplyCode('550 5.7.1 100%% spam, 5% odd'), { code: 550, enhanced: '5.7.1', lines: ['100% spam, 5 odd'] });
  assert.deepEqual(parseReplyCode('421 4.7.0 go away'), { code: 421, enhanced: '4.7.0', lines: ['go away'] });
  for (const bad of [
    '250 2.0.0 ok', // not a refusal
    '550', // no separator
    '550-5.7.1 last line with a dash',
    '550-5.7.1 a\r\n451 4.7.1 b', // codes differ
    '550 4.7.1 class mismatch',
    '550 4 digit of another class',
    '550 5.7.1 a\r\n', // final line ends in CRLF
    '550 5.7.1 bare\nLF',
    '55O 5.7.1 letter',
    '550 5.7.1 nul\0inside',
  ]) {
    assert.equal(parseReplyCode(bad), null, JSON.stringify(bad));
  }
  const long = parseReplyCode(Array.from({ length: 100 }, (_, i) => `550${i === 99 ? ' ' : '-'}5.7.1 ${'x'.repeat(2000)}`).join('\r\n'))!;
  assert.equal(long.lines.length, 32);
  assert.ok(long.lines.every((l) => l.length <= 450));
});

test('negotiation answer with the filter’s own macro lists', () => {
  const bytes = encodeAnswer({ type: 'optneg', answer: { version: 6, actions: 0x1ff, protocol: SMFIP.NR_HDR, macroLists: { connect: ['{client_addr}', 'j'], eom: ['i'] } } });
  const a = decodeOptneg({ command: 'O', data: bytes.subarray(5) });
  assert.deepEqual(a, { version: 6, actions: 0x1ff, protocol: SMFIP.NR_HDR, macroLists: { connect: ['{client_addr}', 'j'], eom: ['i'] } });
  assert.throws(() => decodeOptneg({ command: 'c', data: Buffer.alloc(0) }), /expected 'O'/);
  assert.throws(() => decodeOptneg({ command: 'O', data: Buffer.alloc(8) }), /too short/);
});

test('events a filter of an older version does not know are not sent', () => {
  assert.equal(eventsOutsideVersion(6), 0);
  assert.equal(eventsOutsideVersion(4), 0);
  assert.equal(eventsOutsideVersion(3), SMFIP.NODATA);
  assert.equal(eventsOutsideVersion(2), SMFIP.NODATA | SMFIP.NOUNKNOWN);
});

function loadFixture(name: string): Fixture {
  return JSON.parse(readFileSync(join(repoRoot, 'test', 'fixtures', 'milter', `rspamd-${name}.json`), 'utf8')) as Fixture;
}

function packetsOf(f: Fixture, from: 'mta' | 'filter'): Array<{ bytes: Buffer; packet: Packet }> {
  return f.packets
    .filter((p) => p.from === from)
    .map((p) => {
      const bytes = Buffer.from(p.hex, 'hex');
      const r = new PacketReader(1 << 24);
      r.push(bytes);
      const packet = r.next()!;
      assert.equal(r.pending, 0);
      assert.equal(packet.command, p.command);
      return { bytes, packet };
    });
}

for (const name of ['clean', 'gtube']) {
  test(`recorded exchange with rspamd (${name}): every packet decodes and re-encodes to the same bytes`, () => {
    const f = loadFixture(name);
    for (const { bytes, packet } of packetsOf(f, 'mta')) assert.deepEqual(encodeCommand(decodeCommand(packet)), bytes, `MTA packet ${packet.command}`);
    const answers = packetsOf(f, 'filter');
    const optneg = decodeOptneg(answers[0]!.packet);
    // rspamd: version 6, every action, and no reply to any event before the end of the message.
    assert.equal(optneg.version, 6);
    assert.equal(optneg.actions & ~MTA_ACTIONS, 0);
    assert.equal(optneg.protocol & ~MTA_PROTOCOL, 0);
    assert.ok(optneg.protocol & SMFIP.NR_HDR && optneg.protocol & SMFIP.NR_BODY);
    for (const { bytes, packet } of answers.slice(1)) assert.deepEqual(encodeAnswer(decodeAnswer(packet)), bytes, `answer ${packet.command}`);
  });
}

test('recorded exchange (clean): what the MTA said, in order, and rspamd’s header requests', () => {
  const f = loadFixture('clean');
  const sent = packetsOf(f, 'mta').map(({ packet }) => decodeCommand(packet));
  const order = sent.filter((c) => c.type !== 'macro').map((c) => c.type);
  assert.deepEqual(order.slice(0, 6), ['optneg', 'connect', 'helo', 'mail', 'rcpt', 'data']);
  // After the message, ABORT (Postfix's mail_reset) and, at close, QUIT.
  assert.deepEqual(order.slice(-5), ['eoh', 'body', 'eob', 'abort', 'quit']);
  const connect = sent.find((c) => c.type === 'connect');
  assert.deepEqual(connect, { type: 'connect', hostname: 'client.example.com', family: '4', port: 40001, address: '192.0.2.7' });
  const macros = new Map(sent.filter((c) => c.type === 'macro' && c.for === 'C').flatMap((c) => (c.type === 'macro' ? c.macros : [])));
  assert.equal(macros.get('j'), 'mx.example.org');
  assert.equal(macros.get('{client_addr}'), '192.0.2.7');
  const headers = sent.filter((c) => c.type === 'header');
  // The MTA's own Received: line is not shown; one leading space is not sent (no SMFIP_HDR_LEADSPC).
  assert.deepEqual(headers[0], { type: 'header', name: 'From', value: 'Sender <sender@example.com>' });
  assert.ok(!headers.some((h) => h.type === 'header' && h.name === 'Received'));
  const answers = packetsOf(f, 'filter').slice(1).map(({ packet }) => decodeAnswer(packet));
  assert.equal(answers.at(-1)!.type, 'accept');
  assert.ok(answers.some((a) => a.type === 'addheader' && a.name === 'X-Spam-Status' && /^No, score=/.test(a.value)));
});

test('recorded exchange (GTUBE): rspamd refuses with its reply text', () => {
  const answers = packetsOf(loadFixture('gtube'), 'filter').slice(1).map(({ packet }) => decodeAnswer(packet));
  assert.deepEqual(answers, [{ type: 'replycode', reply: { code: 554, enhanced: '5.7.1', lines: ['Gtube pattern'] } }]);
});
