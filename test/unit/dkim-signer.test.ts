// The DKIM signer's pure parts: header fields, From: domain, relaxed header canonicalization
// (RFC 6376 §3.4.5's example), the signed and over-signed field names, the exact length the
// queue reserves, the streaming signer against the whole-message one at every split around the
// end of the header block, and a fuzz of messages checked by mailauth's verifier in process (the
// independent verifiers, dkimverify and opendkim, are in test/integration/dkim-verify.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { DkimConfig, DkimKey } from '../../src/config/types.js';
import { bodyOffset, fromDomain, headerFields, MessageSigner, MAX_HEADER_BYTES, relaxedField, signedFields, signatureLength, signingKeysFor, signMessage } from '../../src/dkim/index.js';
import { dnsRecordValue, txtRecord } from '../../src/dkim/keygen.js';

const requireCjs = createRequire(import.meta.url);
const { dkimVerify } = requireCjs('mailauth/lib/dkim/verify.js') as {
  dkimVerify: (message: Buffer, opts: { resolver: (name: string, type: string) => Promise<string[][]> }) => Promise<{ results: Array<{ status: { result: string; comment?: string }; signingDomain: string }> }>;
};

function key(domain: string, selector: string, type: 'rsa' | 'ed25519', bits = 2048, subdomains = false): DkimKey & { publicKey: KeyObject } {
  const pair = type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: bits }) : generateKeyPairSync('ed25519');
  return { domain, subdomains, selector, algorithm: type === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256', keyFile: `/k/${domain}.${selector}.pem`, privateKey: pair.privateKey, publicKey: pair.publicKey, signatureBytes: type === 'rsa' ? bits / 8 : 64, file: '/etc/dkim/keys', line: 1 };
}

const RSA = key('example.com', 'rsa1', 'rsa');
const ED = key('example.com', 'ed1', 'ed25519');
const DKIM: DkimConfig = { file: '/etc/dkim/keys', keys: [RSA, ED] };
const FIXED = { now: () => new Date('2026-12-07T10:00:00Z') };

/** mailauth's verifier, with the keys' TXT records as DNS. */
async function verify(message: Buffer, keys: Array<DkimKey & { publicKey: KeyObject }> = [RSA, ED]): Promise<string[]> {
  const records = new Map(keys.map((k) => [`${k.selector}._domainkey.${k.domain}`, dnsRecordValue(k.publicKey)]));
  const { results } = await dkimVerify(message, {
    resolver: async (name) => {
      const r = records.get(name);
      if (!r) throw Object.assign(new Error('no such name'), { code: 'ENOTFOUND' });
      return [[r]];
    },
  });
  return results.map((r) => `${r.status.result}${r.status.comment ? ` (${r.status.comment})` : ''}`);
}

const MESSAGE =
  'Received: from x ([127.0.0.1])\r\n\tby y (tsubame); Mon, 7 Dec 2026 10:00:00 +0000\r\n' +
  'From: "Example, Alice" <alice@Example.COM>\r\nTo: bob@example.net,\r\n  carol@example.org\r\nTo: dave@example.org\r\n' +
  'Subject:  Hello\t there \r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@example.com>\r\nX-Other: not signed\r\n' +
  '\r\nHello  world \r\n\ttabbed line\r\n\r\n\r\n';

test('header fields, the end of the header block, relaxed canonicalization (RFC 6376 §3.4.5)', () => {
  const fields = headerFields('A: X\r\nB : Y\t\r\n\tZ  \r\n');
  assert.deepEqual(fields.map((f) => f.name), ['a', 'b']);
  assert.deepEqual(fields.map((f) => relaxedField(f.raw)), ['a:X', 'b:Y Z']);
  assert.equal(relaxedField('Subject:\t \r\n  folded\r\n\tvalue  '), 'subject:folded value');
  assert.equal(bodyOffset(Buffer.from('A: 1\r\nB: 2\r\n\r\nbody')), 14);
  assert.equal(bodyOffset(Buffer.from('A: 1\nB: 2\n\nbody')), 11);
  assert.equal(bodyOffset(Buffer.from('\r\nbody')), 2);
  assert.equal(bodyOffset(Buffer.from('A: 1\r\nB: 2\r\n\r')), -1, 'not yet ended');
  assert.equal(bodyOffset(Buffer.from('A: 1\r\nB: 2\r\n')), -1);
});

