// etc/dkim/keys: lines, comments, key files read and checked — and the exact file:line, severity
// and text of every problem (a missing, unreadable or wrong key is an error when the
// configuration loads), without a byte of a key in any message. The dkimsign channel keyword.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseDkimKeys } from '../../src/config/dkim.js';
import { loadInstanceConfig } from '../../src/config/load.js';
import { formatDiagnostic, type Diagnostic } from '../../src/config/types.js';
import { makeInstance, type TestInstance } from '../helpers/instance.js';

const instances: TestInstance[] = [];
after(() => instances.forEach((i) => i.remove()));

const pem = (type: 'rsa' | 'ed25519' | 'ec', bits = 2048) => {
  const pair = type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: bits }) : type === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  return pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
};
const RSA = pem('rsa');
const ED = pem('ed25519');

function parse(keys: string | ((root: string) => string), files: Record<string, string> = {}, modes: Record<string, number> = {}) {
  const inst = makeInstance({ files });
  instances.push(inst);
  inst.write('etc/dkim/keys', typeof keys === 'string' ? keys : keys(inst.root));
  for (const rel of Object.keys(files)) chmodSync(join(inst.root, rel), modes[rel] ?? 0o600);
  const diagnostics: Diagnostic[] = [];
  const config = parseDkimKeys(join(inst.root, 'etc/dkim/keys'), diagnostics);
  const report = diagnostics.map((d) => `${relative(inst.root, d.file)}:${d.line}: ${d.severity}: ${d.message.replaceAll(inst.root, 'ROOT')}`);
  return { inst, config, report, diagnostics };
}

test('no keys file: no keys, no diagnostics', () => {
  const diagnostics: Diagnostic[] = [];
  assert.deepEqual(parseDkimKeys(null, diagnostics), { file: null, keys: [] });
  assert.deepEqual(diagnostics, []);
});

test('a good file: comments, relative and absolute key paths, algorithm from the key or written, *.domain, IDN', () => {
  const { config, report, inst } = parse(
    (root) =>
      [
        '! DKIM keys',
        '# also a comment',
        '',
        'Example.COM   s2026  example.com.s2026.pem',
        'example.com   ed     sub/ed.pem  ed25519-sha256',
        `*.lists.example.org  l1  ${root}/private/lists.pem  rsa`,
        'bücher.example  b  example.com.s2026.pem',
      ].join('\n') + '\n',
    { 'etc/dkim/example.com.s2026.pem': RSA, 'etc/dkim/sub/ed.pem': ED, 'private/lists.pem': RSA },
  );
  assert.deepEqual(report, []);
  assert.deepEqual(
    config.keys.map((k) => [k.domain, k.subdomains, k.selector, k.algorithm, relative(inst.root, k.keyFile), k.signatureBytes, k.line]),
    [
      ['example.com', false, 's2026', 'rsa-sha256', 'etc/dkim/example.com.s2026.pem', 256, 4],
      ['example.com', false, 'ed', 'ed25519-sha256', 'etc/dkim/sub/ed.pem', 64, 5],
      ['lists.example.org', true, 'l1', 'rsa-sha256', 'private/lists.pem', 256, 6],
      ['xn--bcher-kva.example', false, 'b', 'rsa-sha256', 'etc/dkim/example.com.s2026.pem', 256, 7],
    ],
  );
  assert.equal(config.keys[0]!.privateKey.asymmetricKeyType, 'rsa');
});

