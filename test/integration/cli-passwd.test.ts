// `bin/imsimta passwd` as an operator or a script runs it, on temporary instances: the password
// from standard input (one line) or from a real pseudo-terminal without echo (two prompts), the
// entry created or updated atomically with the rest of the file, its mode and owner kept, and
// neither the password nor any hash ever printed.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseUsers } from '../../src/config/users.js';
import type { Diagnostic } from '../../src/config/types.js';
import { hashPassword, verifyPassword } from '../../src/directory/password-hash.js';
import { makeInstance, runCli, type CliResult, type TestInstance } from '../helpers/instance.js';
import { onTerminal, type PtyRun } from '../helpers/terminal.js';

const instances: TestInstance[] = [];
after(() => {
  for (const inst of instances) inst.remove();
});
function instance(): TestInstance {
  const inst = makeInstance({ shipped: true });
  instances.push(inst);
  return inst;
}
const passwd = (inst: TestInstance, args: string[], input: string | Buffer) => runCli('imsimta', ['passwd', ...args], { root: inst.root, input, timeoutMs: 60_000 });

/** The users of the instance's etc/users (asserting the file has no error). */
function usersOf(inst: TestInstance) {
  const diagnostics: Diagnostic[] = [];
  const config = parseUsers(join(inst.root, 'etc/users'), diagnostics);
  assert.deepEqual(diagnostics.filter((d) => d.severity === 'error'), []);
  return config.users;
}

/** Nothing secret in what the command printed. */
function assertNoSecrets(r: CliResult | { transcript: string }, password: string) {
  const text = 'transcript' in r ? r.transcript : r.stdout + r.stderr;
  assert.ok(!text.includes(password), `the password was printed:\n${text}`);
  assert.ok(!text.includes('$scrypt'), `a hash was printed:\n${text}`);
}

test('passwd from standard input creates etc/users (mode 0600) and the user, with addresses and the admin flag', async () => {
  const inst = instance();
  const r = await passwd(inst, ['Alice', '--addresses', 'alice.smith@example.com, sales@example.com', '--admin'], 'Tr0ub4dor&3\n');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `user alice created in ${join(inst.root, 'etc/users')} (line 1)\n`);
  assert.equal(r.stderr, '');
  assertNoSecrets(r, 'Tr0ub4dor&3');
  assert.equal(statSync(join(inst.root, 'etc/users')).mode & 0o777, 0o600);
  assert.equal(existsSync(join(inst.root, 'etc/.users.new')), false);
  const alice = usersOf(inst).get('alice')!;
  assert.deepEqual([alice.addresses, alice.admin, alice.hash?.ln], [['alice.smith@example.com', 'sales@example.com'], true, 15]);
  assert.equal(await verifyPassword('Tr0ub4dor&3', alice.hash!), true);
  assert.equal(await verifyPassword('Tr0ub4dor&3\n', alice.hash!), false);

  // cnbuild counts the user.
  const cn = await runCli('imsimta', ['cnbuild'], { root: inst.root });
  assert.equal(cn.code, 0, cn.stderr);
  // The shipped submission services are off without a certificate: a note line each follows.
  assert.match(cn.stdout, /^configuration OK: .*, 1 user(, \d+ warnings?)?\n(?:\S+: note: \[SERVICE=SUBMISSIONS?\] .*\n){2}$/);
});

