// `bin/imsimta dkim keygen` as an operator runs it: the key file (mode 0600 in etc/dkim/, 0700),
// its line in etc/dkim/keys, the printed TXT record (which parses, in strings of at most 255
// bytes, and holds the public half of the key written), cnbuild passing after it; a key never
// overwritten; bad arguments; and cnbuild's file:line when a key file goes missing or a line is
// malformed. The record is also served by dnsmasq and a message signed with the new key checked
// by dkimverify (test/integration/dkim-verify.test.ts does the rest of the verifying). Run by root
// for an instance whose processes run as the service user, the key is readable by that user's
// group, so the instance starts as that user and loads it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadInstanceConfigOrThrow } from '../../src/config/load.js';
import { signMessage } from '../../src/dkim/index.js';
import { instancePaths } from '../../src/common/instance.js';
import { lookupUser } from '../../src/common/service-user.js';
import { prepareServiceUser } from '../../src/cli/service-user-start.js';
import { makeInstance, repoRoot, runCli, type TestInstance } from '../helpers/instance.js';
import { reachableBinDir } from '../helpers/service-user.js';
import { dkimpyVerify, startKeyDns } from '../helpers/dkim-verifiers.js';

const instances: TestInstance[] = [];
after(() => instances.forEach((i) => i.remove()));
function instance(opts: Parameters<typeof makeInstance>[0] = { shipped: true }): TestInstance {
  const inst = makeInstance(opts);
  instances.push(inst);
  return inst;
}
const noStackTrace = (text: string) => assert.ok(!text.split('\n').some((l) => l.startsWith('    at ')), `stack trace in:\n${text}`);

/** `name. IN TXT "a" "b"` → name and the strings. */
function parseRecord(stdout: string): { name: string; strings: string[]; value: string } {
  const lines = stdout.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, `one line on stdout: ${stdout}`);
  const m = /^([a-z0-9._-]+)\. IN TXT ((?:"[^"\\]*"(?: |$))+)$/.exec(lines[0]!);
  assert.ok(m, `a zone-file TXT record: ${lines[0]}`);
  const strings = [...m[2]!.matchAll(/"([^"]*)"/g)].map((s) => s[1]!);
  assert.ok(strings.every((s) => Buffer.byteLength(s) <= 255), 'strings of at most 255 bytes');
  return { name: m[1]!, strings, value: strings.join('') };
}

test('rsa (default, 2048 bits): key 0600 in etc/dkim/ (0700), its keys line, a TXT record of its public key; cnbuild passes; dkimverify agrees', async () => {
  const inst = instance();
  const r = await runCli('imsimta', ['dkim', 'keygen', 'Example.COM', 'mail2026', '--root', inst.root]);
  assert.equal(r.code, 0, r.stderr);
  noStackTrace(r.stderr);
  const keyFile = join(inst.root, 'etc/dkim/example.com.mail2026.pem');
  assert.equal(statSync(keyFile).mode & 0o777, 0o600);
  assert.equal(statSync(join(inst.root, 'etc/dkim')).mode & 0o777, 0o700);
  assert.match(inst.read('etc/dkim/keys'), /^! DKIM signing keys[^\n]*\nexample\.com mail2026 example\.com\.mail2026\.pem rsa-sha256\n$/);
  assert.match(r.stderr, /wrote .*example\.com\.mail2026\.pem/);
  assert.doesNotMatch(r.stderr, /dkimsign/, 'the shipped tcp_local signs already');

  const record = parseRecord(r.stdout);
  assert.equal(record.name, 'mail2026._domainkey.example.com');
  assert.equal(record.strings.length, 2, 'a 2048-bit key takes two strings');
  const tags = Object.fromEntries(record.value.split(';').map((t) => t.trim().split('=') as [string, string]).map(([k, ...v]) => [k, v.join('=')]));
  assert.deepEqual([tags.v, tags.k], ['DKIM1', 'rsa']);
  const published = createPublicKey({ key: Buffer.from(tags.p!, 'base64'), format: 'der', type: 'spki' });
  const privateKey = createPrivateKey(readFileSync(keyFile));
  assert.equal(privateKey.asymmetricKeyDetails?.modulusLength, 2048);
  assert.ok(published.equals(createPublicKey(privateKey)), 'the record publishes the public half of the key written');

  const cnbuild = await runCli('imsimta', ['cnbuild', '--root', inst.root]);
  assert.equal(cnbuild.code, 0, cnbuild.stderr);
  // The shipped submission services are off without a certificate: a note line each follows.
  assert.match(cnbuild.stdout, /, 1 DKIM key(, \d+ warnings?)?\n(?:\S+: note: \[SERVICE=SUBMISSIONS?\] .*\n){2}$/);

  // The printed record, served as it is, verifies a message signed with the key written.
  const dns = await startKeyDns({ [record.name]: record.strings });
  try {
    const msg = Buffer.from('From: a@example.com\r\nTo: b@example.net\r\nSubject: key check\r\n\r\nhello\r\n');
    const signed = Buffer.concat([Buffer.from(signMessage(msg, loadInstanceConfigOrThrow(inst.root).dkim), 'latin1'), msg]);
    const v = dkimpyVerify(dns, signed);
    assert.ok(v.ok, v.output);
  } finally {
    await dns.stop();
  }
});

