// The outbound TLS decision (src/delivery/tls/decision.ts) over real certificates: musttls,
// MTA-STS enforce/testing, DANE usable/unusable/failed, opportunistic and notls; reasons,
// mail.log trust words and TLS-RPT results.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { decideTls, type TlsDecisionInput } from '../../src/delivery/tls/decision.js';
import type { TlsFacts } from '../../src/delivery/tls/facts.js';
import type { StsPolicy } from '../../src/delivery/tls/mta-sts.js';
import type { TlsaRecord } from '../../src/delivery/tls/dane.js';
import { makeTestCa } from '../helpers/test-ca.js';

const ca = makeTestCa();
after(() => ca.remove());
const good = ca.issue(['mx.a.test']);

function facts(cert: Buffer, trusted: boolean, error: string | null = trusted ? null : 'SELF_SIGNED_CERT_IN_CHAIN'): TlsFacts {
  return { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', chain: [new X509Certificate(cert).raw], chainTrusted: trusted, chainError: error };
}
const spki311 = (cert: Buffer): TlsaRecord => ({ usage: 3, selector: 1, matchingType: 1, data: createHash('sha256').update(new X509Certificate(cert).publicKey.export({ type: 'spki', format: 'der' })).digest() });
const policy = (mode: StsPolicy['mode'], mx = ['mx.a.test']): StsPolicy => ({ mode, mx, maxAge: 86400, lines: ['version: STSv1', `mode: ${mode}`, ...mx.map((m) => `mx: ${m}`), 'max_age: 86400'] });
const base: TlsDecisionInput = { channelTls: 'maytls', domain: 'a.test', mxHost: 'mx.a.test', hostLabel: 'mx.a.test[127.0.0.1]', sts: null, tlsa: null, tls: facts(good.cert, true) };
const decide = (over: Partial<TlsDecisionInput>) => decideTls({ ...base, ...over });

test('opportunistic (maytls, no policy): delivers in any case, with the trust word in the tls token', () => {
  assert.deepEqual([decide({}).action, decide({}).tls, decide({}).policy], ['deliver', 'TLSv1.3/TLS_AES_256_GCM_SHA384/Verified', 'opportunistic']);
  assert.equal(decide({ mxHost: 'other.a.test' }).tls, 'TLSv1.3/TLS_AES_256_GCM_SHA384/Trusted', 'a trusted chain for another name');
  assert.equal(decide({ tls: facts(good.cert, false) }).tls, 'TLSv1.3/TLS_AES_256_GCM_SHA384/Untrusted');
  const clear = decide({ tls: null });
  assert.deepEqual([clear.action, clear.tls, clear.trust, clear.reports], ['deliver', null, null, []]);
});

test('musttls: TLS and a certificate valid for the MX host name, or defer with the reason', () => {
  const ok = decide({ channelTls: 'musttls' });
  assert.deepEqual([ok.action, ok.policy, ok.trust], ['deliver', 'musttls', 'Verified']);
  const name = decide({ channelTls: 'musttls', mxHost: 'mx.b.test' });
  assert.equal(name.action, 'defer');
  assert.match(name.status ?? '', /^451 4\.7\.5 TLS is required with a verified certificate \(musttls\), but at mx\.a\.test\[127\.0\.0\.1\] the certificate is not for mx\.b\.test$/);
  const untrusted = decide({ channelTls: 'musttls', tls: facts(good.cert, false) });
  assert.match(untrusted.status ?? '', /^451 4\.7\.5 .*the certificate is not trusted \(SELF_SIGNED_CERT_IN_CHAIN\)/);
  assert.equal(untrusted.tls, 'TLSv1.3/TLS_AES_256_GCM_SHA384/Untrusted', 'the token says what the session was');
  assert.match(decide({ channelTls: 'musttls', tls: null }).status ?? '', /^451 4\.7\.4 TLS is required, but was not offered by mx\.a\.test\[127\.0\.0\.1\]/);
});

test('notls: no TLS policy applies, not even MTA-STS enforce or DANE', () => {
  const d = decide({ channelTls: 'notls', tls: null, sts: policy('enforce'), tlsa: { state: 'secure', records: [spki311(good.cert)] } });
  assert.deepEqual([d.action, d.policy, d.reports], ['deliver', 'notls', []]);
});

test('MTA-STS enforce: MX host in the policy, TLS, a valid certificate for the host; each failure defers with its TLS-RPT type', () => {
  const ok = decide({ sts: policy('enforce') });
  assert.deepEqual([ok.action, ok.policy, ok.tls], ['deliver', 'mta-sts', 'TLSv1.3/TLS_AES_256_GCM_SHA384/Verified']);
  assert.deepEqual(ok.reports.map((r) => [r.policyType, r.policyDomain, r.result]), [['sts', 'a.test', 'success']]);
  const cases: Array<[Partial<TlsDecisionInput>, RegExp, string]> = [
    [{ sts: policy('enforce', ['*.b.test']) }, /^451 4\.7\.5 MTA-STS policy of a\.test \(enforce\): MX host mx\.a\.test is not among \*\.b\.test: not delivering to mx\.a\.test\[127\.0\.0\.1\]$/, 'validation-failure'],
    [{ sts: policy('enforce'), tls: null }, /^451 4\.7\.4 MTA-STS policy of a\.test \(enforce\): mx\.a\.test did not offer STARTTLS/, 'starttls-not-supported'],
    [{ sts: policy('enforce'), tls: facts(good.cert, false) }, /certificate of mx\.a\.test is not trusted/, 'certificate-not-trusted'],
    [{ sts: policy('enforce'), tls: facts(good.cert, false, 'CERT_HAS_EXPIRED') }, /certificate of mx\.a\.test is expired/, 'certificate-expired'],
    [{ sts: policy('enforce', ['*.a.test']), mxHost: 'mx2.a.test' }, /certificate of mx2\.a\.test is not for that name/, 'certificate-host-mismatch'],
  ];
  for (const [over, status, kind] of cases) {
    const d = decide(over);
    assert.equal(d.action, 'defer', kind);
    assert.match(d.status ?? '', status);
    assert.equal(d.reports[0]?.result, kind);
  }
});

test('MTA-STS testing delivers and reports the failure; mode none is no policy; musttls still holds under testing', () => {
  const t = decide({ sts: policy('testing'), tls: facts(good.cert, false) });
  assert.deepEqual([t.action, t.status, t.reports[0]?.result], ['deliver', null, 'certificate-not-trusted']);
  assert.match(t.warning ?? '', /^MTA-STS policy of a\.test \(testing\): the certificate of mx\.a\.test is not trusted/);
  const plain = decide({ sts: policy('testing'), tls: null });
  assert.equal(plain.action, 'deliver');
  assert.equal(plain.reports[0]?.result, 'starttls-not-supported');
  const none = decide({ sts: policy('none', []), tls: null });
  assert.deepEqual([none.action, none.policy, none.reports], ['deliver', 'opportunistic', []]);
  const must = decide({ channelTls: 'musttls', sts: policy('testing'), tls: facts(good.cert, false) });
  assert.equal(must.action, 'defer');
  assert.match(must.status ?? '', /musttls/);
});

test('DANE with usable records: a match delivers (Trusted, or Verified with a secure MX) even for an untrusted chain; no match or no TLS defers', () => {
  const self = facts(good.cert, false);
  const secure = { state: 'secure' as const, records: [spki311(good.cert)] };
  const m = decide({ tlsa: secure, tls: self });
  assert.deepEqual([m.action, m.policy, m.tls], ['deliver', 'dane', 'TLSv1.3/TLS_AES_256_GCM_SHA384/Trusted']);
  assert.equal(decide({ tlsa: secure, tls: self, mxSecure: true }).trust, 'Verified');
  assert.deepEqual(m.reports.map((r) => [r.policyType, r.result, r.policyString[0]?.slice(0, 6)]), [['tlsa', 'success', '3 1 1 ']]);
  const stranger = ca.issue(['mx.a.test']);
  const miss = decide({ tlsa: { state: 'secure', records: [spki311(stranger.cert)] }, sts: policy('testing') });
  assert.equal(miss.action, 'defer', 'a valid WebPKI certificate does not make up for a failed DANE match');
  assert.match(miss.status ?? '', /^451 4\.7\.5 DANE verification of mx\.a\.test\[127\.0\.0\.1\] failed: no TLSA record matches/);
  assert.equal(miss.reports[0]?.result, 'validation-failure');
  const clear = decide({ tlsa: secure, tls: null });
  assert.match(clear.status ?? '', /^451 4\.7\.4 TLS is required by the DANE TLSA records of mx\.a\.test/);
});

test('DANE with only unusable records: TLS is required, authentication is not (RFC 7672 §2.2, Postfix "encrypt")', () => {
  const unusable = { state: 'secure' as const, records: [{ ...spki311(good.cert), usage: 1 }] };
  const d = decide({ tlsa: unusable, tls: facts(good.cert, false) });
  assert.deepEqual([d.action, d.policy, d.reports[0]?.result], ['deliver', 'dane', 'tlsa-invalid']);
  assert.match(d.warning ?? '', /all unusable \(1 1 1 [0-9a-f]{64}\)/);
  assert.match(decide({ tlsa: unusable, tls: null }).status ?? '', /^451 4\.7\.4 TLS is required by the DANE TLSA records of mx\.a\.test/);
  // An MTA-STS enforce policy still asks for a valid certificate.
  assert.equal(decide({ tlsa: unusable, tls: facts(good.cert, false), sts: policy('enforce') }).action, 'defer');
});

test('DANE lookup failed for a signed host: defer; not authenticated or absent: ignored', () => {
  const failed = decide({ tlsa: { state: 'failed', reason: 'TLSA lookup for _25._tcp.mx.a.test failed (SERVFAIL) and mx.a.test is in a DNSSEC-signed zone' } });
  assert.equal(failed.action, 'defer');
  assert.match(failed.status ?? '', /^451 4\.7\.5 TLSA lookup .* failed \(SERVFAIL\)/);
  assert.equal(failed.reports[0]?.result, 'dnssec-invalid');
  const none = decide({ tlsa: { state: 'none', reason: 'not authenticated' }, tls: null });
  assert.deepEqual([none.action, none.policy], ['deliver', 'opportunistic']);
});
