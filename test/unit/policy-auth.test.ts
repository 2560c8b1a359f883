// The pure parts of message authentication: settings from option.dat and channel keywords (and
// option.dat's file:line checks of them), the node-style resolver over the cached lookup, the
// Authentication-Results header and the removal of forged ones, and the end-of-DATA decision.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join, relative } from 'node:path';
import { authSettings } from '../../src/policy/auth-settings.js';
import { authResultsHeader, authservIdOf, boundedRow, removeOwnAuthResults } from '../../src/policy/auth-results.js';
import { messageDecision, spfDecision, type DmarcOutcome, type SpfOutcome } from '../../src/policy/auth-decision.js';
import { nodeStyleResolver } from '../../src/dns/node-resolver.js';
import type { RrsetResult } from '../../src/dns/lookup.js';
import { parseOptionDat } from '../../src/config/option-dat.js';
import type { Diagnostic } from '../../src/config/types.js';
import { makeInstance, type TestInstance } from '../helpers/instance.js';

const instances: TestInstance[] = [];
after(() => {
  for (const inst of instances) inst.remove();
});

const settings = (raw: Record<string, string> = {}, keywords: Record<string, string[]> = {}) => authSettings({ raw, localHost: 'mx.example.net' }, { keywords });

test('settings: defaults, Messaging Server\'s SPF options and keywords, tsubame\'s', () => {
  const d = settings();
  assert.deepEqual(
    [d.authservId, d.verify, d.spf.stage, d.spf.helo, d.spf.maxDnsQueries, d.spf.maxVoidQueries, d.spf.maxTimeMs, d.spf.onFail, d.spf.onSoftfail, d.spf.onPermerror, d.spf.onTemperror],
    ['mx.example.net', true, 'mail', false, 10, 2, 45_000, 'refuse', 'accept', 'accept', 'accept'],
  );
  assert.deepEqual([d.dkimMaxSignatures, d.dkimMinKeyBits, d.maxTimeMs, d.dmarcReject, d.dmarcQuarantine, d.arcTrustedSealers], [10, 1024, 20_000, 'refuse', 'accept', []]);
  const s = settings(
    { SPF_MAX_DNS_QUERIES: '5', SPF_SMTP_STATUS_FAIL: '4', SPF_SMTP_STATUS_SOFTFAIL: 'h', DKIM_MAX_SIGNATURES: '3', DMARC_REJECT_ACTION: 'HOLD', ARC_TRUSTED_SEALERS: 'Lists.Example, fwd.example.' },
    { spfrcptto: [], spfhelo: [], noauthverify: [] },
  );
  assert.deepEqual([s.spf.stage, s.spf.helo, s.verify, s.spf.maxDnsQueries, s.spf.onFail, s.spf.onSoftfail, s.dkimMaxSignatures, s.dmarcReject], ['rcpt', true, false, 5, 'tempfail', 'hold', 3, 'hold']);
  assert.deepEqual(s.arcTrustedSealers, ['lists.example', 'fwd.example']);
  assert.equal(settings({}, { spfnone: [], spfhelo: [] }).spf.helo, false, 'spfnone turns everything SPF off');
  assert.equal(settings({}, { spfdata: [] }).spf.stage, 'data');
  assert.equal(settings({ SPF_MAX_DNS_QUERIES: 'lots' }).spf.maxDnsQueries, 10, 'a bad value is its default (cnbuild reports it)');
});