test('ed25519: a k=ed25519 record of the raw 32-byte key; a second key for the domain is added below the first', async () => {
  const inst = instance();
  assert.equal((await runCli('imsimta', ['dkim', 'keygen', 'example.com', 'r1', '--bits', '3072', '--root', inst.root])).code, 0);
  const r = await runCli('imsimta', ['dkim', 'keygen', 'example.com', 'e1', '--algorithm', 'ed25519', '--root', inst.root]);
  assert.equal(r.code, 0, r.stderr);
  const { name, value } = parseRecord(r.stdout);
  assert.equal(name, 'e1._domainkey.example.com');
  const raw = Buffer.from(/^v=DKIM1; k=ed25519; p=([A-Za-z0-9+/=]+)$/.exec(value)![1]!, 'base64');
  const publicKey = createPublicKey(createPrivateKey(readFileSync(join(inst.root, 'etc/dkim/example.com.e1.pem'))));
  assert.ok(raw.equals(Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url')));
  assert.deepEqual(inst.read('etc/dkim/keys').split('\n').slice(1), ['example.com r1 example.com.r1.pem rsa-sha256', 'example.com e1 example.com.e1.pem ed25519-sha256', '']);
  const config = loadInstanceConfigOrThrow(inst.root);
  assert.deepEqual(config.dkim.keys.map((k) => [k.selector, k.algorithm, k.signatureBytes]), [['r1', 'rsa-sha256', 384], ['e1', 'ed25519-sha256', 64]]);
});

test('a key is never overwritten; bad arguments are usage errors; --help', async () => {
  const inst = instance();
  assert.equal((await runCli('imsimta', ['dkim', 'keygen', 'example.com', 's1', '--root', inst.root])).code, 0);
  const keyBefore = readFileSync(join(inst.root, 'etc/dkim/example.com.s1.pem'));
  const keysBefore = inst.read('etc/dkim/keys');
  const again = await runCli('imsimta', ['dkim', 'keygen', 'example.com', 's1', '--algorithm', 'ed25519', '--root', inst.root]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /^imsimta: .*example\.com\.s1\.pem exists already: keys are never overwritten/);
  assert.equal(again.stdout, '');
  assert.ok(readFileSync(join(inst.root, 'etc/dkim/example.com.s1.pem')).equals(keyBefore));
  assert.equal(inst.read('etc/dkim/keys'), keysBefore);

  for (const [args, text] of [
    [['keygen', 'example.com'], /needs DOMAIN and SELECTOR/],
    [['keygen', 'not_a_domain', 's'], /"not_a_domain" is not a domain name/],
    [['keygen', 'example.com', 'bad selector!'], /is not a selector/],
    [['keygen', 'example.com', 's2', '--algorithm', 'dsa'], /--algorithm is rsa or ed25519/],
    [['keygen', 'example.com', 's2', '--bits', '512'], /--bits is a number from 1024 to 4096/],
    [['keygen', 'example.com', 's2', '--algorithm', 'ed25519', '--bits', '2048'], /--bits is for RSA keys/],
    [['frobnicate'], /unknown dkim command "frobnicate"/],
  ] as Array<[string[], RegExp]>) {
    const r = await runCli('imsimta', ['dkim', ...args, '--root', inst.root]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, text);
    noStackTrace(r.stderr);
  }
  assert.ok(!existsSync(join(inst.root, 'etc/dkim/example.com.s2.pem')));
  const help = await runCli('imsimta', ['dkim', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^usage: imsimta dkim keygen DOMAIN SELECTOR/);
});

test('cnbuild after the key file went missing, or a line was broken: exit 1 with etc/dkim/keys:LINE', async () => {
  const inst = instance();
  assert.equal((await runCli('imsimta', ['dkim', 'keygen', 'example.com', 's1', '--root', inst.root])).code, 0);
  assert.equal((await runCli('imsimta', ['dkim', 'keygen', 'example.org', 's1', '--root', inst.root])).code, 0);
  rmSync(join(inst.root, 'etc/dkim/example.com.s1.pem'));
  const keys = join(inst.root, 'etc/dkim/keys');
  let r = await runCli('imsimta', ['cnbuild', '--root', inst.root]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `${keys}:2: error: cannot read key file ${join(inst.root, 'etc/dkim/example.com.s1.pem')}: ENOENT\n1 error, 0 warnings: configuration not usable\n`);

  inst.write('etc/dkim/keys', `${inst.read('etc/dkim/keys').replace('example.com s1 example.com.s1.pem rsa-sha256\n', '')}example.net\n`);
  r = await runCli('imsimta', ['cnbuild', '--root', inst.root]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`^${keys.replace(/\./g, '\\.')}:3: error: expected "domain selector keyfile \\[algorithm\\]", found "example\\.net"\n`));

  // keygen does not write a keys file that would not load, and takes its key back.
  const refused = await runCli('imsimta', ['dkim', 'keygen', 'example.net', 's1', '--root', inst.root]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /keys:3: error: expected "domain selector keyfile \[algorithm\]".*fix keys first/);
  assert.ok(!existsSync(join(inst.root, 'etc/dkim/example.net.s1.pem')));
  noStackTrace(refused.stderr);
});

test('without a dkimsign channel keygen says what is missing', async () => {
  const inst = instance({ files: { 'etc/imta.cnf': '. $U%$H@tcp-daemon\n\ntcp_local smtp mx\ntcp-daemon\n' } });
  const r = await runCli('imsimta', ['dkim', 'keygen', 'example.com', 's1', '--root', inst.root]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /no channel of imta\.cnf has the dkimsign keyword: add it to the outbound channel \(e\.g\. tcp_local\)/);
  parseRecord(r.stdout);
});

test('run by root for an instance of the service user: key 0640 and etc/dkim/ 0750 in its group; that user loads them, start-msg keeps it', { skip: process.geteuid?.() !== 0 && 'needs root' }, async () => {
  execFileSync('bash', [join(repoRoot, 'scripts', 'ensure-installed.sh')], { stdio: 'ignore' });
  const user = lookupUser('tsubame')!;
  const inst = instance();
  chmodSync(inst.root, 0o755); // mkdtemp's 0700 would keep the service user out of the instance
  // The test runner sets TSUBAME_SERVER_USER=root for the other tests; the shipped default here.
  const env = { TSUBAME_SERVER_USER: 'tsubame' };
  const r = await runCli('imsimta', ['dkim', 'keygen', 'example.com', 's1', '--algorithm', 'ed25519', '--root', inst.root], { env });
  assert.equal(r.code, 0, r.stderr);
  const key = statSync(join(inst.root, 'etc/dkim/example.com.s1.pem'));
  const dir = statSync(join(inst.root, 'etc/dkim'));
  assert.deepEqual([key.uid, key.gid, (key.mode & 0o777).toString(8)], [0, user.gid, '640']);
  assert.deepEqual([dir.uid, dir.gid, (dir.mode & 0o777).toString(8)], [0, user.gid, '750']);

  // The configuration as the server processes read it: as the service user, keys included.
  const bin = reachableBinDir();
  const asService = (args: string[]) =>
    execFileSync('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--', join(bin, 'imsimta'), ...args], { env: { ...process.env, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  assert.match(asService(['cnbuild', '--root', inst.root]), /1 DKIM key/);
  // No warning of cnbuild's about the key's mode (group read is how the service user reads it).
  const cnbuild = await runCli('imsimta', ['cnbuild', '--root', inst.root], { env });
  assert.equal(cnbuild.code, 0, cnbuild.stderr);
  assert.doesNotMatch(cnbuild.stderr, /can be read by other users/);

  // start-msg as root keeps the service user with such a key; with a key only root can read it
  // says which file and runs as root rather than failing to start.
  const paths = instancePaths(inst.root);
  process.env.TSUBAME_SERVER_USER = 'tsubame';
  const stderr = process.stderr.write.bind(process.stderr);
  let said = '';
  process.stderr.write = (chunk: string) => ((said += chunk), true);
  try {
    assert.equal(prepareServiceUser(paths, loadInstanceConfigOrThrow(inst.root))?.name, 'tsubame');
    assert.equal(said, '');
    chmodSync(join(inst.root, 'etc/dkim/example.com.s1.pem'), 0o600);
    assert.equal(prepareServiceUser(paths, loadInstanceConfigOrThrow(inst.root)), null);
    assert.match(said, /^start-msg: warning: running as root: the service user tsubame cannot read .*etc\/dkim\/example\.com\.s1\.pem \(mode 0600/);
  } finally {
    process.stderr.write = stderr;
    delete process.env.TSUBAME_SERVER_USER;
  }
});