test('the From: domain: display names, comments, groups, IDN, none', () => {
  const domain = (from: string) => fromDomain(headerFields(`Received: x\r\n${from}\r\nTo: y@z.example\r\n`));
  assert.equal(domain('From: "Doe, John" <john@Mail.Example.COM.>'), 'mail.example.com');
  assert.equal(domain('From: john@example.org (John, the one)'), 'example.org');
  assert.equal(domain('From: Team: a@one.example, b@two.example;'), 'one.example');
  assert.equal(domain(`From: ${Buffer.from('Jürgen <j@bücher.example>', 'utf8').toString('latin1')}`), 'xn--bcher-kva.example');
  assert.equal(domain('From:\r\n  folded@fold.example'), 'fold.example');
  assert.equal(domain('Sender: s@sender.example'), null, 'no From: field');
  assert.equal(domain('From: undisclosed'), null, 'no address');
});

test('signed fields: every instance bottom-up, From/Reply-To/Subject/To/Cc over-signed always, Date/Message-ID… when present', () => {
  const s = signedFields(headerFields(MESSAGE.slice(0, MESSAGE.indexOf('\r\n\r\n') + 2)));
  assert.deepEqual(s.names, ['From', 'From', 'Reply-To', 'Subject', 'Subject', 'Date', 'Date', 'Message-ID', 'Message-ID', 'To', 'To', 'To', 'Cc']);
  assert.deepEqual(s.canonical, ['from:"Example, Alice" <alice@Example.COM>', 'subject:Hello there', 'date:Mon, 7 Dec 2026 10:00:00 +0000', 'message-id:<1@example.com>', 'to:dave@example.org', 'to:bob@example.net, carol@example.org']);
});

test('the length reserved before signing is the length of the signature made: RSA 1024 to 3072, Ed25519, few and many fields', () => {
  const keys = [key('a.example', 's', 'rsa', 1024), RSA, key('a-much-longer-domain-name.subdomain.example.com', 'selector-2026-12', 'rsa', 3072), ED];
  const headers = [
    'From: a@a.example\r\n',
    MESSAGE.slice(0, MESSAGE.indexOf('\r\n\r\n') + 2) + 'List-Unsubscribe: <https://x.example/u>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nList-Id: <l.x.example>\r\nReferences: <1@x> <2@x>\r\nIn-Reply-To: <2@x>\r\nCc: c@x.example\r\nReply-To: r@x.example\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\nSender: s@x.example\r\n',
  ];
  for (const k of keys) {
    for (const h of headers) {
      const fields = signedFields(headerFields(h));
      const dkim: DkimConfig = { file: null, keys: [{ ...k, domain: 'a.example' }] };
      const signature = signMessage(Buffer.from(`${h.replace(/^From: .*\r\n/m, 'From: a@a.example\r\n')}\r\nbody\r\n`), dkim, FIXED);
      assert.equal(Buffer.byteLength(signature, 'latin1'), signatureLength({ ...k, domain: 'a.example' }, fields.names, 1_000_000_000), `${k.algorithm} ${k.signatureBytes * 8} with ${fields.names.length} names`);
      assert.ok(signature.split('\r\n').every((l) => l.length <= 78), 'folded lines');
    }
  }
});