test('every problem at its file:line, and no key material in any message', () => {
  const { report, diagnostics, config } = parse(
    [
      'example.com s1',
      'example.com s1 rsa.pem rsa-sha1',
      'not_a_domain s1 rsa.pem',
      'localhost s1 rsa.pem',
      'example.com bad_selector! rsa.pem',
      'example.com s2 missing.pem',
      'example.com s3 adir',
      'example.com s4 garbage.pem',
      'example.com s5 ec.pem',
      'example.com s6 ed.pem rsa-sha256',
      'example.com s7 short.pem',
      'example.com s8 rsa.pem',
      'EXAMPLE.com s8 rsa.pem',
      'example.com s9 weak.pem',
      'example.com s10 open.pem',
      'a b c d e',
      'example.com s11 group.pem',
    ].join('\n') + '\n',
    { 'etc/dkim/rsa.pem': RSA, 'etc/dkim/ed.pem': ED, 'etc/dkim/garbage.pem': 'not a key\n', 'etc/dkim/ec.pem': pem('ec'), 'etc/dkim/short.pem': pem('rsa', 512), 'etc/dkim/weak.pem': pem('rsa', 1024), 'etc/dkim/open.pem': RSA, 'etc/dkim/group.pem': RSA },
    // 0640: the service user's group reads what root's keygen made; not a warning.
    { 'etc/dkim/open.pem': 0o644, 'etc/dkim/group.pem': 0o640 },
  );
  assert.deepEqual(report, [
    'etc/dkim/keys:1: error: expected "domain selector keyfile [algorithm]", found "example.com s1"',
    'etc/dkim/keys:2: error: unknown algorithm "rsa-sha1" (rsa-sha256 or ed25519-sha256)',
    'etc/dkim/keys:3: error: "not_a_domain" is not a domain name (write example.com, or *.example.com for its subdomains)',
    'etc/dkim/keys:4: error: "localhost" is not a domain name (write example.com, or *.example.com for its subdomains)',
    'etc/dkim/keys:5: error: "bad_selector!" is not a selector (letters, digits and hyphens, labels separated by dots)',
    'etc/dkim/keys:6: error: cannot read key file ROOT/etc/dkim/missing.pem: ENOENT',
    'etc/dkim/keys:7: error: cannot read key file ROOT/etc/dkim/adir: ENOENT',
    'etc/dkim/keys:8: error: key file ROOT/etc/dkim/garbage.pem holds no PEM private key',
    'etc/dkim/keys:9: error: key file ROOT/etc/dkim/ec.pem holds a ec key; DKIM signs with rsa or ed25519 keys',
    'etc/dkim/keys:10: error: key file ROOT/etc/dkim/ed.pem holds a ed25519 key, which cannot sign rsa-sha256',
    'etc/dkim/keys:11: error: key file ROOT/etc/dkim/short.pem holds a 512-bit RSA key; verifiers refuse keys under 1024 bits (RFC 8301)',
    'etc/dkim/keys:13: error: example.com with selector s8 is already defined at line 12',
    'etc/dkim/keys:14: warning: the 1024-bit RSA key of ROOT/etc/dkim/weak.pem is weak: use 2048 bits (RFC 8301)',
    'etc/dkim/keys:15: warning: key file ROOT/etc/dkim/open.pem can be read by other users (mode 644): chmod 600 it, or 640 in the service user\'s group',
    'etc/dkim/keys:16: error: expected "domain selector keyfile [algorithm]", found "a b c d e"',
  ]);
  const secret = RSA.split('\n')[1]!.slice(0, 20);
  assert.ok(diagnostics.every((d) => !d.message.includes('PRIVATE KEY') && !d.message.includes(secret)), 'no key material in messages');
  assert.deepEqual(config.keys.map((k) => k.selector), ['s8', 's9', 's10', 's11']);
});

test('a key file that is a directory is unreadable: an error with file:line', () => {
  const { inst } = parse('example.com s1 adir\n');
  mkdirSync(join(inst.root, 'etc/dkim/adir'));
  const diagnostics: Diagnostic[] = [];
  parseDkimKeys(join(inst.root, 'etc/dkim/keys'), diagnostics);
  assert.deepEqual(diagnostics.map((d) => `${d.line} ${d.severity} ${d.message.replace(inst.root, 'ROOT')}`), ['1 error cannot read key file ROOT/etc/dkim/adir: EISDIR']);
});

test('loaded with the instance: a bad key stops the configuration with etc/dkim/keys:LINE; dkimsign is a channel keyword', () => {
  const imta = 'localhost $U%localhost@localhost\n. $U%$H@tcp-daemon\n\nl\nlocalhost\n\ntcp_local smtp dkimsign\ntcp-daemon\n\ntcp_other smtp dkimsign nodkimsign\ntcp-other\n';
  const inst = makeInstance({ files: { 'etc/imta.cnf': imta, 'etc/dkim/keys': '! keys\nexample.com s1 s1.pem\nexample.com s2 s2.pem\n', 'etc/dkim/s1.pem': RSA } });
  instances.push(inst);
  chmodSync(join(inst.root, 'etc/dkim/s1.pem'), 0o600);
  const bad = loadInstanceConfig(inst.root);
  assert.equal(bad.config, null);
  assert.deepEqual(bad.diagnostics.map((d) => formatDiagnostic(d).replace(`${inst.root}/`, '')), [`etc/dkim/keys:3: error: cannot read key file ${inst.root}/etc/dkim/s2.pem: ENOENT`]);

  inst.write('etc/dkim/keys', 'example.com s1 s1.pem\n');
  const good = loadInstanceConfig(inst.root);
  assert.ok(good.config, good.diagnostics.map(formatDiagnostic).join('\n'));
  assert.equal(good.config.dkim.keys.length, 1);
  assert.deepEqual(good.config.imta.channels.map((c) => [c.name, c.dkimSign]), [['l', false], ['tcp_local', true], ['tcp_other', false]]);
  assert.deepEqual(good.diagnostics, []);

  inst.write('etc/imta.cnf', imta.replace('tcp_local smtp dkimsign', 'tcp_local smtp'));
  const unsigned = loadInstanceConfig(inst.root);
  assert.deepEqual(unsigned.diagnostics.map((d) => formatDiagnostic(d).replace(`${inst.root}/`, '')), ['etc/dkim/keys:1: warning: no channel of imta.cnf has the dkimsign keyword: nothing is signed (add it to the outbound channel, e.g. tcp_local)']);
});
