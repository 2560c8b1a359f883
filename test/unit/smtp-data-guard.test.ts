// The DATA guard: bare CR/LF, line length and size, whatever the chunking.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataScanner, ReceivedCounter, type DataLimits, type DataViolation } from '../../src/smtp-server/data-guard.js';

const LIMITS: DataLimits = { maxLineLength: 998, maxBytes: 0 };

/** Scans `text` cut into every possible pair of chunks (and whole), expecting the same verdict each time. */
function verdicts(text: Buffer | string, limits: DataLimits = LIMITS): Set<DataViolation | null> {
  const buf = Buffer.isBuffer(text) ? text : Buffer.from(text, 'latin1');
  const seen = new Set<DataViolation | null>();
  for (let cut = 0; cut <= buf.length; cut++) {
    const s = new DataScanner(limits);
    s.scan(buf.subarray(0, cut));
    s.scan(buf.subarray(cut));
    seen.add(s.finish());
  }
  // byte by byte too
  const s = new DataScanner(limits);
  for (const b of buf) s.scan(Buffer.from([b]));
  seen.add(s.finish());
  return seen;
}

test('clean CRLF text passes, however it is chunked', () => {
  assert.deepEqual(verdicts('Subject: x\r\n\r\nline one\r\n.line two\r\n'), new Set([null]));
  assert.deepEqual(verdicts(''), new Set([null]));
});

test('a bare LF is refused', () => {
  assert.deepEqual(verdicts('Subject: x\r\n\r\nbody\nmore\r\n'), new Set(['bare-lf']));
  assert.deepEqual(verdicts('\n'), new Set(['bare-lf']));
});

test('a bare CR is refused, also at the very end', () => {
  assert.deepEqual(verdicts('Subject: x\r\n\r\nbo\rdy\r\n'), new Set(['bare-cr']));
  assert.deepEqual(verdicts('body\r\n\r'), new Set(['bare-cr']));
  assert.deepEqual(verdicts('a\r\r\n'), new Set(['bare-cr']));
});

test('the SMTP smuggling end-of-data forms are all refused', () => {
  for (const form of ['\n.\n', '\n.\r\n', '\r\n.\n', '\r.\r', '\r\n.\r', '\r\n.\r\r\n']) {
    const body = `Subject: x\r\n\r\nhello${form}MAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\nDATA\r\nsmuggled\r\n`;
    const v = verdicts(body);
    assert.equal(v.size, 1, JSON.stringify(form));
    assert.ok(v.has('bare-lf') || v.has('bare-cr'), `${JSON.stringify(form)} → ${[...v]}`);
  }
});

test('lines of 998 octets pass, 999 do not', () => {
  assert.deepEqual(verdicts(`${'a'.repeat(998)}\r\nok\r\n`), new Set([null]));
  assert.deepEqual(verdicts(`${'a'.repeat(999)}\r\nok\r\n`), new Set(['line-too-long']));
  assert.deepEqual(verdicts(`ok\r\n${'b'.repeat(1200)}`), new Set(['line-too-long']));
  assert.deepEqual(verdicts(`${'a'.repeat(999)}\r\n`, { maxLineLength: 0, maxBytes: 0 }), new Set([null]));
});

test('size: at the limit passes, one octet more is refused', () => {
  const ten = 'abcdefgh\r\n';
  assert.deepEqual(verdicts(ten, { maxLineLength: 998, maxBytes: 10 }), new Set([null]));
  assert.deepEqual(verdicts(ten + 'x', { maxLineLength: 998, maxBytes: 10 }), new Set(['too-big']));
});

test('the first violation sticks and bytes keep counting', () => {
  const s = new DataScanner(LIMITS);
  assert.equal(s.scan(Buffer.from('a\nb')), 'bare-lf');
  assert.equal(s.scan(Buffer.from('x'.repeat(2000))), 'bare-lf');
  assert.equal(s.finish(), 'bare-lf');
  assert.equal(s.bytes, 2003);
});

// ------------------------------------------------------------------ Received: lines (mail loops)

/** `n` Received: fields, each folded over two lines as MTAs write them. */
function received(n: number): string {
  return Array.from({ length: n }, (_, i) => `Received: from hop${i}.test by mx${i}.test;\r\n\tMon, 7 Dec 2026 10:00:0${i % 10} +0000\r\n`).join('');
}

test('Received: fields are counted in the header only, whatever the chunking', () => {
  const text = `${received(3)}Subject: x\r\nX-Received: not counted\r\nReceived-SPF: pass\r\n\r\nReceived: in the body is not a field\r\n`;
  const buf = Buffer.from(text, 'latin1');
  for (let cut = 0; cut <= buf.length; cut++) {
    const c = new ReceivedCounter();
    c.feed(buf.subarray(0, cut));
    c.feed(buf.subarray(cut));
    assert.equal(c.count, 3, `cut at ${cut}`);
    assert.equal(c.done, true);
  }
  const bytewise = new ReceivedCounter();
  for (const b of buf) bytewise.feed(Buffer.from([b]));
  assert.equal(bytewise.count, 3);
});

test('any case, white space before the colon; not a continuation line, not a longer name', () => {
  const c = new ReceivedCounter();
  c.feed(Buffer.from('RECEIVED: a\r\nreceived : b\r\nReceived\t: c\r\n Received: folded\r\nReceivedX: d\r\nReceived-By: e\r\nSubject: Received: f\r\n\r\n'));
  assert.equal(c.count, 3);
});

test('MAX_RECEIVED_LINES counts ours too: one fewer may arrive', () => {
  const limits = { maxLineLength: 998, maxBytes: 0, maxReceivedLines: 5 };
  assert.deepEqual(verdicts(`${received(4)}Subject: x\r\n\r\nbody\r\n`, limits), new Set([null]));
  assert.deepEqual(verdicts(`${received(5)}Subject: x\r\n\r\nbody\r\n`, limits), new Set(['too-many-hops']));
  assert.deepEqual(verdicts(`${received(60)}\r\nbody\r\n`, { ...limits, maxReceivedLines: 0 }), new Set([null]), '0 = no limit');
  // a body full of Received: lines is no loop
  assert.deepEqual(verdicts(`Subject: x\r\n\r\n${received(20)}`, limits), new Set([null]));
});
