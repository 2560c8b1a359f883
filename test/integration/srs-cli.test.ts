// `bin/imsimta srs` as an operator runs it: keygen creates etc/srs.secrets (0600, a header, one
// secret), a second keygen puts a new secret first and keeps the old one, no secret is ever
// printed, cnbuild passes and then warns when the file is made readable by everyone; forward and
// reverse show what the instance makes of an address, a forged one exits 1 with the 550 reason;
// bad arguments are usage errors.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { makeInstance, runCli, type TestInstance } from '../helpers/instance.js';

const instances: TestInstance[] = [];
after(() => instances.forEach((i) => i.remove()));
const noStackTrace = (text: string) => assert.ok(!text.split('\n').some((l) => l.startsWith('    at ')), `stack trace in:\n${text}`);

function instance(): TestInstance {
  const inst = makeInstance({ shipped: true, files: { 'etc/option.dat': 'LOCAL_HOST=mx.example.com\nSRS_DOMAIN=srs.example.com\n' } });
  instances.push(inst);
  return inst;
}

const secretLines = (text: string) => text.split('\n').filter((l) => l.trim() && !l.startsWith('#'));

test('keygen: 0600 file with one secret; again: a new first secret, the old one kept; secrets never printed; cnbuild clean, then a warning at 0644', async () => {
  const inst = instance();
  const file = join(inst.root, 'etc/srs.secrets');
  const first = await runCli('imsimta', ['srs', 'keygen', '--root', inst.root]);
  assert.equal(first.code, 0, first.stderr);
  noStackTrace(first.stderr);
  assert.equal(first.stdout, '');
  assert.match(first.stderr, /created .*etc\/srs\.secrets: a new secret \(line 4\) signs from now on\n/);
  assert.match(first.stderr, /no channel of imta\.cnf has sourcesrs, destinationsrs and addresssrs/);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const one = secretLines(inst.read('etc/srs.secrets'));
  assert.equal(one.length, 1);
  assert.match(one[0]!, /^[A-Za-z0-9+/]{43}=$/); // 32 random octets in base64

  const second = await runCli('imsimta', ['srs', 'keygen', '--root', inst.root]);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, /updated .*: a new secret \(line 4\) signs from now on; the 1 older one still verifies bounces/);
  const two = secretLines(inst.read('etc/srs.secrets'));
  assert.equal(two.length, 2);
  assert.notEqual(two[0], one[0]);
  assert.equal(two[1], one[0], 'the old secret kept, second');
  assert.equal(statSync(file).mode & 0o777, 0o600, 'the mode kept');
  for (const out of [first.stdout, first.stderr, second.stdout, second.stderr]) for (const s of two) assert.equal(out.includes(s), false, 'a secret printed');

  const clean = await runCli('imsimta', ['cnbuild', '--root', inst.root]);
  assert.equal(clean.code, 0, clean.stderr);
  assert.doesNotMatch(clean.stderr, /srs\.secrets/);
  chmodSync(file, 0o644);
  const warned = await runCli('imsimta', ['cnbuild', '--root', inst.root]);
  assert.equal(warned.code, 0);
  assert.match(warned.stderr, /srs\.secrets:0: warning: readable by every user of the host \(mode 0644\)/);
});

test('forward and reverse with the instance settings; a forged address exits 1 with the 550 reason; usage errors exit 2', async () => {
  const inst = instance();
  const none = await runCli('imsimta', ['srs', 'forward', 'alice@orig.example', '--root', inst.root]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /holds no SRS secret: imsimta srs keygen makes one/);
  assert.equal((await runCli('imsimta', ['srs', 'keygen', '--root', inst.root])).code, 0);

  const fwd = await runCli('imsimta', ['srs', 'forward', 'alice@orig.example', '--root', inst.root]);
  assert.equal(fwd.code, 0, fwd.stderr);
  const address = fwd.stdout.trim();
  assert.match(address, /^SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=orig\.example=alice@srs\.example\.com$/);
  const rev = await runCli('imsimta', ['srs', 'reverse', address, '--root', inst.root]);
  assert.deepEqual([rev.code, rev.stdout], [0, 'alice@orig.example\n']);

  const forged = await runCli('imsimta', ['srs', 'reverse', address.replace('=alice@', '=mallory@'), '--root', inst.root]);
  assert.equal(forged.code, 1);
  assert.match(forged.stderr, /is refused \(550 5\.1\.1\): hash does not verify/);
  noStackTrace(forged.stderr);
  const notOurs = await runCli('imsimta', ['srs', 'reverse', 'alice@orig.example', '--root', inst.root]);
  assert.equal(notOurs.code, 1);
  assert.match(notOurs.stderr, /is not an SRS address at srs\.example\.com \(SRS_DOMAIN\)/);
  const local = await runCli('imsimta', ['srs', 'forward', 'bob@srs.example.com', '--root', inst.root]);
  assert.deepEqual([local.code, local.stdout], [0, 'bob@srs.example.com\n']);
  assert.match(local.stderr, /not rewritten: sender already at srs\.example\.com/);

  for (const args of [['srs'], ['srs', 'nosuch'], ['srs', 'forward'], ['srs', 'keygen', 'extra']]) {
    const r = await runCli('imsimta', [...args, '--root', inst.root]);
    assert.equal(r.code, 2, args.join(' '));
    noStackTrace(r.stderr);
  }
});
