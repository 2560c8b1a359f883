// etc/users on a started instance: an edit is reloaded live like the other files of etc/; an
// edit into garbage is rejected with file:line (watcher log, `imsimta reload`) and the last good
// users stay in force — in the watcher's copy of etc/ and for every process that loads the
// configuration in force (a server process starting now), so AUTH keeps working with them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfigInForce } from '../../src/config/in-force.js';
import { filesDirectory, hashPassword } from '../../src/directory/index.js';
import type { MtaInstance } from '../helpers/running-instance.js';
import { logRecords, settledReloads, startMta, watcherStatus } from './reload-harness.js';

const ADDRESS = '127.0.21.1';
const CHEAP = { ln: 10, r: 8, p: 1 };
let mta: MtaInstance;

before(async () => {
  mta = await startMta({ address: ADDRESS });
});
after(async () => mta?.cleanup());

function writeUsers(text: string): void {
  mta.inst.write('etc/users', text);
  chmodSync(join(mta.root, 'etc/users'), 0o600);
}

async function authenticates(login: string, password: string): Promise<boolean> {
  const { config } = loadConfigInForce(mta.root);
  return (await filesDirectory(config).authenticate(login, password)).ok;
}

test('a new etc/users is applied live; an edit into garbage is rejected with file:line and the old users stay in force', async () => {
  const start = await settledReloads(mta, () => true, 'a quiet watcher');
  writeUsers(`! users\nalice:${await hashPassword('alice-pw', CHEAP)}:alice@partner.example\n`);
  const applied = await settledReloads(mta, (r) => r.watched > start.watched, 'etc/users to be reloaded');
  const reloads = logRecords(mta, 'watcher.log').filter((r) => r.msg === 'configuration reloaded' && r.trigger === 'watch');
  assert.ok(reloads.some((r) => (r.files as string[] | undefined)?.includes('users')), JSON.stringify(reloads));
  const inForce = join(mta.root, 'run/config-in-force/users');
  assert.match(readFileSync(inForce, 'utf8'), /^alice:/m);
  assert.equal(await authenticates('alice', 'alice-pw'), true);

  // Garbage: alice's password changed and a broken line; neither applies.
  writeUsers(`! users\nalice:${await hashPassword('changed-pw', CHEAP)}\nthis is not a user line\nbob:$scrypt$ln=99\n`);
  await settledReloads(mta, (r) => r.rejected > applied.rejected, 'the broken etc/users to be rejected');
  const rejected = logRecords(mta, 'watcher.log').filter((r) => r.level === 50 && /configuration rejected/.test(String(r.msg)));
  assert.equal(rejected.length, 1, JSON.stringify(rejected));
  const errors = (rejected[0]!.errors as string[]).join('\n');
  assert.match(errors, /etc\/users:3: error: expected name:password-hash/);
  assert.match(errors, /etc\/users:4: error: user bob: /);
  assert.doesNotMatch(JSON.stringify(rejected), /\$scrypt\$ln=10/, 'a hash in the log');

  const cmd = await mta.imsimta(['reload']);
  assert.equal(cmd.code, 1);
  assert.match(cmd.stderr, /reload rejected, the running instance keeps its last good configuration/);
  assert.match(cmd.stderr, /etc\/users:3: error: /);

  // The last good users are what a process loading the configuration now gets.
  assert.match(readFileSync(inForce, 'utf8'), /alice:\$scrypt\$ln=10,r=8,p=1\$[^:]+:alice@partner\.example/);
  const loaded = loadConfigInForce(mta.root);
  assert.match(loaded.etcErrors ?? '', /etc\/users:3: error/);
  assert.deepEqual([...loaded.config.users.users.keys()], ['alice']);
  assert.equal(await authenticates('alice', 'alice-pw'), true);
  assert.equal(await authenticates('alice', 'changed-pw'), false);
  assert.equal((await watcherStatus(mta)).reloads.watched, applied.watched);

  // Fixed: applied, and the new password works.
  writeUsers(`alice:${await hashPassword('changed-pw', CHEAP)}\n`);
  await settledReloads(mta, (r) => r.watched > applied.watched, 'the fixed etc/users to be reloaded');
  assert.equal(await authenticates('alice', 'changed-pw'), true);
  assert.equal(loadConfigInForce(mta.root).etcErrors, null);
});