test('option.dat reports bad authentication values with file:line', () => {
  const inst = makeInstance({
    files: {
      'etc/option.dat': ['SPF_MAX_DNS_QUERIES=0', 'SPF_SMTP_STATUS_FAIL=3', 'SPF_MAX_TIME=-1', 'DMARC_REJECT_ACTION=bounce', 'ARC_TRUSTED_SEALERS=ok.example,bad_domain!', 'SPF_MAX_RECURSION=10', 'DKIM_MAX_SIGNATURES=20', ''].join('\n'),
    },
  });
  instances.push(inst);
  const diagnostics: Diagnostic[] = [];
  parseOptionDat(join(inst.root, 'etc/option.dat'), diagnostics);
  assert.deepEqual(
    diagnostics.map((x) => `${relative(inst.root, x.file)}:${x.line}: ${x.severity}: ${x.message}`),
    [
      'etc/option.dat:1: error: SPF_MAX_DNS_QUERIES must be an integer from 1 to 100, found "0"',
      'etc/option.dat:3: error: SPF_MAX_TIME must be a number of seconds above 0 and at most 600, found "-1"',
      'etc/option.dat:2: error: SPF_SMTP_STATUS_FAIL must be one of 2, 4, 5, H, found "3"',
      'etc/option.dat:4: error: DMARC_REJECT_ACTION must be one of refuse, hold, accept, found "bounce"',
      'etc/option.dat:5: error: ARC_TRUSTED_SEALERS: "bad_domain!" is not a domain name',
    ],
  );
});

test('the node-style resolver: node\'s answer shapes and error codes; past the deadline or the budget every question fails at once', async () => {
  const table: Record<string, RrsetResult> = {
    'TXT a.example': { status: 'ok', records: [{ type: 'TXT', name: 'a.example', ttl: 60, data: [Buffer.from('v=spf1 '), Buffer.from('-all')] } as never] },
    'MX a.example': { status: 'ok', records: [{ type: 'MX', name: 'a.example', ttl: 60, data: { exchange: 'mx.a.example.', preference: 5 } } as never] },
    'A gone.example': { status: 'nxdomain' },
    'A empty.example': { status: 'nodata' },
    'A slow.example': { status: 'temporary', reason: 'timeout' },
    'A broken.example': { status: 'temporary', reason: 'SERVFAIL' },
  };
  let now = 1000;
  const source = { rrset: async (name: string, type: string) => table[`${type} ${name}`] ?? { status: 'nxdomain' as const } };
  const r = nodeStyleResolver(source, { deadline: 2000, maxQueries: 7 }, () => now);
  assert.deepEqual(await r('a.example', 'TXT'), [['v=spf1 ', '-all']]);
  assert.deepEqual(await r('a.example.', 'MX'), [{ exchange: 'mx.a.example', priority: 5 }]);
  const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code: string }) => e.code);
  assert.deepEqual(await Promise.all(['gone', 'empty', 'slow', 'broken'].map((n) => code(r(`${n}.example`, 'A')))), ['ENOTFOUND', 'ENODATA', 'ETIMEOUT', 'ESERVFAIL']);
  assert.equal(await code(r('a.example', 'SRV')), 'ENOTIMP');
  assert.equal(r.queries, 6);
  assert.equal(await code(r('a.example', 'TXT')), 'ok');
  assert.equal(await code(r('a.example', 'TXT')), 'ETIMEOUT', 'the eighth question is over the budget');
  const late = nodeStyleResolver(source, { deadline: 2000, maxQueries: 100 }, () => now);
  now = 2001;
  assert.equal(await code(late('a.example', 'TXT')), 'ETIMEOUT');
  assert.equal(late.exhausted, true);
  // A question that takes longer than the time left is cut at the deadline.
  const hanging = nodeStyleResolver({ rrset: () => new Promise<RrsetResult>(() => {}) }, { deadline: Date.now() + 50, maxQueries: 10 });
  assert.equal(await code(hanging('x.example', 'A')), 'ETIMEOUT');
});

