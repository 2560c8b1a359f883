// The SRS configuration: etc/srs.secrets (order, comments, repeated and short secrets, modes
// others can read or write, an unreadable file), SRS_DOMAIN / SRS_MAXAGE / SRS_SECRETS in
// option.dat, the sourcesrs / destinationsrs / addresssrs channel keywords, and the checks across
// files (keywords without a secret; keywords that can never all hold) — each with file:line.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseSrsSecrets, secretKey } from '../../src/config/srs.js';
import { parseOptionDat } from '../../src/config/option-dat.js';
import { loadInstanceConfig } from '../../src/config/load.js';
import type { Diagnostic } from '../../src/config/types.js';
import { srsForward, srsSettingsOf } from '../../src/srs/index.js';
import { makeInstance, type TestInstance } from '../helpers/instance.js';

const instances: TestInstance[] = [];
after(() => instances.forEach((i) => i.remove()));

function instance(files: Record<string, string>, shipped = false): TestInstance {
  const inst = makeInstance({ shipped, files });
  instances.push(inst);
  return inst;
}

const where = (inst: TestInstance, ds: Diagnostic[]) => ds.map((d) => `${relative(inst.root, d.file)}:${d.line}: ${d.severity}`);
const NOW = Date.UTC(2026, 4, 17);

test('etc/srs.secrets: one secret a line in order (the first signs), comments skipped; repeated and short secrets warned, never quoted', () => {
  const inst = instance({ 'etc/srs.secrets': '# signing first\nfirst-secret-0123456789abcdef\n\n! older\nsecond-secret-0123456789abcdef\nfirst-secret-0123456789abcdef\n  zq9xk  \n' });
  const file = join(inst.root, 'etc/srs.secrets');
  chmodSync(file, 0o600);
  const diagnostics: Diagnostic[] = [];
  const srs = parseSrsSecrets(file, diagnostics);
  assert.deepEqual(where(inst, diagnostics), ['etc/srs.secrets:6: warning', 'etc/srs.secrets:7: warning']);
  assert.match(diagnostics[0]!.message, /the same secret as line 2 \(ignored\)/);
  assert.match(diagnostics[1]!.message, /a short secret \(5 characters, fewer than 16\)/);
  assert.ok(diagnostics.every((d) => !d.message.includes('secret-0123') && !d.message.includes('zq9xk')), 'no secret in a message');
  assert.equal(srs.secrets.length, 3);
  // The first line signs: the same address as with that secret alone.
  const s = (secrets: typeof srs.secrets) => srsForward('alice@orig.example', { domain: 'srs.example', secrets, maxAgeDays: 21 }, NOW);
  assert.deepEqual(s(srs.secrets), s([secretKey('first-secret-0123456789abcdef')]));
  assert.equal(JSON.stringify(srs.secrets).includes('first-secret'), false, 'a secret does not serialise');
});

test('etc/srs.secrets permissions: readable by everyone or writable by the group or others is a warning; 0600 and 0640 are fine', () => {
  const inst = instance({ 'etc/srs.secrets': 'a-secret-long-enough-for-srs\n' });
  const file = join(inst.root, 'etc/srs.secrets');
  const warnings = (mode: number) => {
    chmodSync(file, mode);
    const ds: Diagnostic[] = [];
    parseSrsSecrets(file, ds);
    return ds.map((d) => `${d.line}: ${d.severity}: ${d.message}`);
  };
  assert.deepEqual(warnings(0o600), []);
  assert.deepEqual(warnings(0o640), []);
  assert.match(warnings(0o644).join(), /^0: warning: readable by every user of the host \(mode 0644\): whoever reads a secret can make SRS addresses/);
  assert.match(warnings(0o660).join(), /^0: warning: writable by its group \(mode 0660\)/);
  assert.match(warnings(0o602).join(), /^0: warning: writable by every user of the host \(mode 0602\)/);
});

test('etc/srs.secrets missing: no secret, no message; unreadable: an error naming the file', () => {
  const inst = instance({ 'etc/srs.secrets/x': '' }); // a directory where the file should be
  const ds: Diagnostic[] = [];
  assert.deepEqual(parseSrsSecrets(join(inst.root, 'etc/nothing'), ds), { file: null, secrets: [] });
  assert.equal(ds.length, 0);
  parseSrsSecrets(join(inst.root, 'etc/srs.secrets'), ds);
  assert.deepEqual(where(inst, ds), ['etc/srs.secrets:0: error']);
  assert.match(ds[0]!.message, /cannot read file: EISDIR/);
});

