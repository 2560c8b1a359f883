// etc/users: the line syntax, every problem at its file:line without quoting a hash or a
// password, permission warnings, and the file loaded with the rest of the configuration.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync } from 'node:fs';
import { join, relative } from 'node:path';
import { formatUserLine, parseUsers, permissionProblem, splitUserLine } from '../../src/config/users.js';
import { applyUserChange } from '../../src/config/users-edit.js';
import { loadInstanceConfig } from '../../src/config/load.js';
import { formatDiagnostic, type Diagnostic } from '../../src/config/types.js';
import { hashPassword } from '../../src/directory/password-hash.js';
import { makeInstance, repoRoot, type TestInstance } from '../helpers/instance.js';
import { readFileSync } from 'node:fs';

const instances: TestInstance[] = [];
after(() => {
  for (const inst of instances) inst.remove();
});
function instance(files: Record<string, string>): TestInstance {
  const inst = makeInstance({ files });
  instances.push(inst);
  return inst;
}
const lines = (...l: string[]) => `${l.join('\n')}\n`;

let HASH_A = '';
let HASH_B = '';
before(async () => {
  HASH_A = await hashPassword('alice-password', { ln: 10, r: 8, p: 1 });
  HASH_B = await hashPassword('bob-password', { ln: 10, r: 8, p: 1 });
});

function users(text: string, mode = 0o600) {
  const inst = instance({ 'etc/users': text });
  const file = join(inst.root, 'etc/users');
  chmodSync(file, mode);
  const diagnostics: Diagnostic[] = [];
  const config = parseUsers(file, diagnostics);
  return { config, diagnostics, where: diagnostics.map((d) => `${relative(inst.root, d.file)}:${d.line}: ${d.severity}`), text: diagnostics.map(formatDiagnostic).join('\n') };
}

test('users: name:hash[:addresses[:flags]], ! and # comments, names case-insensitive, locked users', () => {
  const { config, diagnostics } = users(
    lines(
      '! etc/users',
      '# name:hash:addresses:flags',
      '   ! an indented comment',
      '',
      `Alice:${HASH_A}:alice.smith@example.com, Sales@Example.com`,
      `root:${HASH_B}::admin`,
      `bob:${HASH_B}`,
      'carol:*',
      `dave:!${HASH_A}:dave@example.org`,
      'erin:!',
    ),
  );
  assert.deepEqual(diagnostics, []);
  assert.deepEqual([...config.users.keys()], ['alice', 'root', 'bob', 'carol', 'dave', 'erin']);
  const alice = config.users.get('alice')!;
  assert.deepEqual([alice.addresses, alice.admin, alice.line, alice.hash?.ln], [['alice.smith@example.com', 'Sales@Example.com'], false, 5, 10]);
  assert.deepEqual([config.users.get('root')!.admin, config.users.get('root')!.addresses], [true, []]);
  assert.equal(config.users.get('bob')!.hash?.algorithm, 'scrypt');
  for (const locked of ['carol', 'dave', 'erin']) assert.equal(config.users.get(locked)!.hash, null, locked);
  assert.deepEqual(config.users.get('dave')!.addresses, ['dave@example.org']);
});

test('users: each malformed line is an error at its line; the hash and any password-like text are never quoted', () => {
  const { config, where, text } = users(
    lines(
      `alice:${HASH_A}`,
      'bob hunter2', // no colon: maybe a password typed by mistake
      `bad name:${HASH_A}`,
      `-dash:${HASH_A}`,
      `ALICE:${HASH_B}`, // alice again
      'carol:hunter2',
      `dave:${HASH_A.slice(0, -3)}`,
      'erin:$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA',
      `frank:${HASH_A}:not-an-address`,
      `gina:${HASH_A}:gina@example.com,@route.example:g@example.com`,
      `hank:${HASH_A}::admin,superuser`,
      `ivan:${HASH_A}:a@b.example:admin:extra`,
      `judy:!${HASH_A.replace('ln=10', 'ln=99')}`,
      `${'k'.repeat(65)}:${HASH_A}`,
    ),
  );
  assert.deepEqual([...config.users.keys()], ['alice']);
  assert.deepEqual(where, [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14].map((n) => `etc/users:${n}: error`));
  const byLine = text.split('\n');
  assert.match(byLine[0]!, /:2: error: expected name:password-hash\[:address,…\[:flag,…\]\] \(make or update a user with imsimta passwd\)$/);
  assert.match(byLine[1]!, /:3: error: user name "bad name" is not valid/);
  assert.match(byLine[2]!, /:4: error: user name "-dash" is not valid/);
  assert.match(byLine[3]!, /:5: error: user alice is defined again \(first at line 1\)/);
  assert.match(byLine[4]!, /:6: error: user carol: not a password hash: expected \$scrypt\$/);
  assert.match(byLine[5]!, /:7: error: user dave: scrypt hash is 30 bytes \(32 expected\)/);
  assert.match(byLine[6]!, /:8: error: user erin: password hash algorithm "argon2id" is not supported/);
  assert.match(byLine[7]!, /:9: error: user frank: "not-an-address" is not an address \(local-part@domain\)/);
  assert.match(byLine[8]!, /:10: error: user gina: "@route.example" is not an address/);
  assert.match(byLine[9]!, /:11: error: user hank: unknown flag "superuser" \(known: admin\)/);
  assert.match(byLine[10]!, /:12: error: expected name:password-hash/);
  assert.match(byLine[11]!, /:13: error: user judy: scrypt cost ln=99 is out of range/);
  assert.match(byLine[12]!, /:14: error: user name "k{65}" is not valid/);
  const [, , , salt, key] = HASH_A.split('$');
  assert.ok(!text.includes('hunter2') && !text.includes(salt!) && !text.includes(key!.slice(0, 20)), text);
});

