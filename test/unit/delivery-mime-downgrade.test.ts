// The 8-bit → 7-bit conversion for servers without 8BITMIME (RFC 6152 §3): every converted
// message is 7-bit with lines of at most 76 characters in its re-encoded parts, and a real MIME
// parser (mailparser) reads from it exactly what it reads from the original.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simpleParser, type ParsedMail } from 'mailparser';
import { downgradeTo7bit, hasEightBit, headerHasEightBit } from '../../src/delivery/mime-downgrade.js';

const crlf = (s: string) => s.replace(/\r?\n/g, '\r\n');

function converted(message: Buffer): Buffer {
  const r = downgradeTo7bit(message);
  assert.ok(r.ok, `convertible: ${r.ok ? '' : r.reason}`);
  assert.equal(hasEightBit(r.message), false, 'no 8-bit octet left');
  return r.message;
}

/** The same subject, text, html and attachments (an embedded message compared by what it says). */
async function sameContent(a: ParsedMail, b: ParsedMail): Promise<void> {
  assert.equal(b.subject, a.subject);
  assert.equal(b.text, a.text);
  assert.equal(b.html, a.html);
  const summary = async (m: ParsedMail) =>
    Promise.all(
      m.attachments.map(async (x) =>
        x.contentType === 'message/rfc822' ? [x.contentType, (await simpleParser(x.content)).text] : [x.contentType, x.filename, x.content.toString('base64')],
      ),
    );
  assert.deepEqual(await summary(b), await summary(a));
}

test('8-bit sent raw to a server without 8BITMIME: a plain 8-bit message becomes quoted-printable MIME text', async () => {
  const original = Buffer.from(crlf('From: a@example.org\nTo: b@example.net\nSubject: plain\n\nGrüße aus Köln, ça va?\n.leading dot and trailing space \nend\n'), 'utf8');
  const out = converted(original);
  const text = out.toString('latin1');
  assert.match(text, /^Content-Transfer-Encoding: quoted-printable$/m);
  assert.match(text, /^Content-Type: text\/plain; charset=utf-8$/m);
  assert.match(text, /^MIME-Version: 1\.0$/m);
  assert.match(text, /Gr=C3=BC=C3=9Fe/);
  const parsed = await simpleParser(out);
  assert.equal(parsed.text, 'Grüße aus Köln, ça va?\n.leading dot and trailing space \nend\n');
});

test('8-bit sent raw: every 8-bit part of a multipart is re-encoded, 7-bit parts are left byte for byte', async () => {
  const binary = Buffer.from([0x00, 0x80, 0xff, 0x0d, 0x0a, 0x41, 0xfe, 0x0d, 0x0a]);
  const parts = [
    'From: a@example.org',
    'To: b@example.net',
    'Subject: mixed',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="outer=_b"',
    '',
    'This is a multi-part message.',
    '--outer=_b',
    'Content-Type: multipart/alternative; boundary=alt',
    '',
    '--alt',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    'naïve café ' + 'x'.repeat(120),
    '--alt',
    'Content-Type: text/html; charset=iso-8859-1',
    'Content-Transfer-Encoding: 8bit',
    '',
    '<p>caf\u00e9</p>',
    '--alt--',
    '',
    '--outer=_b',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'an ASCII part, left alone',
    '--outer=_b',
    'Content-Type: message/rfc822',
    'Content-Transfer-Encoding: 8bit',
    '',
    'From: c@example.org',
    'Subject: inner',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    'inner ünïcödé',
    '--outer=_b',
    'Content-Type: application/octet-stream; name="data.bin"',
    'Content-Disposition: attachment; filename="data.bin"',
    'Content-Transfer-Encoding: binary',
    '',
    'BINARY',
    '--outer=_b--',
    '',
  ].join('\r\n');
  const [head, tail] = parts.split('BINARY');
  // The html part is latin-1 (one octet per é), the rest UTF-8; the attachment raw bytes.
  const original = Buffer.concat([
    Buffer.from(head!.split('<p>caf\u00e9</p>')[0]!, 'utf8'),
    Buffer.from('<p>caf\u00e9</p>', 'latin1'),
    Buffer.from(head!.split('<p>caf\u00e9</p>')[1]!, 'utf8'),
    binary,
    Buffer.from(tail!, 'utf8'),
  ]);
  const r = downgradeTo7bit(original);
  assert.ok(r.ok);
  assert.equal(r.converted, 4, 'two alternatives, the inner message body, the attachment');
  const out = converted(original);
  const text = out.toString('latin1');
  assert.ok(text.includes('Content-Type: text/plain; charset=us-ascii\r\n\r\nan ASCII part, left alone\r\n--outer=_b'), 'the 7-bit part is unchanged');
  assert.match(text, /Content-Type: message\/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n/, 'the message/rfc822 container says 7bit');
  assert.match(text, /Content-Type: application\/octet-stream; name="data\.bin"\r\nContent-Disposition: attachment; filename="data\.bin"\r\nContent-Transfer-Encoding: base64\r\n/);
  assert.doesNotMatch(text, /Content-Transfer-Encoding: (8bit|binary)/i);
  for (const line of text.split('\r\n')) assert.ok(line.length <= 998, 'no over-long line');
  const before = await simpleParser(original);
  const after = await simpleParser(out);
  await sameContent(before, after);
  assert.match(after.text ?? '', /naïve café/);
  assert.match(String(after.html), /^<p>café<\/p>/, 'the latin-1 html part decodes');
  const bin = after.attachments.find((a) => a.filename === 'data.bin');
  assert.deepEqual(bin?.content, binary);
  const inner = after.attachments.find((a) => a.contentType === 'message/rfc822');
  assert.ok(inner, 'the embedded message is there');
  assert.equal((await simpleParser(inner.content)).text, 'inner ünïcödé');
});

test('8-bit in a header cannot be converted: the message must be returned (5.6.3), not sent', () => {
  const top = downgradeTo7bit(Buffer.from(crlf('From: a@example.org\nSubject: Grüße\n\nbody é\n'), 'utf8'));
  assert.equal(top.ok, false);
  assert.match(top.ok ? '' : top.reason, /8-bit characters in a message header/);
  assert.equal(headerHasEightBit(Buffer.from(crlf('Subject: Grüße\n\nbody\n'), 'utf8')), true);
  assert.equal(headerHasEightBit(Buffer.from(crlf('Subject: x\n\nbodyé\n'), 'utf8')), false);
  const inPart = downgradeTo7bit(
    Buffer.from(crlf('Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: application/pdf; name="ü.pdf"\n\n%PDF\n--b--\n'), 'utf8'),
  );
  assert.equal(inPart.ok, false, 'an 8-bit part header too');
  const preamble = downgradeTo7bit(Buffer.from(crlf('Content-Type: multipart/mixed; boundary=b\n\nprämble\n--b\n\nx\n--b--\n'), 'utf8'));
  assert.equal(preamble.ok, false, 'an 8-bit preamble');
});

test('a 7-bit message is returned as it is; too deep a nesting is refused', () => {
  const seven = Buffer.from(crlf('Subject: x\nContent-Type: text/plain\n\nplain ASCII\n'));
  const r = downgradeTo7bit(seven);
  assert.ok(r.ok);
  assert.equal(r.converted, 0);
  assert.deepEqual(r.message, seven);
  let nested = 'Content-Type: text/plain; charset=utf-8\r\n\r\nü\r\n';
  for (let i = 0; i < 60; i++) nested = `Content-Type: message/rfc822\r\n\r\n${nested}`;
  const deep = downgradeTo7bit(Buffer.from(nested, 'utf8'));
  assert.equal(deep.ok, false);
});
