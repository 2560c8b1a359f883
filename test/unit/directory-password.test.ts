// Password hashes: the stored format (strict parsing: tampered, truncated, foreign and unknown
// hashes are errors that quote nothing secret), scrypt hashing and constant-time verification,
// and the gate that keeps hashes from taking every thread of libuv's pool.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_SCRYPT_PARAMS, formatPasswordHash, parsePasswordHash, type ScryptHash } from '../../src/config/hash-format.js';
import { MAX_PASSWORD_BYTES, hashPassword, passwordProblem, verifyPassword } from '../../src/directory/password-hash.js';
import { KdfGate, defaultKdfConcurrency } from '../../src/directory/kdf-gate.js';

/** Cheap parameters for tests that check behaviour, not cost. */
const CHEAP = { ln: 10, r: 8, p: 1 };

function parsed(text: string): ScryptHash {
  const r = parsePasswordHash(text);
  assert.ok(r.ok, r.ok ? '' : r.error);
  return r.hash;
}

test('hashPassword writes $scrypt$ln=15,r=8,p=1$salt$hash by default; it verifies the password and no other', async () => {
  const text = await hashPassword('correct horse');
  assert.match(text, /^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
  const h = parsed(text);
  assert.deepEqual([h.ln, h.r, h.p, h.salt.length, h.hash.length], [15, 8, 1, 16, 32]);
  assert.equal(formatPasswordHash(h), text);
  assert.equal(await verifyPassword('correct horse', h), true);
  assert.equal(await verifyPassword('correct horsE', h), false);
  assert.equal(await verifyPassword('', h), false);
  // A fresh salt each time.
  assert.notEqual(await hashPassword('correct horse', CHEAP), await hashPassword('correct horse', CHEAP));
  assert.deepEqual(DEFAULT_SCRYPT_PARAMS, { ln: 15, r: 8, p: 1 });
});

test('a tampered hash (one character of the key changed) parses but matches nothing', async () => {
  const text = await hashPassword('secret', CHEAP);
  const key = text.slice(text.lastIndexOf('$') + 1);
  const flipped = key[5] === 'A' ? 'B' : 'A';
  const tampered = `${text.slice(0, text.lastIndexOf('$') + 1)}${key.slice(0, 5)}${flipped}${key.slice(6)}`;
  assert.equal(await verifyPassword('secret', parsed(tampered)), false);
  // Another salt with the same key: no match either.
  const salt = text.split('$')[3]!;
  const otherSalt = text.replace(`$${salt}$`, `$${salt[0] === 'A' ? 'B' : 'A'}${salt.slice(1)}$`);
  assert.equal(await verifyPassword('secret', parsed(otherSalt)), false);
  assert.equal(await verifyPassword('secret', parsed(text)), true);
});

test('malformed, truncated, foreign and unknown-algorithm hashes are errors, never a crash; the error quotes no salt or key', () => {
  const good = '$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$' + Buffer.alloc(32, 7).toString('base64').replace(/=+$/, '');
  assert.equal(parsePasswordHash(good).ok, true);
  const cases: Array<[string, RegExp]> = [
    ['', /not a password hash/],
    ['hunter2', /not a password hash/],
    ['{SSHA}abcdef', /not a password hash/],
    ['$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA', /algorithm "argon2id" is not supported/],
    ['$6$rounds=5000$salt$hash', /algorithm "6" is not supported/],
    ['$SCRYPT$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA', /algorithm "SCRYPT" is not supported/],
    [good.slice(0, good.lastIndexOf('$')), /3 \$-separated fields, not 4/],
    [good + '$extra', /5 \$-separated fields, not 4/],
    [good.replace('ln=15,r=8,p=1', 'N=32768,r=8,p=1'), /cost "N=32768,r=8,p=1" is not ln=…,r=…,p=…/],
    [good.replace('ln=15,r=8,p=1', 'r=8,ln=15,p=1'), /is not ln=…,r=…,p=…/],
    [good.replace('ln=15', 'ln=9'), /ln=9 is out of range \(10–20\)/],
    [good.replace('ln=15', 'ln=21'), /ln=21 is out of range/],
    [good.replace('r=8', 'r=0'), /r=0 is out of range/],
    [good.replace('p=1', 'p=17'), /p=17 is out of range/],
    [good.replace('ln=15,r=8', 'ln=20,r=8'), /needs 1024 MiB, more than the 256 MiB allowed/],
    [good.replace('c2FsdHNhbHRzYWx0c2FsdA', 'c2Fsd!Nh'), /salt is not base64/],
    [good.replace('c2FsdHNhbHRzYWx0c2FsdA', 'c2FsdHNhbHRzYWx0c2FsdA=='), /salt is not base64/],
    [good.replace('c2FsdHNhbHRzYWx0c2FsdA', 'c2FsdHNhbHRzYWx0c2FsdB'), /salt is not base64/], // non-canonical last character
    [good.replace('c2FsdHNhbHRzYWx0c2FsdA', 'c2FsdA'), /salt is 4 bytes \(8–64 expected\)/],
    [good.slice(0, -10), /hash is not base64|hash is \d+ bytes/],
    [good.slice(0, good.lastIndexOf('$') + 1) + 'aGFzaA', /hash is 4 bytes \(32 expected\)/],
    [good + ' ', /hash is not base64/],
    [good.slice(0, -3), /hash is 30 bytes \(32 expected\)/],
  ];
  for (const [text, expected] of cases) {
    const r = parsePasswordHash(text);
    assert.equal(r.ok, false, text);
    if (r.ok) continue;
    assert.match(r.error, expected, text);
    assert.doesNotMatch(r.error, /c2FsdHNh|hunter2|BwcHBwcH/, 'the error quotes a secret');
  }
});

test('passwords are compared in NFKC form; one longer than the limit never matches; NUL, line breaks and empty ones cannot be stored', async () => {
  const h = parsed(await hashPassword('ﬁle café', CHEAP)); // U+FB01, composed é
  assert.equal(await verifyPassword('file cafe\u0301', h), true); // decomposed é
  const long = 'x'.repeat(MAX_PASSWORD_BYTES);
  const hl = parsed(await hashPassword(long, CHEAP));
  assert.equal(await verifyPassword(long, hl), true);
  assert.equal(await verifyPassword(long + 'y', hl), false, 'a longer password is cut for hashing but never matches');
  // HMAC pads a short key with zeros: without the NUL check `secret\0` would match `secret`.
  const hs = parsed(await hashPassword('secret', CHEAP));
  assert.equal(await verifyPassword('secret', hs), true);
  assert.equal(await verifyPassword('secret\0', hs), false);
  assert.equal(await verifyPassword('secret\0\0\0', hs), false);
  assert.equal(passwordProblem('fine'), null);
  assert.match(passwordProblem('')!, /empty/);
  assert.match(passwordProblem('a\0b')!, /NUL or line break/);
  assert.match(passwordProblem('a\nb')!, /NUL or line break/);
  assert.match(passwordProblem('é'.repeat(600))!, /longer than 1024 bytes/);
});

test('KdfGate runs at most its concurrency at once, the rest in arrival order; a failure frees its slot', async () => {
  const gate = new KdfGate(2);
  let active = 0;
  let peak = 0;
  const order: number[] = [];
  const releases: Array<() => void> = [];
  const job = (i: number, fail = false) =>
    gate.run(async () => {
      active++;
      peak = Math.max(peak, active);
      order.push(i);
      await new Promise<void>((resolve) => releases.push(resolve));
      active--;
      if (fail) throw new Error(`job ${i} failed`);
      return i;
    });
  const all = [job(0, true), job(1), job(2), job(3), job(4)];
  assert.deepEqual([gate.running, gate.waiting], [2, 3]);
  // Release whichever are running, one at a time, until all are done.
  const settled = Promise.allSettled(all);
  let done = false;
  void settled.then(() => (done = true));
  while (!done) {
    await new Promise((r) => setImmediate(r));
    releases.shift()?.();
  }
  const results = await settled;
  assert.equal(results[0]!.status, 'rejected');
  assert.deepEqual(results.slice(1).map((r) => (r as PromiseFulfilledResult<number>).value), [1, 2, 3, 4]);
  assert.equal(peak, 2);
  assert.deepEqual(order, [0, 1, 2, 3, 4]);
  assert.deepEqual([gate.running, gate.waiting], [0, 0]);
  assert.throws(() => new KdfGate(0), RangeError);
});

test('the default gate leaves half the thread pool and half the cores free (at least one hash at a time)', () => {
  assert.equal(defaultKdfConcurrency({}, 8), 2);
  assert.equal(defaultKdfConcurrency({ UV_THREADPOOL_SIZE: '16' }, 8), 4);
  assert.equal(defaultKdfConcurrency({ UV_THREADPOOL_SIZE: '16' }, 2), 1);
  assert.equal(defaultKdfConcurrency({ UV_THREADPOOL_SIZE: '1' }, 8), 1);
  assert.equal(defaultKdfConcurrency({ UV_THREADPOOL_SIZE: 'lots' }, 64), 2);
});