test('users: a file others can read or write gets a warning at line 0; 600 and 640 do not', () => {
  assert.deepEqual(users(lines(`alice:${HASH_A}`), 0o600).diagnostics, []);
  assert.deepEqual(users(lines(`alice:${HASH_A}`), 0o640).diagnostics, []);
  const readable = users(lines(`alice:${HASH_A}`), 0o644);
  assert.deepEqual(readable.where, ['etc/users:0: warning']);
  assert.match(readable.text, /readable by every user of the host \(mode 0644\): the password hashes can be attacked offline; chmod 600/);
  assert.equal(readable.config.users.size, 1, 'a warning does not refuse the file');
  assert.match(permissionProblem(0o100660)!, /writable by its group \(mode 0660\)/);
  assert.match(permissionProblem(0o100602)!, /writable by every user of the host/);
  assert.equal(permissionProblem(0o100400), null);
});

test('users: no file means no users; an unreadable file is an error', () => {
  const d: Diagnostic[] = [];
  assert.equal(parseUsers(null, d).users.size, 0);
  const inst = instance({});
  parseUsers(join(inst.root, 'etc'), d); // a directory
  assert.deepEqual(d.map((x) => [x.line, x.severity]), [[0, 'error']]);
  assert.match(d[0]!.message, /cannot read file: EISDIR/);
});

test('users: split and format keep the fields; trailing empty fields are left out', () => {
  assert.equal(splitUserLine('  # comment'), 'comment');
  assert.equal(splitUserLine(''), 'comment');
  assert.equal(splitUserLine('no colon'), null);
  assert.deepEqual(splitUserLine('a:$h:x@y.example'), { name: 'a', hash: '$h', addresses: 'x@y.example', flags: '' });
  assert.equal(formatUserLine({ name: 'a', hash: '$h', addresses: '', flags: '' }), 'a:$h');
  assert.equal(formatUserLine({ name: 'a', hash: '$h', addresses: '', flags: 'admin' }), 'a:$h::admin');
  assert.equal(formatUserLine({ name: 'a', hash: '$h', addresses: 'x@y.example', flags: '' }), 'a:$h:x@y.example');
});

test('users: loaded with the instance configuration; an error there makes the configuration unusable with file:line', () => {
  const base = {
    'etc/imta.cnf': readFileSync(join(repoRoot, 'etc/imta.cnf'), 'utf8'),
    'etc/job_controller.cnf': readFileSync(join(repoRoot, 'etc/job_controller.cnf'), 'utf8'),
  };
  const good = instance({ ...base, 'etc/users': lines(`alice:${HASH_A}:a@example.org`) });
  chmodSync(join(good.root, 'etc/users'), 0o600);
  const ok = loadInstanceConfig(good.root);
  assert.deepEqual(ok.diagnostics.filter((d) => d.severity === 'error'), []);
  assert.deepEqual(ok.config?.users.users.get('alice')?.addresses, ['a@example.org']);
  assert.equal(ok.config?.users.file, join(good.root, 'etc/users'));

  const none = loadInstanceConfig(instance(base).root);
  assert.deepEqual([none.config?.users.file, none.config?.users.users.size], [null, 0]);

  const bad = instance({ ...base, 'etc/users': lines('# users', `alice:${HASH_A}`, 'garbage') });
  const broken = loadInstanceConfig(bad.root);
  assert.equal(broken.config, null);
  assert.deepEqual(broken.diagnostics.filter((d) => d.severity === 'error').map((d) => `${relative(bad.root, d.file)}:${d.line}`), ['etc/users:3']);
});

test('users edit: replaces the one line of the user (any case, CRLF kept) or appends one; a user defined twice is refused', () => {
  const text = '# users\nBob:$old:b@x.example:admin\r\ncarol:*';
  const updated = applyUserChange(text, 'bob', { hash: '$new' });
  assert.deepEqual(updated, { ok: true, text: '# users\nBob:$new:b@x.example:admin\r\ncarol:*', action: 'updated', line: 2 });
  const cleared = applyUserChange(text, 'BOB', { hash: '$new', addresses: [], admin: false });
  assert.ok(cleared.ok && cleared.text === '# users\nBob:$new\r\ncarol:*');
  const added = applyUserChange(text, 'Dave', { hash: '$d', addresses: ['d@x.example'], admin: true });
  assert.deepEqual(added, { ok: true, text: `${text}\ndave:$d:d@x.example:admin\n`, action: 'created', line: 4 });
  assert.deepEqual(applyUserChange('', 'erin', { hash: '$e' }), { ok: true, text: 'erin:$e\n', action: 'created', line: 1 });
  assert.deepEqual(applyUserChange('a:$1\nb:$2\nA:$3\n', 'a', { hash: '$n' }), { ok: false, error: 'user a is defined at lines 1 and 3: remove all but one first' });
});
