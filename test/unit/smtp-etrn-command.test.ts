// The SMTP side of ETRN without sockets: argument syntax, the reply for each job controller
// outcome, sequence and ETRN_ALLOW checks, and failures of the request.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { etrnReply, etrnResponder, parseEtrnArgument, type EtrnRequest } from '../../src/smtp-server/etrn.js';
import { parseCidr } from '../../src/common/cidr.js';
import type { FlushReply } from '../../src/job-controller/protocol.js';
import { EtrnRateLimiter } from '../../src/job-controller/etrn-rate.js';

test('argument syntax', () => {
  const ok = (line: string) => {
    const r = parseEtrnArgument(line);
    assert.ok(r.ok, line);
    return r.ok ? r.target : '';
  };
  assert.equal(ok('ETRN example.com'), 'example.com');
  assert.equal(ok('ETRN  Example.COM. '), 'example.com');
  assert.equal(ok('ETRN @Example.com'), '@example.com');
  assert.equal(ok('ETRN #tcp_local'), '#tcp_local');
  assert.equal(ok('ETRN [192.0.2.1]'), '[192.0.2.1]');
  for (const line of ['ETRN', 'ETRN a b', 'ETRN a..b', 'ETRN #', 'ETRN #a/b', 'ETRN @', 'ETRN @@a.test', 'ETRN ex ample', `ETRN ${'x'.repeat(256)}`]) {
    const r = parseEtrnArgument(line);
    assert.ok(!r.ok && r.reply.code === 501, line);
  }
});

test('replies for the outcomes (RFC 1985)', () => {
  const flush = (code: number, count = 0): FlushReply => ({ ok: true, code, count, text: '' });
  assert.equal(etrnReply('a.test', flush(250, 2)).code, 250);
  assert.equal(etrnReply('a.test', flush(251)).code, 251);
  assert.equal(etrnReply('a.test', flush(252)).code, 252);
  assert.match(etrnReply('a.test', flush(253, 4)).text, /^OK, 4 pending messages for node a\.test started$/);
  assert.equal(etrnReply('a.test', null).code, 458);
  assert.equal(etrnReply('a.test', { ok: false, code: 500, count: 0, text: 'x' }).code, 458);
  assert.equal(etrnReply('a.test', { ok: false, code: 459, count: 0, text: 'no' }).code, 459);
});

test('ETRN abuse: a domain outside the fast-flush list gets Postfix\'s 459 4.3.0 <domain>: service unavailable; too many gets 458', () => {
  const r = etrnReply('random.example', { ok: false, code: 459, count: 0, text: 'random.example: service unavailable (not a fast-flush destination)', reason: 'service unavailable' });
  assert.deepEqual([r.code, r.enhanced, r.text], [459, '4.3.0', '<random.example>: service unavailable']);
  const many = etrnReply('a.test', { ok: false, code: 458, count: 0, text: 'too many', reason: 'too many ETRN requests, try again later' });
  assert.deepEqual([many.code, many.enhanced], [458, '4.7.0']);
  assert.match(many.text, /too many ETRN requests/);
});

test('ETRN abuse: #channel only from ETRN_CHANNEL_ALLOW, and the job controller is told the client', async () => {
  const asked: Array<[string, string]> = [];
  const respond = etrnResponder({
    allow: [],
    channelAllow: [parseCidr('127.0.0.0/8')!],
    requestFlush: async (t, client) => {
      asked.push([t, client]);
      return { ok: true, code: 253, count: 1, text: '' };
    },
  });
  const outside = await respond(req('ETRN #tcp_local', { remoteAddress: '192.0.2.7' }));
  assert.equal(outside.code, 459);
  assert.deepEqual(asked, [], 'never reaches the job controller');
  assert.equal((await respond(req('ETRN customer.test', { remoteAddress: '192.0.2.7' }))).code, 253, 'a domain is fine');
  assert.equal((await respond(req('ETRN #tcp_local', { remoteAddress: '127.0.0.5' }))).code, 253);
  assert.deepEqual(asked, [['customer.test', '192.0.2.7'], ['#tcp_local', '127.0.0.5']]);
});

test('ETRN abuse: the rate limit per client address (ETRN_RATE_LIMIT per minute; 0 = none)', () => {
  const limiter = new EtrnRateLimiter(3);
  const at = (s: number) => s * 1000;
  assert.deepEqual([0, 1, 2, 3].map((s) => limiter.allow('192.0.2.1', at(s))), [true, true, true, false]);
  assert.equal(limiter.allow('192.0.2.2', at(3)), true, 'another client has its own count');
  assert.equal(limiter.allow('192.0.2.1', at(59)), false, 'refused ones do not open the window again');
  assert.equal(limiter.allow('192.0.2.1', at(60)), true, 'a minute after the first');
  limiter.configure(0);
  assert.ok(Array.from({ length: 100 }, () => limiter.allow('192.0.2.1', at(61))).every(Boolean));
});

const req = (line: string, more: Partial<EtrnRequest> = {}): EtrnRequest => ({ line, remoteAddress: '127.0.10.2', greeted: true, inTransaction: false, ...more });

test('responder: sequence, syntax and ETRN_ALLOW are checked before the job controller is asked', async () => {
  const asked: string[] = [];
  const respond = etrnResponder({
    allow: [parseCidr('127.0.10.0/30')!],
    channelAllow: [],
    requestFlush: async (t) => {
      asked.push(t);
      return { ok: true, code: 253, count: 1, text: '' };
    },
  });
  assert.equal((await respond(req('ETRN a.test', { greeted: false }))).code, 503);
  assert.equal((await respond(req('ETRN a.test', { inTransaction: true }))).code, 503);
  assert.equal((await respond(req('ETRN'))).code, 501);
  assert.equal((await respond(req('ETRN a.test', { remoteAddress: '127.0.10.9' }))).code, 459);
  assert.equal((await respond(req('ETRN a.test', { remoteAddress: '::ffff:127.0.10.9' }))).code, 459);
  assert.deepEqual(asked, []);
  assert.equal((await respond(req('ETRN a.test', { remoteAddress: '::ffff:127.0.10.1' }))).code, 253);
  assert.deepEqual(asked, ['a.test']);
});

test('responder: anyone when ETRN_ALLOW is empty; a failed or missing job controller is 458', async () => {
  const anyone = etrnResponder({ allow: [], channelAllow: [], requestFlush: async () => ({ ok: true, code: 251, count: 0, text: '' }) });
  assert.equal((await anyone(req('ETRN a.test', { remoteAddress: '192.0.2.77' }))).code, 251);
  const down = etrnResponder({ allow: [], channelAllow: [], requestFlush: async () => null });
  assert.equal((await down(req('ETRN a.test'))).code, 458);
  const broken = etrnResponder({ allow: [], channelAllow: [], requestFlush: async () => { throw new Error('no answer within 5000 ms'); } });
  assert.equal((await broken(req('ETRN a.test'))).code, 458);
});