test('two keys for the From: domain: two signatures (RSA and Ed25519), both verify; a change breaks both', async () => {
  const signature = signMessage(Buffer.from(MESSAGE), DKIM, FIXED);
  assert.match(signature, /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example\.com;\r\n\ts=rsa1; t=1796637600;\r\n\th=From:From:Reply-To:/);
  assert.match(signature, /\r\nDKIM-Signature: v=1; a=ed25519-sha256; c=relaxed\/relaxed; d=example\.com;\r\n\ts=ed1; /);
  const signed = Buffer.from(signature + MESSAGE, 'latin1');
  assert.deepEqual(await verify(signed), ['pass', 'pass']);
  assert.deepEqual((await verify(Buffer.from(signature + MESSAGE.replace('Hello  world', 'Hello  World'), 'latin1'))).map((r) => r.split(' ')[0]), ['neutral', 'neutral'], 'body hash mismatch');
});

test('the streaming signer gives the same signature at every split of the message around the end of its header block', () => {
  const whole = Buffer.from(MESSAGE);
  const expected = signMessage(whole, DKIM, FIXED);
  const end = bodyOffset(whole);
  for (let cut = 1; cut < whole.length; cut++) {
    if (Math.abs(cut - end) > 40 && cut % 17 !== 0) continue;
    const s = new MessageSigner(DKIM, FIXED);
    s.update(whole.subarray(0, cut));
    assert.equal(s.length === null, cut < end, `length known once the header block has ended (cut ${cut})`);
    s.update(whole.subarray(cut));
    assert.equal(s.finish().toString('latin1'), expected, `cut at ${cut}`);
  }
  // byte by byte
  const s = new MessageSigner(DKIM, FIXED);
  for (const b of whole) s.update(Buffer.from([b]));
  assert.equal(s.finish().toString('latin1'), expected);
});

test('a header block trickled in one byte at a time costs time in proportion to its size', () => {
  const header = Buffer.from(`From: a@example.com\r\nReferences:${' <x@y>'.repeat(40_000)}\r\n\r\n`);
  const started = performance.now();
  const s = new MessageSigner(DKIM, FIXED);
  for (let i = 0; i < header.length; i++) s.update(header.subarray(i, i + 1));
  assert.ok(s.length! > 0, 'signed');
  const ms = performance.now() - started;
  // Joining the header so far at each byte would copy ~29 GB here (minutes); one pass is well under a second.
  assert.ok(ms < 5000, `${header.length} bytes one by one took ${ms.toFixed(0)} ms`);
  s.update(Buffer.from('body\r\n'));
  const whole = new MessageSigner(DKIM, FIXED);
  whole.update(Buffer.concat([header, Buffer.from('body\r\n')]));
  assert.equal(s.finish().toString('latin1'), whole.finish().toString('latin1'));
});

test('no signature: no From:, no key for the domain, a header block that never ends in time, giveUp()', () => {
  const none = (text: string | Buffer, dkim = DKIM) => {
    const s = new MessageSigner(dkim);
    s.update(Buffer.isBuffer(text) ? text : Buffer.from(text));
    return { length: s.length, reason: s.unsignedReason, out: s.finish().length };
  };
  assert.deepEqual(none('Subject: x\r\n\r\nbody\r\n'), { length: 0, reason: 'no From: domain', out: 0 });
  assert.deepEqual(none('From: a@other.example\r\n\r\nbody\r\n'), { length: 0, reason: 'no key for other.example', out: 0 });
  const huge = Buffer.from(`From: a@example.com\r\nReferences:${' <x@y>'.repeat(MAX_HEADER_BYTES / 6 + 10)}\r\n\r\nbody\r\n`);
  assert.deepEqual(none(huge), { length: 0, reason: `header block over ${MAX_HEADER_BYTES} bytes`, out: 0 });
  const s = new MessageSigner(DKIM);
  s.update(Buffer.from('From: a@example.com\r\nSubj'));
  assert.equal(s.length, null);
  s.giveUp();
  assert.equal(s.length, 0);
  s.update(Buffer.from('ect: x\r\n\r\nbody\r\n'));
  assert.equal(s.finish().length, 0);
  // A message that is all header (no empty line) is still signed, with an empty body.
  const allHeader = new MessageSigner(DKIM, FIXED);
  allHeader.update(Buffer.from('From: a@example.com\r\nSubject: only a header\r\n'));
  assert.match(allHeader.finish().toString('latin1'), /bh=47DEQpj8HBSa\+\/TImW\+5JCeuQeRkm5NMpJWZG3hSuFU=;/, 'the relaxed hash of an empty body');
});