test('an update keeps every other line byte for byte, the user\'s addresses and flag unless given, the mode and the owner', async () => {
  const inst = instance();
  const file = join(inst.root, 'etc/users');
  const bob = await hashPassword('bob-pw', { ln: 10, r: 8, p: 1 });
  const old = await hashPassword('old-pw', { ln: 10, r: 8, p: 1 });
  const before = [
    '! users of this instance',
    `bob:${bob}:bob@partner.example`,
    '# alice is the postmaster',
    `ALICE:!${old}:alice@partner.example:admin\r`, // locked, CRLF line
    '',
    '   # the end',
    '',
  ].join('\n');
  writeFileSync(file, before);
  chmodSync(file, 0o640);
  chownSync(file, 1, 1); // daemon:daemon, as the service user would own it

  const r = await passwd(inst, ['alice'], 'new-pw\n');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `user alice updated in ${file} (line 4)\n`);
  assertNoSecrets(r, 'new-pw');
  const after = readFileSync(file, 'utf8').split('\n');
  const expected = before.split('\n');
  assert.equal(after.length, expected.length);
  for (const i of [0, 1, 2, 4, 5, 6]) assert.equal(after[i], expected[i], `line ${i + 1}`);
  assert.match(after[3]!, /^ALICE:\$scrypt\$ln=15,r=8,p=1\$[^:]+:alice@partner\.example:admin\r$/);
  const st = statSync(file);
  assert.deepEqual([st.mode & 0o777, st.uid, st.gid], [0o640, 1, 1]);
  const users = usersOf(inst);
  assert.equal(await verifyPassword('new-pw', users.get('alice')!.hash!), true, 'setting a password unlocks');
  assert.equal(await verifyPassword('bob-pw', users.get('bob')!.hash!), true);

  // --addresses replaces the list ('' empties it); --no-admin drops the flag.
  assert.equal((await passwd(inst, ['alice', '--addresses', 'a@x.example,b@x.example', '--no-admin'], 'new-pw\n')).code, 0);
  assert.deepEqual([usersOf(inst).get('alice')!.addresses, usersOf(inst).get('alice')!.admin], [['a@x.example', 'b@x.example'], false]);
  assert.equal((await passwd(inst, ['alice', '--addresses='], 'new-pw\n')).code, 0);
  assert.deepEqual(usersOf(inst).get('alice')!.addresses, []);
  assert.match(readFileSync(file, 'utf8').split('\n')[3]!, /^ALICE:\$scrypt\$[^:]+\r$/);
});

test('a new file made by root belongs to the owner of etc/ (the instance\'s user)', async () => {
  const inst = instance();
  chownSync(join(inst.root, 'etc'), 1, 1);
  const r = await passwd(inst, ['carol'], 'carol-pw\n');
  assert.equal(r.code, 0, r.stderr);
  const st = statSync(join(inst.root, 'etc/users'));
  assert.deepEqual([st.mode & 0o777, st.uid, st.gid], [0o600, 1, 1]);
});

test('bad arguments are a usage error (exit 2); a bad password, a held lock or a duplicated user change nothing (exit 1)', async () => {
  const inst = instance();
  const file = join(inst.root, 'etc/users');
  assert.equal((await passwd(inst, ['alice'], 'first-pw\n')).code, 0);
  const before = readFileSync(file);

  const usage: Array<[string[], RegExp]> = [
    [[], /passwd needs a user name/],
    [['alice', 'bob'], /passwd takes one user name/],
    [['al ice'], /"al ice" is not a valid user name/],
    [['-x'], /unknown option -x/],
    [['../etc'], /is not a valid user name/],
    [['alice', '--addresses', 'not-an-address'], /--addresses: "not-an-address" is not an address/],
    [['alice', '--admin', '--no-admin'], /contradict/],
  ];
  for (const [args, message] of usage) {
    const r = await passwd(inst, args, 'pw\n');
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, message);
    assert.match(r.stderr, /\nusage: imsimta </);
  }
  const refused: Array<[string | Buffer, RegExp]> = [
    ['', /no password on standard input/],
    ['\n', /the password is empty: nothing changed/],
    ['one\ntwo\n', /more than one line/],
    ['nul\0inside\n', /NUL or line break/],
    ['x'.repeat(1025) + '\n', /longer than 1024 bytes/],
    [Buffer.alloc(70_000, 0x61), /more than 65536 bytes/],
  ];
  for (const [input, message] of refused) {
    const r = await passwd(inst, ['alice'], input);
    assert.equal(r.code, 1, String(input).slice(0, 20));
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
  assert.deepEqual(readFileSync(file), before);

  // Another passwd holds the lock: refused, and its file is left alone.
  writeFileSync(join(inst.root, 'etc/.users.new'), 'in progress');
  const locked = await passwd(inst, ['alice'], 'second-pw\n');
  assert.equal(locked.code, 1);
  assert.match(locked.stderr, /\.users\.new exists: another imsimta passwd is running, or one was interrupted/);
  assert.equal(readFileSync(join(inst.root, 'etc/.users.new'), 'utf8'), 'in progress');
  assert.deepEqual(readFileSync(file), before);

  unlinkSync(join(inst.root, 'etc/.users.new'));
  writeFileSync(file, `${before}${before}`);
  const twice = await passwd(inst, ['alice'], 'second-pw\n');
  assert.equal(twice.code, 1);
  assert.match(twice.stderr, /user alice is defined at lines 1 and 2: remove all but one first/);
  assert.equal(existsSync(join(inst.root, 'etc/.users.new')), false);
});