test('option.dat: SRS_DOMAIN defaults to LOCAL_HOST, SRS_MAXAGE to 21 days; bad values and SRS_SECRETS are errors with file:line', () => {
  const ok = instance({ 'etc/option.dat': 'LOCAL_HOST=mx.example.com\n' });
  const plain = parseOptionDat(join(ok.root, 'etc/option.dat'), []);
  assert.deepEqual(plain.srs, { domain: 'mx.example.com', maxAgeDays: 21 });
  const set = instance({ 'etc/option.dat': 'LOCAL_HOST=mx.example.com\nSRS_DOMAIN=SRS.Example.com.\nSRS_MAXAGE=30\n' });
  assert.deepEqual(parseOptionDat(join(set.root, 'etc/option.dat'), []).srs, { domain: 'srs.example.com', maxAgeDays: 30 });
  const bad = instance({ 'etc/option.dat': 'SRS_DOMAIN=not a domain\nSRS_MAXAGE=0\nSRS_SECRETS=abc,def\nSRS_DOMAIN2=x\n' });
  const ds: Diagnostic[] = [];
  parseOptionDat(join(bad.root, 'etc/option.dat'), ds);
  assert.deepEqual(where(bad, ds), ['etc/option.dat:4: warning', 'etc/option.dat:3: error', 'etc/option.dat:1: error', 'etc/option.dat:2: error']);
  assert.match(ds[1]!.message, /SRS_SECRETS does not belong in option\.dat.*etc\/srs\.secrets/);
  assert.equal(ds[1]!.message.includes('abc'), false, 'the secret is not repeated');
  assert.match(ds[2]!.message, /SRS_DOMAIN must be a domain name/);
  assert.match(ds[3]!.message, /SRS_MAXAGE must be an integer from 1 to 1000/);
});

test('imta.cnf keywords sourcesrs / destinationsrs / addresssrs; keywords without a secret are an error, an incomplete set a warning', () => {
  const shippedImta = readFileSync(join(import.meta.dirname, '../../../etc/imta.cnf'), 'utf8');
  const marked = shippedImta.replace(/^tcp_local .*$/m, (line) => `${line} sourcesrs destinationsrs addresssrs`);
  assert.notEqual(marked, shippedImta);
  const inst = instance({ 'etc/imta.cnf': marked, 'etc/option.dat': 'LOCAL_HOST=mx.example.com\nSRS_DOMAIN=srs.example.com\n' }, true);
  const tcpLocalLine = marked.split('\n').findIndex((l) => l.startsWith('tcp_local ')) + 1;
  const noSecret = loadInstanceConfig(inst.root);
  assert.equal(noSecret.config, null);
  const err = noSecret.diagnostics.find((d) => d.severity === 'error')!;
  assert.equal(`${relative(inst.root, err.file)}:${err.line}`, `etc/imta.cnf:${tcpLocalLine}`);
  assert.match(err.message, /channel tcp_local asks for SRS .* holds no secret: imsimta srs keygen makes one/);

  inst.write('etc/srs.secrets', 'a-secret-long-enough-for-srs\n');
  chmodSync(join(inst.root, 'etc/srs.secrets'), 0o600);
  const loaded = loadInstanceConfig(inst.root);
  assert.ok(loaded.config, loaded.diagnostics.map((d) => d.message).join('\n'));
  const tcpLocal = loaded.config.imta.channelByName.get('tcp_local')!;
  assert.deepEqual(tcpLocal.srs, { source: true, destination: true, address: true });
  assert.deepEqual(loaded.config.imta.channelByName.get('tcp_intranet')!.srs, { source: false, destination: false, address: false });
  assert.equal(loaded.diagnostics.some((d) => /srs/i.test(d.message)), false);
  const settings = srsSettingsOf(loaded.config)!;
  assert.deepEqual([settings.domain, settings.maxAgeDays, settings.secrets.length], ['srs.example.com', 21, 1]);

  // A later nosourcesrs wins: nothing can come in on a sourcesrs channel any more.
  inst.write('etc/imta.cnf', marked.replace(/^tcp_local .*$/m, (line) => `${line} nosourcesrs`));
  const incomplete = loadInstanceConfig(inst.root);
  assert.ok(incomplete.config);
  const warning = incomplete.diagnostics.find((d) => /srs/.test(d.message))!;
  assert.equal(warning.severity, 'warning');
  assert.match(warning.message, /no channel has sourcesrs: no sender is SRS-encoded/);
});
