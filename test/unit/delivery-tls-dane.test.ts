// TLSA matching (RFC 7672, RFC 7671) over real certificate chains made by the openssl CLI; the
// association data is computed by openssl too, independently of the code under test.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { isUsableTlsa, matchTlsa, type TlsaRecord } from '../../src/delivery/tls/dane.js';
import { makeTestCa, tlsaAssociation } from '../helpers/test-ca.js';

const ca = makeTestCa();
const other = makeTestCa('another CA');
after(() => {
  ca.remove();
  other.remove();
});

const der = (pem: string | Buffer) => new X509Certificate(pem).raw;
/** The chain a server sends, DER, leaf first. */
const chainOf = (...pems: Array<string | Buffer>) => pems.map(der);

const association = tlsaAssociation;
const tlsa = (usage: number, selector: 0 | 1, matching: 0 | 1 | 2, pem: string | Buffer): TlsaRecord => ({ usage, selector, matchingType: matching, data: association(pem, selector, matching) });

test('DANE-EE: the leaf certificate or its key, by any selector and matching type', () => {
  const mx = ca.issue(['mx.dane.test']);
  for (const [s, m] of [[1, 1], [0, 1], [0, 0], [1, 2], [1, 0], [0, 2]] as const) {
    const r = matchTlsa([tlsa(3, s, m, mx.cert)], chainOf(mx.cert), ['mx.dane.test']);
    assert.ok(r.ok, `3 ${s} ${m}: ${r.ok ? '' : r.reason}`);
    assert.equal(r.ok && r.depth, 0);
  }
  const stranger = ca.issue(['mx.dane.test']);
  const miss = matchTlsa([tlsa(3, 1, 1, stranger.cert)], chainOf(mx.cert), ['mx.dane.test']);
  assert.equal(miss.ok, false);
  assert.match(!miss.ok ? miss.reason : '', /no TLSA record matches/);
});

test('DANE-EE checks neither the name nor the dates (RFC 7672 §3.1.1)', () => {
  const odd = ca.issue(['somewhere.else.test'], { expired: true });
  assert.ok(matchTlsa([tlsa(3, 1, 1, odd.cert)], chainOf(odd.cert), ['mx.dane.test']).ok);
});

test('DANE-TA: an issuer the server sent is the anchor; the leaf must carry the MX name and be valid', () => {
  const viaInt = ca.issue(['mx.dane.test'], { viaIntermediate: true });
  const r = matchTlsa([tlsa(2, 0, 1, ca.intermediatePem)], chainOf(viaInt.cert, ca.intermediatePem), ['mx.dane.test']);
  assert.ok(r.ok && r.depth === 1, JSON.stringify(r));
  // The root as anchor, when the server sends it too (2 1 1: its key).
  assert.ok(matchTlsa([tlsa(2, 1, 1, ca.rootPem)], chainOf(viaInt.cert, ca.intermediatePem, ca.rootPem), ['mx.dane.test']).ok);
  // Not sent: no match (only anchors the server presents are used).
  assert.equal(matchTlsa([tlsa(2, 1, 1, ca.rootPem)], chainOf(viaInt.cert, ca.intermediatePem), ['mx.dane.test']).ok, false);
  // The name.
  const wrong = matchTlsa([tlsa(2, 0, 1, ca.intermediatePem)], chainOf(viaInt.cert, ca.intermediatePem), ['mx.other.test']);
  assert.match(!wrong.ok ? wrong.reason : '', /not for mx\.other\.test/);
  // A wildcard certificate covers one label.
  const wild = ca.issue(['*.dane.test'], { viaIntermediate: true });
  assert.ok(matchTlsa([tlsa(2, 0, 1, ca.intermediatePem)], chainOf(wild.cert, ca.intermediatePem), ['mx.dane.test']).ok);
  assert.equal(matchTlsa([tlsa(2, 0, 1, ca.intermediatePem)], chainOf(wild.cert, ca.intermediatePem), ['a.mx.dane.test']).ok, false);
  // The dates of the certificates below the anchor.
  const expired = ca.issue(['mx.dane.test'], { viaIntermediate: true, expired: true });
  const old = matchTlsa([tlsa(2, 0, 1, ca.intermediatePem)], chainOf(expired.cert, ca.intermediatePem), ['mx.dane.test']);
  assert.match(!old.ok ? old.reason : '', /not valid now/);
});

test('DANE-TA: a chain the anchor did not sign does not match', () => {
  // The leaf is the other CA's; the server also sends our intermediate, whose hash is published.
  const foreign = other.issue(['mx.dane.test'], { viaIntermediate: true });
  const r = matchTlsa([tlsa(2, 0, 1, ca.intermediatePem)], chainOf(foreign.cert, ca.intermediatePem), ['mx.dane.test']);
  assert.equal(r.ok, false);
  assert.match(!r.ok ? r.reason : '', /not signed by the next one/);
});

test('usable records: DANE-TA/EE, selector 0/1, matching 0/1/2 with digests of the right length', () => {
  const d32 = Buffer.alloc(32, 1);
  assert.equal(isUsableTlsa({ usage: 3, selector: 1, matchingType: 1, data: d32 }), true);
  assert.equal(isUsableTlsa({ usage: 2, selector: 0, matchingType: 2, data: Buffer.alloc(64) }), true);
  assert.equal(isUsableTlsa({ usage: 0, selector: 1, matchingType: 1, data: d32 }), false, 'PKIX-TA is not for SMTP');
  assert.equal(isUsableTlsa({ usage: 1, selector: 1, matchingType: 1, data: d32 }), false, 'PKIX-EE is not for SMTP');
  assert.equal(isUsableTlsa({ usage: 3, selector: 2, matchingType: 1, data: d32 }), false);
  assert.equal(isUsableTlsa({ usage: 3, selector: 1, matchingType: 3, data: d32 }), false);
  assert.equal(isUsableTlsa({ usage: 3, selector: 1, matchingType: 1, data: Buffer.alloc(31) }), false, 'a truncated digest');
  const mx = ca.issue(['mx.dane.test']);
  const r = matchTlsa([{ usage: 1, selector: 1, matchingType: 1, data: association(mx.cert, 1, 1) }], chainOf(mx.cert), ['mx.dane.test']);
  assert.deepEqual(r, { ok: false, reason: 'no usable TLSA record' }, 'a PKIX-EE record is not used even when it matches');
  assert.deepEqual(matchTlsa([tlsa(3, 1, 1, mx.cert)], [], ['mx.dane.test']), { ok: false, reason: 'the server sent no certificate' });
});
