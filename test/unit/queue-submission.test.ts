import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeLineEndings, cutAtDotLine, composeSubmission, type SubmitOptions } from '../../src/queue/local-submission.js';
import { splitMessage, parseAddressList } from '../../src/common/rfc5322-header.js';
import { parseSubmitArgs } from '../../src/cli/submit-args.js';

test('sendmail-style arguments', () => {
  assert.deepEqual(parseSubmitArgs(['-t', '-i', '-fbounce@example.com', '-F', 'The Boss', 'a@b', 'c@d, e@f']), {
    root: null, from: 'bounce@example.com', fullName: 'The Boss', extract: true, ignoreDots: true, recipients: ['a@b', 'c@d, e@f'],
  });
  assert.equal(parseSubmitArgs(['-f', '<>', 'x']).from, '');
  assert.equal(parseSubmitArgs(['-r', '<a@b>', 'x']).from, 'a@b');
  assert.equal(parseSubmitArgs(['--root', '/inst', '-oi', '-odb', 'x']).root, '/inst');
  assert.deepEqual(parseSubmitArgs(['--', '-weird@x']).recipients, ['-weird@x']);
  assert.throws(() => parseSubmitArgs(['-Q']), /unknown option -Q/);
  assert.throws(() => parseSubmitArgs(['-f']), /needs a value/);
});

test('LF becomes CRLF; CRLF, bare CR, NUL and 8-bit bytes are untouched', () => {
  const input = Buffer.from([0x61, 0x0a, 0x62, 0x0d, 0x0a, 0x63, 0x0d, 0x64, 0x00, 0xff, 0x0a]);
  assert.deepEqual([...normalizeLineEndings(input)], [0x61, 0x0d, 0x0a, 0x62, 0x0d, 0x0a, 0x63, 0x0d, 0x64, 0x00, 0xff, 0x0d, 0x0a]);
});

test('a lone dot ends the input unless -i', () => {
  assert.equal(cutAtDotLine(Buffer.from('a\r\n.\r\nignored\r\n')).toString(), 'a\r\n');
  assert.equal(cutAtDotLine(Buffer.from('a\r\n..\r\nb\r\n')).toString(), 'a\r\n..\r\nb\r\n');
  assert.equal(cutAtDotLine(Buffer.from('.\r\n')).toString(), '');
  assert.equal(cutAtDotLine(Buffer.from('a\r\n.')).toString(), 'a\r\n');
});

test('header and body split, folded fields kept whole, header-less input is all body', () => {
  const m = splitMessage('Subject: a\r\n b\r\nTo: x@y\r\n\r\nbody\r\n');
  assert.deepEqual(m.fields.map((f) => [f.name, f.raw]), [['subject', 'Subject: a\r\n b\r\n'], ['to', 'To: x@y\r\n']]);
  assert.equal(m.body, 'body\r\n');
  assert.deepEqual(splitMessage('hello world\r\nsecond\r\n'), { fields: [], body: 'hello world\r\nsecond\r\n' });
  assert.equal(splitMessage('Subject: no body').fields[0]!.raw, 'Subject: no body\r\n');
});

test('address lists: display names, quotes, comments, groups', () => {
  assert.deepEqual(parseAddressList('a@x, "Smith, John" <j@x>, Bob <b@x> (work), (c) c@x'), ['a@x', 'j@x', 'b@x', 'c@x']);
  assert.deepEqual(parseAddressList('team: m1@x, m2@x;, solo@x'), ['m1@x', 'm2@x', 'solo@x']);
  assert.deepEqual(parseAddressList('"odd local"@x, <@route:r@x>'), ['"odd local"@x', 'r@x']);
  assert.deepEqual(parseAddressList('undisclosed-recipients:;'), []);
  assert.deepEqual(parseAddressList('Just A Name'), []);
});

function opts(over: Partial<SubmitOptions>): SubmitOptions {
  return { root: null, from: null, fullName: null, extract: false, ignoreDots: false, recipients: [], ...over };
}

const base = { user: 'alice', uid: 1000, localHost: 'mail.example.test', now: new Date('2026-01-02T03:04:05Z'), uniqueId: 'UNIQ1', formatDate: () => 'Fri, 2 Jan 2026 03:04:05 +0000' };

test('-t takes To/Cc/Bcc, removes Bcc, and adds what is missing', () => {
  const s = composeSubmission({
    ...base,
    message: Buffer.from('To: Bob <bob@example.net>\nCc: carol@example.net, bob@example.net\nBcc: secret@example.net,\n  hidden\nSubject: hi\n\nline\n'),
    options: opts({ extract: true, recipients: ['dave'] }),
  });
  assert.deepEqual(s.recipients, ['dave', 'bob@example.net', 'carol@example.net', 'secret@example.net', 'hidden']);
  assert.equal(s.from, 'alice@mail.example.test');
  assert.equal(
    s.message.toString(),
    'Received: by mail.example.test (tsubame submit, from userid 1000);\r\n\tFri, 2 Jan 2026 03:04:05 +0000\r\n' +
      'To: Bob <bob@example.net>\r\nCc: carol@example.net, bob@example.net\r\nSubject: hi\r\n' +
      'From: alice@mail.example.test\r\nDate: Fri, 2 Jan 2026 03:04:05 +0000\r\nMessage-ID: <UNIQ1@mail.example.test>\r\n' +
      '\r\nline\r\n',
  );
});

test('existing From/Date/Message-ID are kept; Bcc stays without -t; body bytes are exact', () => {
  const body = Buffer.concat([Buffer.from('From: me@x\r\nDate: yesterday\r\nMessage-ID: <m@x>\r\nBcc: b@x\r\n\r\n'), Buffer.from([0x00, 0xe9, 0x0d, 0x41]), Buffer.alloc(2000, 0x6c), Buffer.from('\r\n.\r\nafter')]);
  const s = composeSubmission({ ...base, message: body, options: opts({ recipients: ['r@x'], from: '', ignoreDots: true }) });
  assert.equal(s.from, '');
  const text = s.message.toString('latin1');
  assert.ok(!/^Date: Fri/m.test(text) && !/^Message-ID: <UNIQ1/m.test(text) && !/^From: alice/m.test(text));
  assert.match(text, /^Bcc: b@x\r$/m);
  assert.ok(s.message.subarray(s.message.length - body.length + body.indexOf('\r\n\r\n') + 4).equals(body.subarray(body.indexOf('\r\n\r\n') + 4)));
});

test('-F names the added From; -f sets the envelope sender', () => {
  const s = composeSubmission({ ...base, message: Buffer.from('Subject: x\n\nb\n'), options: opts({ recipients: ['r@x'], fullName: 'Alice Q. User', from: 'list-bounces' }) });
  assert.match(s.message.toString(), /^From: "Alice Q. User" <alice@mail.example.test>\r$/m);
  assert.equal(s.from, 'list-bounces@mail.example.test');
});
