// option.dat's verified-TLS options (TLS_CA_FILE, MTA_STS, MTA_STS_TIMEOUT, DANE, TLSRPT): the
// defaults, the settings read from them, and every bad value reported with file:line by cnbuild's
// loader (a CA file that cannot be read or holds no certificate included).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join, relative } from 'node:path';
import { writeFileSync } from 'node:fs';
import { loadInstanceConfig } from '../../src/config/load.js';
import { tlsPolicySettings } from '../../src/delivery/tls/settings.js';
import { loadTrustStore, systemCaFile } from '../../src/delivery/tls/trust.js';
import { rootCertificates } from 'node:tls';
import { makeInstance, type TestInstance } from '../helpers/instance.js';
import { makeTestCa } from '../helpers/test-ca.js';

const instances: TestInstance[] = [];
const ca = makeTestCa();
after(() => {
  for (const i of instances) i.remove();
  ca.remove();
});

function load(optionDat: string, files: Record<string, string> = {}) {
  const inst = makeInstance({ shipped: true, files: { 'etc/option.dat': optionDat, ...files } });
  instances.push(inst);
  const r = loadInstanceConfig(inst.root);
  const errors = r.diagnostics.filter((d) => d.severity === 'error').map((d) => `${relative(inst.root, d.file)}:${d.line}: ${d.message}`);
  return { inst, r, errors };
}

test('defaults: MTA-STS on (10 s fetches), DANE and TLS-RPT off, no CA file (Node\'s CAs)', () => {
  const s = tlsPolicySettings({ raw: {} }, '/inst');
  assert.deepEqual(s, { caFile: null, mtaSts: true, mtaStsTimeoutMs: 10_000, dane: false, tlsRpt: false });
  // Without a system bundle either: Node's own list, as tls.connect has it.
  assert.deepEqual(loadTrustStore(null, null), { ca: undefined, caFile: null });
});

test('settings as written; a relative TLS_CA_FILE is in the instance directory, and its CAs are added to Node\'s', () => {
  const { inst, r, errors } = load('TLS_CA_FILE=etc/tls/ca.pem\nMTA_STS=0\nMTA_STS_TIMEOUT=2.5\nDANE=1\nTLSRPT=1\n', { 'etc/tls/ca.pem': ca.rootPem + ca.intermediatePem });
  assert.deepEqual(errors, []);
  const s = tlsPolicySettings(r.config!.options, inst.root);
  assert.deepEqual(s, { caFile: join(inst.root, 'etc/tls/ca.pem'), mtaSts: false, mtaStsTimeoutMs: 2500, dane: true, tlsRpt: true });
  const trust = loadTrustStore(s.caFile, null);
  assert.equal(trust.ca?.length, rootCertificates.length + 2);
  assert.ok(trust.secureContext, 'one TLS context for every connection');
});

test('the system bundle: SSL_CERT_FILE, else the distribution\'s file; its CAs added to Node\'s (unreadable ones skipped), with TLS_CA_FILE\'s after them', () => {
  assert.equal(systemCaFile({ SSL_CERT_FILE: '/somewhere/bundle.pem' }), '/somewhere/bundle.pem');
  const found = systemCaFile({});
  if (found !== null) assert.ok(['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/ca-bundle.pem', '/etc/ssl/cert.pem'].includes(found));
  const { inst } = load('', { 'etc/bundle.pem': `${ca.rootPem}-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n${ca.intermediatePem}`, 'etc/private.pem': ca.rootPem });
  const bundle = join(inst.root, 'etc/bundle.pem');
  const system = loadTrustStore(null, bundle);
  assert.equal(system.ca?.length, rootCertificates.length + 2);
  assert.ok(system.secureContext);
  assert.equal(loadTrustStore(null, bundle), system, 'made once per process');
  assert.equal(loadTrustStore(join(inst.root, 'etc/private.pem'), bundle).ca?.length, rootCertificates.length + 3);
  assert.deepEqual(loadTrustStore(null, join(inst.root, 'etc/missing.pem')), { ca: undefined, caFile: null });
});

test('bad values: one line each with file:line', () => {
  const { errors, inst } = load('MTA_STS=yes\nDANE=2\nTLSRPT=\nMTA_STS_TIMEOUT=0\nTLS_CA_FILE=etc/missing.pem\n');
  assert.deepEqual(errors, [
    'etc/option.dat:1: MTA_STS must be 0 (off) or 1 (on), found "yes"',
    'etc/option.dat:2: DANE must be 0 (off) or 1 (on), found "2"',
    'etc/option.dat:3: TLSRPT must be 0 (off) or 1 (on), found ""',
    'etc/option.dat:4: MTA_STS_TIMEOUT must be a number of seconds above 0 and at most 600, found "0"',
    `etc/option.dat:5: TLS_CA_FILE ${join(inst.root, 'etc/missing.pem')}: cannot read it (ENOENT)`,
  ]);
  const notPem = load('TLS_CA_FILE=etc/ca.pem\n', { 'etc/ca.pem': 'not a certificate\n' });
  assert.deepEqual(notPem.errors, [`etc/option.dat:1: TLS_CA_FILE ${join(notPem.inst.root, 'etc/ca.pem')}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it`]);
  const broken = load('TLS_CA_FILE=etc/ca.pem\n', { 'etc/ca.pem': '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' });
  assert.match(broken.errors[0] ?? '', /^etc\/option\.dat:1: TLS_CA_FILE .*: certificate 1 cannot be read/);
  writeFileSync(join(notPem.inst.root, 'etc/ca.pem'), ca.rootPem);
  assert.deepEqual(loadInstanceConfig(notPem.inst.root).diagnostics.filter((d) => d.severity === 'error'), [], 'fixed: no error');
});