test('fuzz: random messages (whitespace, 8-bit bytes, folding, odd chunking) signed while streaming verify with mailauth', async () => {
  let seed = 17;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const pieces = ['word', ' ', '  ', '\t', 'caf\xe9', '\xff\xfe', '.', 'x'.repeat(90), ';', '=?utf-8?q?a?='];
  const line = () => Array.from({ length: rand(8) }, () => pieces[rand(pieces.length)]).join('');
  for (let i = 0; i < 40; i++) {
    const headers = [`From: ${line().replace(/[<>@,;:"]/g, '')} <u${i}@example.com>`, `Subject: ${line()}${rand(2) ? `\r\n ${line()}x` : ''}`, `To: t@example.net`, `X-R: ${line()}`];
    if (rand(2)) headers.push(`Cc: c@example.org${rand(2) ? `,\r\n\t d@example.org` : ''}`);
    const body = Array.from({ length: rand(30) }, line).join('\r\n') + (rand(3) ? '\r\n' : '') + '\r\n'.repeat(rand(3));
    const msg = Buffer.from(`Received: by x; Mon, 7 Dec 2026 10:00:00 +0000\r\n${headers.join('\r\n')}\r\n\r\n${body}`, 'latin1');
    const s = new MessageSigner(DKIM);
    for (let at = 0; at < msg.length; ) {
      const n = 1 + rand(64);
      s.update(msg.subarray(at, at + n));
      at += n;
    }
    const signed = Buffer.concat([s.finish(), msg]);
    assert.deepEqual(await verify(signed), ['pass', 'pass'], `message ${i}:\n${msg.toString('latin1')}`);
  }
});

test('keys for a domain: the exact domain first, else the closest *.parent line', () => {
  const wild = key('example.org', 'w', 'ed25519', 0, true);
  const deeper = key('mail.example.org', 'w2', 'ed25519', 0, true);
  const exact = key('news.example.org', 'n', 'ed25519');
  const dkim: DkimConfig = { file: null, keys: [wild, deeper, exact] };
  assert.deepEqual(signingKeysFor('news.example.org', dkim).map((k) => k.selector), ['n']);
  assert.deepEqual(signingKeysFor('lists.example.org', dkim).map((k) => k.selector), ['w']);
  assert.deepEqual(signingKeysFor('a.mail.example.org', dkim).map((k) => k.selector), ['w2']);
  assert.deepEqual(signingKeysFor('example.org', dkim).map((k) => k.selector), [], 'a *. line does not cover the domain itself');
  assert.deepEqual(signingKeysFor('EXAMPLE.com.', DKIM).map((k) => k.selector), ['rsa1', 'ed1']);
});

test('the TXT record: the value in strings of at most 255 bytes; Ed25519 as its 32 raw bytes (RFC 8463)', () => {
  const value = dnsRecordValue(RSA.publicKey);
  assert.match(value, /^v=DKIM1; k=rsa; p=MIIBIjAN/);
  const record = txtRecord('rsa1', 'example.com', value);
  const strings = [...record.matchAll(/"([^"]*)"/g)].map((m) => m[1]!);
  assert.ok(record.startsWith('rsa1._domainkey.example.com. IN TXT "v=DKIM1; k=rsa; p='));
  assert.ok(strings.length === 2 && strings.every((s) => s.length <= 255));
  assert.equal(strings.join(''), value);
  const ed = dnsRecordValue(ED.publicKey);
  assert.match(ed, /^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/);
  assert.equal(Buffer.from(ed.split('p=')[1]!, 'base64').length, 32);
});