test('other broken lines: the user is still updated, but exit 1 with their file:line (the running instance keeps its last good users)', async () => {
  const inst = instance();
  const file = join(inst.root, 'etc/users');
  writeFileSync(file, 'garbage line\n', { mode: 0o600 });
  const r = await passwd(inst, ['dave'], 'dave-pw\n');
  assert.equal(r.code, 1);
  assert.equal(r.stdout, `user dave created in ${file} (line 2)\n`);
  assert.match(r.stderr, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:1: error: expected name:password-hash`));
  assert.match(r.stderr, /has errors: a running instance keeps its last good users until they are fixed\n$/);
  assertNoSecrets(r, 'dave-pw');
  const cn = await runCli('imsimta', ['cnbuild'], { root: inst.root });
  assert.equal(cn.code, 1);
  assert.match(cn.stderr, /etc\/users:1: error: /);
});

test('--help prints the usage and the options on stdout', async () => {
  const r = await runCli('imsimta', ['passwd', '--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^usage: imsimta passwd USER \[--addresses ADDR,ADDR…\] \[--admin\|--no-admin\] \[--root DIR\]\n/);
  assert.match(r.stdout, /--no-admin/);
});

// ---------------------------------------------------------------- on a terminal

/** Runs `imsimta passwd ARGS` on a new pseudo-terminal, answering each prompt when it shows. */
function onTerminalPasswd(inst: TestInstance, args: string[], answers: Array<[string, string]>): Promise<PtyRun> {
  return onTerminal('imsimta', ['passwd', '--root', inst.root, ...args], { answers });
}

test('on a terminal: asked twice, nothing echoed; a mismatch, Ctrl-C or Ctrl-D change nothing; backspace edits', async () => {
  const inst = instance();
  const file = join(inst.root, 'etc/users');
  const ok = await onTerminalPasswd(inst, ['erin'], [['New password: ', 'correct horse\r'], ['Retype new password: ', 'correct horse\r']]);
  assert.equal(ok.timed_out, false);
  assert.equal(ok.code, 0, ok.transcript);
  assert.equal(ok.transcript, `New password: \r\nRetype new password: \r\nuser erin created in ${file} (line 1)\r\n`);
  assertNoSecrets(ok, 'correct horse');
  assert.equal(await verifyPassword('correct horse', usersOf(inst).get('erin')!.hash!), true);
  const before = readFileSync(file);

  const mismatch = await onTerminalPasswd(inst, ['erin'], [['New password: ', 'one thing\r'], ['Retype new password: ', 'another\r']]);
  assert.equal(mismatch.code, 1);
  assert.match(mismatch.transcript, /the passwords do not match: nothing changed/);
  assertNoSecrets(mismatch, 'one thing');
  const interrupted = await onTerminalPasswd(inst, ['erin'], [['New password: ', 'half\r'], ['Retype new password: ', 'ha\x03']]);
  assert.equal(interrupted.code, 130, interrupted.transcript);
  assert.match(interrupted.transcript, /interrupted: nothing changed/);
  const eof = await onTerminalPasswd(inst, ['erin'], [['New password: ', '\x04']]);
  assert.equal(eof.code, 1);
  assert.match(eof.transcript, /no password given: nothing changed/);
  assert.deepEqual(readFileSync(file), before);

  // Backspace (DEL) and Ctrl-U edit the line; both answers typed ahead in one go.
  const edited = await onTerminalPasswd(inst, ['erin'], [['New password: ', 'wrong\x15new-ones\x7f\rnew-one\r']]);
  assert.equal(edited.code, 0, edited.transcript);
  assertNoSecrets(edited, 'new-one');
  assert.equal(await verifyPassword('new-one', usersOf(inst).get('erin')!.hash!), true);
});