test('the header: authserv-id, one row a line, overlong rows cut to method=result; finding the authserv-id of a field', () => {
  assert.equal(authResultsHeader('mx.example.net', ['spf=pass smtp.mailfrom=a@b.example', 'dkim=none']), 'Authentication-Results: mx.example.net;\r\n\tspf=pass smtp.mailfrom=a@b.example;\r\n\tdkim=none');
  assert.equal(authResultsHeader('mx.example.net', []), 'Authentication-Results: mx.example.net; none');
  assert.equal(boundedRow(`dkim=fail (${'x'.repeat(2000)})`), 'dkim=fail (details left out: too long)');
  assert.equal(boundedRow('dmarc=fail\r\n (p=REJECT)\u00e9'), 'dmarc=fail (p=REJECT)?');
  assert.equal(authservIdOf('  (a (nested) comment) mx.example.net 1; spf=pass'), 'mx.example.net');
  assert.equal(authservIdOf('"quoted \\"id\\""; none'), 'quoted "id"');
  assert.equal(authservIdOf('; none'), null);
});

test('removing forged headers: folded fields, LF-only line ends, a bare block without the empty line; nothing else touched', () => {
  const block = Buffer.from('X-A: 1\nAuthentication-Results: mx.example.net.;\n\tdkim=pass\nX-B: 2\n');
  const { headers, removed } = removeOwnAuthResults(block, 'mx.example.net');
  assert.deepEqual([headers.toString(), removed], ['X-A: 1\nX-B: 2\n', 1]);
  const untouched = Buffer.from('Authentication-Results: mx.example.net.evil; spf=pass\r\nARC-Authentication-Results: i=1; mx.example.net; spf=pass\r\n\r\n');
  const kept = removeOwnAuthResults(untouched, 'mx.example.net');
  assert.equal(kept.removed, 0);
  assert.equal(kept.headers, untouched, 'the same buffer when nothing is removed');
  const latin = Buffer.from([...Buffer.from('Subject: '), 0xe9, 0xff, ...Buffer.from('\r\nAuthentication-Results: mx.example.net; x\r\n\r\n')]);
  assert.deepEqual([...removeOwnAuthResults(latin, 'mx.example.net').headers], [...Buffer.from('Subject: '), 0xe9, 0xff, ...Buffer.from('\r\n\r\n')], 'bytes kept as they are');
});

const spf = (result: SpfOutcome['result']): SpfOutcome => ({ identity: 'mailfrom', result, domain: 'a.example', ip: '192.0.2.1', comment: null, record: null, lookups: 1, voidLookups: 0, info: `spf=${result}` });
const dmarc = (result: string, policy: DmarcOutcome['policy'], pct = 100): DmarcOutcome => ({ result, domain: 'a.example', policy, pct, info: `dmarc=${result}` });

test('the end-of-DATA decision: DMARC policy and pct, quarantine, ARC override, SPF hold and spfdata, refusal before hold', () => {
  const s = settings();
  const none = { spf: null, heloSpf: null, dkim: [], arc: null };
  assert.equal(messageDecision({ ...none, dmarc: dmarc('fail', 'reject') }, s).reply, '550 5.7.1 message refused: a.example publishes a DMARC policy of reject and the message fails it');
  assert.equal(messageDecision({ ...none, dmarc: dmarc('fail', 'reject', 50) }, s).action, 'accept', 'pct<100: quarantine, accepted by default');
  assert.equal(messageDecision({ ...none, dmarc: dmarc('fail', 'reject', 50) }, settings({ DMARC_QUARANTINE_ACTION: 'hold' })).action, 'hold');
  assert.equal(messageDecision({ ...none, dmarc: dmarc('fail', 'quarantine') }, settings({ DMARC_QUARANTINE_ACTION: 'refuse' })).smtpCode, 550);
  assert.equal(messageDecision({ ...none, dmarc: dmarc('fail', 'none') }, s).action, 'accept');
  assert.equal(messageDecision({ ...none, dmarc: dmarc('temperror', null) }, s).reason, 'DMARC temperror for a.example: accepted');
  const arc = { result: 'pass', instance: 2, sealer: 'lists.example', comment: null, info: 'arc=pass' };
  assert.equal(messageDecision({ ...none, arc, dmarc: dmarc('fail', 'reject') }, settings({ ARC_TRUSTED_SEALERS: 'lists.example' })).action, 'accept');
  assert.equal(messageDecision({ ...none, arc: { ...arc, result: 'fail' }, dmarc: dmarc('fail', 'reject') }, settings({ ARC_TRUSTED_SEALERS: 'lists.example' })).action, 'refuse');
  // SPF: a hold is applied here whatever the stage keyword; a refusal only with spfdata.
  assert.equal(messageDecision({ ...none, spf: spf('fail'), dmarc: null }, s).action, 'accept', 'spfmailfrom: refused at MAIL, not again here');
  assert.equal(messageDecision({ ...none, spf: spf('softfail'), dmarc: null }, settings({ SPF_SMTP_STATUS_SOFTFAIL: 'H' })).action, 'hold');
  assert.equal(spfDecision(spf('softfail'), settings({ SPF_SMTP_STATUS_SOFTFAIL: 'H' }).spf, 'mail').action, 'accept', 'no message to hold at MAIL');
  const both = messageDecision({ ...none, spf: spf('softfail'), dmarc: dmarc('fail', 'reject') }, settings({ SPF_SMTP_STATUS_SOFTFAIL: 'H' }));
  assert.equal(both.action, 'refuse', 'a refusal wins over a hold');
  assert.equal(messageDecision({ ...none, spf: spf('temperror'), dmarc: null }, settings({ SPF_SMTP_STATUS_TEMPERROR: '4' }, { spfdata: [] })).reply?.slice(0, 10), '451 4.7.24');
});

