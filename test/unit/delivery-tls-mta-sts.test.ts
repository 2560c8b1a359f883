// MTA-STS's pure parts (RFC 8461): the TXT record, the policy file, MX patterns, the cache step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mxAllowed, mxPatternMatches, parseStsPolicy, parseStsRecord, stsNextStep, type CachedStsPolicy } from '../../src/delivery/tls/mta-sts.js';

test('TXT record: v=STSv1 with an id; other records are not MTA-STS; two are no policy', () => {
  assert.deepEqual(parseStsRecord(['v=STSv1; id=20160831085700Z;']), { id: '20160831085700Z' });
  assert.deepEqual(parseStsRecord(['v=spf1 -all', 'v=STSv1;id=abc123']), { id: 'abc123' });
  assert.deepEqual(parseStsRecord(['v=STSv1; id=a; ext=x']), { id: 'a' });
  assert.match((parseStsRecord(['v=STSv1; id=1', 'v=STSv1; id=2']) as { error: string }).error, /2 v=STSv1 records/);
  assert.match((parseStsRecord(['v=STSv1;']) as { error: string }).error, /no id/);
  assert.match((parseStsRecord(['v=STSv1; id=has-dash']) as { error: string }).error, /bad id/);
  assert.match((parseStsRecord(['v=STSv1; id=' + 'x'.repeat(33)]) as { error: string }).error, /bad id/);
  assert.match((parseStsRecord(['v=STSv10; id=1']) as { error: string }).error, /no v=STSv1/);
  assert.match((parseStsRecord([]) as { error: string }).error, /no v=STSv1/);
});

test('policy file: fields, CRLF or LF, first of a repeated field, mx lines collected, unknown fields ignored', () => {
  const p = parseStsPolicy('version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: MX.Example.com.\r\nmax_age: 604800\r\nmode: none\r\nfuture: x\r\n');
  assert.ok(!('error' in p));
  assert.equal(p.mode, 'enforce');
  assert.deepEqual(p.mx, ['mail.example.com', '*.example.net', 'mx.example.com']);
  assert.equal(p.maxAge, 604800);
  assert.equal(p.lines.length, 8);
  const lf = parseStsPolicy('version: STSv1\nmode: testing\nmx: mx.a.test\nmax_age: 86400');
  assert.ok(!('error' in lf) && lf.mode === 'testing');
  const none = parseStsPolicy('version: STSv1\nmode: none\nmax_age: 86400\n');
  assert.ok(!('error' in none) && none.mode === 'none' && none.mx.length === 0);
  assert.equal((parseStsPolicy('version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 99999999\n') as { maxAge: number }).maxAge, 31557600, 'max_age capped at a year');
});

test('policy file: what is wrong is said', () => {
  const err = (t: string) => (parseStsPolicy(t) as { error?: string }).error ?? 'no error';
  assert.match(err('mode: enforce\nmx: a.test\nmax_age: 1\n'), /version is missing/);
  assert.match(err('version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n'), /version is "STSv2"/);
  assert.match(err('version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n'), /mode is "strict"/);
  assert.match(err('version: STSv1\nmode: enforce\nmx: a.test\n'), /max_age is missing/);
  assert.match(err('version: STSv1\nmode: enforce\nmx: a.test\nmax_age: soon\n'), /max_age is "soon"/);
  assert.match(err('version: STSv1\nmode: enforce\nmax_age: 1\n'), /without an mx line/);
  assert.match(err('version: STSv1\nmode: enforce\nmx: a..test\nmax_age: 1\n'), /bad mx pattern/);
  assert.match(err('<html>not a policy</html>'), /malformed line/);
});

test('MX patterns: exact, or a wildcard standing for exactly one leftmost label (RFC 8461 §4.1)', () => {
  assert.equal(mxPatternMatches('mail.example.com', 'MAIL.example.com.'), true);
  assert.equal(mxPatternMatches('mail.example.com', 'mx.example.com'), false);
  assert.equal(mxPatternMatches('*.example.com', 'mx1.example.com'), true);
  assert.equal(mxPatternMatches('*.example.com', 'example.com'), false);
  assert.equal(mxPatternMatches('*.example.com', 'a.b.example.com'), false, 'one label only (mailauth matches this)');
  assert.equal(mxPatternMatches('*.example.com', 'xexample.com'), false);
  assert.equal(mxAllowed({ mx: ['a.test', '*.b.test'] }, 'mx.b.test'), true);
  assert.equal(mxAllowed({ mx: ['a.test', '*.b.test'] }, 'c.test'), false);
});

test('cache step: a valid cached policy survives a missing or failed TXT lookup; a new id fetches; expiry fetches', () => {
  const now = 1_000_000;
  const cached: CachedStsPolicy = { domain: 'a.test', id: 'one', policy: { mode: 'enforce', mx: ['mx.a.test'], maxAge: 100, lines: [] }, fetchedAt: now - 50_000, expiresAt: now + 50_000 };
  const expired = { ...cached, expiresAt: now - 1 };
  assert.deepEqual(stsNextStep(null, { kind: 'none' }, now), { action: 'none' });
  assert.deepEqual(stsNextStep(null, { kind: 'failed', reason: 'timeout' }, now), { action: 'none' });
  assert.deepEqual(stsNextStep(null, { kind: 'id', id: 'one' }, now), { action: 'fetch', id: 'one' });
  assert.deepEqual(stsNextStep(cached, { kind: 'none' }, now), { action: 'use-cached' }, 'an attacker stripping the TXT record does not remove the policy');
  assert.deepEqual(stsNextStep(cached, { kind: 'failed', reason: 'SERVFAIL' }, now), { action: 'use-cached' });
  assert.deepEqual(stsNextStep(cached, { kind: 'id', id: 'one' }, now), { action: 'renew-cached' });
  assert.deepEqual(stsNextStep(cached, { kind: 'id', id: 'two' }, now), { action: 'fetch', id: 'two' });
  assert.deepEqual(stsNextStep(expired, { kind: 'id', id: 'one' }, now), { action: 'fetch', id: 'one' }, 'an expired policy is fetched again, not renewed');
  assert.deepEqual(stsNextStep(expired, { kind: 'none' }, now), { action: 'none' });
});