test('settings: the channel\'s dmarc*/spffail* keyword wins over option.dat; absent, option.dat applies; the log names the keyword', () => {
  const raw = { DMARC_REJECT_ACTION: 'refuse', SPF_SMTP_STATUS_FAIL: '5' };
  assert.deepEqual([settings(raw).dmarcReject, settings(raw).spf.onFail], ['refuse', 'refuse']);
  for (const [keyword, action] of [['dmarcrefuse', 'refuse'], ['dmarchold', 'hold'], ['dmarcaccept', 'accept']] as const) {
    assert.equal(settings({ DMARC_REJECT_ACTION: 'hold' }, { [keyword]: [] }).dmarcReject, action, keyword);
  }
  for (const [keyword, action] of [['spffail2', 'accept'], ['spffail4', 'tempfail'], ['spffail5', 'refuse'], ['spffailh', 'hold']] as const) {
    assert.equal(settings({ SPF_SMTP_STATUS_FAIL: '4' }, { [keyword]: [] }).spf.onFail, action, keyword);
  }
  assert.equal(settings({ SPF_SMTP_STATUS_SOFTFAIL: 'H' }, { spffail2: [] }).spf.onSoftfail, 'hold', 'spffail* is SPF fail only');
  const none = { spf: null, heloSpf: null, dkim: [], arc: null };
  const forged = { ...none, dmarc: dmarc('fail', 'reject') };
  assert.equal(messageDecision(forged, settings(raw, { dmarchold: [] })).reason, 'DMARC fail for a.example (p=reject): held (dmarchold)');
  assert.equal(messageDecision(forged, settings({ DMARC_REJECT_ACTION: 'hold' }, { dmarcrefuse: [] })).reply?.slice(0, 9), '550 5.7.1');
  assert.equal(messageDecision(forged, settings({ DMARC_REJECT_ACTION: 'hold' })).reason, 'DMARC fail for a.example (p=reject): held', 'option.dat: no keyword named');
  assert.equal(messageDecision({ ...none, dmarc: dmarc('fail', 'quarantine') }, settings({}, { dmarchold: [] })).action, 'accept', 'p=quarantine keeps DMARC_QUARANTINE_ACTION');
  assert.equal(messageDecision({ ...none, spf: spf('fail'), dmarc: null }, settings(raw, { spffailh: [] })).reason, 'SPF fail for MAIL FROM a.example from 192.0.2.1: held (spffailh)');
});
