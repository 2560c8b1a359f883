// The files source of the directory: which addresses are local (the rewrite rules' routing to
// channel l), sender ownership decisions, authentication (right, wrong, unknown, locked, odd
// logins) with the same work for an unknown user, and a burst of checks that leaves the event
// loop and file I/O responsive.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { loadInstanceConfigOrThrow } from '../../src/config/load.js';
import type { InstanceConfig } from '../../src/config/types.js';
import type { UserEntry } from '../../src/config/users.js';
import { KdfGate, decideSender, dummyHashFor, filesDirectory, hashPassword, localityOf, type DirectoryUser } from '../../src/directory/index.js';
import { makeInstance, type TestInstance } from '../helpers/instance.js';

const IMTA = `! test instance
localhost              $U%localhost@localhost
example.com            $U%$D@localhost
.example.com           $U%$H$D@localhost
relay.example          $U%$D@tcp-daemon
.                      $U%$H@tcp-daemon
[]                     $U%[$L]@tcp-daemon

l
localhost

tcp_local smtp mx
tcp-daemon
`;

const instances: TestInstance[] = [];
after(() => {
  for (const inst of instances) inst.remove();
});

/** A loaded configuration with these etc/users lines. */
function configWith(usersText: string): InstanceConfig {
  const inst = makeInstance({ files: { 'etc/imta.cnf': IMTA, 'etc/option.dat': 'LOCAL_HOST=mx.example.net\n', 'etc/users': usersText } });
  instances.push(inst);
  return loadInstanceConfigOrThrow(inst.root);
}

const CHEAP = { ln: 10, r: 8, p: 1 };
let USERS = '';
before(async () => {
  USERS = [
    `alice:${await hashPassword('alice-pw', CHEAP)}:sales@example.com, Alice.Smith@Partner.example`,
    `root:${await hashPassword('root-pw', CHEAP)}::admin`,
    'carol:*',
    `dave:!${await hashPassword('dave-pw', CHEAP)}`,
  ].join('\n');
});

const alice: DirectoryUser = { name: 'alice', addresses: ['sales@example.com', 'Alice.Smith@Partner.example'], admin: false };

test('locality: an address is local when the rules route it to channel l; its user is the local part without +tag, in lower case', () => {
  const locality = localityOf(configWith('').imta);
  const cases: Array<[string, string | null]> = [
    ['alice@example.com', 'alice'],
    ['ALICE+news@Example.COM', 'alice'],
    ['"alice"@example.com', 'alice'],
    ['alice@sub.example.com', 'alice'], // .example.com rule
    ['alice@localhost', 'alice'],
    ['alice@mx.example.net', 'alice'], // LOCAL_HOST
    ['alice@relay.example', null],
    ['alice@elsewhere.test', null],
    ['alice@[127.0.0.1]', null],
    ['alice', null],
    ['@relay.example:alice@example.com', null],
    ['', null],
    ['not an address', null],
  ];
  for (const [address, user] of cases) assert.equal(locality.localUserOf(address), user, address);
  // Only domains named by a rule or a host of l can be listed.
  assert.deepEqual([...locality.domains].sort(), ['example.com', 'localhost', 'mx.example.net']);
});

test('sender ownership: own name at each local domain, listed addresses (and their +tag forms), the null sender; an admin any address', () => {
  const { localUserOf } = localityOf(configWith('').imta);
  const cases: Array<[string, string]> = [
    ['alice@example.com', 'own-local-address'],
    ['Alice+lists@EXAMPLE.com', 'own-local-address'],
    ['alice@sub.example.com', 'own-local-address'],
    ['alice@mx.example.net', 'own-local-address'],
    ['<alice@localhost>', 'own-local-address'],
    ['sales@example.com', 'listed-address'],
    ['Sales+q3@example.com', 'listed-address'],
    ['alice.smith@partner.example', 'listed-address'],
    ['"alice.smith"@PARTNER.example.', 'listed-address'],
    ['', 'null-sender'],
    ['<>', 'null-sender'],
    ['bob@example.com', 'not-owner'],
    ['alice@relay.example', 'not-owner'],
    ['alice@elsewhere.test', 'not-owner'],
    ['alice%evil.test@example.com', 'not-owner'],
    ['alicex@example.com', 'not-owner'],
    ['smith@partner.example', 'not-owner'],
    ['sales@sub.example.com', 'not-owner'],
    ['@relay.example:alice@example.com', 'not-owner'],
    ['alice', 'not-owner'],
    ['garbage <<>>', 'not-owner'],
  ];
  const decide = (user: DirectoryUser, address: string) => {
    const d = decideSender(user, address, localUserOf);
    return d.ok ? d.why : d.reason;
  };
  for (const [address, expected] of cases) assert.equal(decide(alice, address), expected, address);
  const admin: DirectoryUser = { name: 'root', addresses: [], admin: true };
  for (const address of ['bob@example.com', 'anyone@elsewhere.test', 'alice@example.com']) assert.equal(decide(admin, address), 'admin', address);
  assert.equal(decide(admin, ''), 'null-sender');
});

test('authenticate: the right password returns the user; a wrong one, an unknown or locked user and odd logins all fail as "invalid"', async () => {
  const dir = filesDirectory(configWith(USERS));
  const ok = await dir.authenticate('alice', 'alice-pw');
  assert.deepEqual(ok, { ok: true, user: alice });
  assert.deepEqual(await dir.authenticate('ALICE', 'alice-pw'), ok, 'login names are case-insensitive');
  for (const login of ['alice@example.com', 'Alice@Sub.Example.com', 'alice@mx.example.net', 'alice@localhost']) {
    assert.deepEqual(await dir.authenticate(login, 'alice-pw'), ok, `${login}: name@ a local domain is the user`);
  }
  assert.deepEqual(await dir.authenticate('root', 'root-pw'), { ok: true, user: { name: 'root', addresses: [], admin: true } });
  const why = async (login: string, password: string) => {
    const r = await dir.authenticate(login, password);
    assert.equal(r.ok, false, `${login}/${password}`);
    return r.ok ? '' : `${r.reason}/${r.why}`;
  };
  assert.equal(await why('alice', 'Alice-pw'), 'invalid/wrong-password');
  assert.equal(await why('alice', ''), 'invalid/wrong-password');
  assert.equal(await why('alice', 'alice-pw\0'), 'invalid/wrong-password');
  assert.equal(await why('alice', 'alice-pw'.repeat(500)), 'invalid/wrong-password');
  assert.equal(await why('nobody', 'alice-pw'), 'invalid/unknown-user');
  assert.equal(await why('carol', ''), 'invalid/locked');
  assert.equal(await why('dave', 'dave-pw'), 'invalid/locked', 'a ! in front of the hash locks even the right password out');
  for (const login of ['', 'alice ', 'al/ice', '../alice', 'alice\0', 'alice@elsewhere.test', 'alice@relay.example', 'alice+x@example.com', '"alice"@example.com', '@example.com', 'alice@', 'x'.repeat(10_000)]) {
    assert.equal(await why(login, 'alice-pw'), 'invalid/unknown-user', JSON.stringify(login.slice(0, 20)));
  }
});

test('addressesOf and maySendAs through the directory', async () => {
  const dir = filesDirectory(configWith(USERS));
  const listed = await dir.addressesOf('Alice');
  assert.ok(listed.ok);
  assert.deepEqual([...listed.addresses].sort(), ['Alice.Smith@Partner.example', 'alice@example.com', 'alice@localhost', 'alice@mx.example.net', 'sales@example.com']);
  assert.deepEqual(await dir.addressesOf('nobody'), { ok: false, reason: 'unknown-user' });
  assert.deepEqual(await dir.maySendAs(alice, 'alice+x@example.com'), { ok: true, why: 'own-local-address' });
  assert.deepEqual(await dir.maySendAs(alice, 'root@example.com'), { ok: false, reason: 'not-owner' });
});

test('a password check that fails (scrypt out of memory) is "unavailable", a temporary failure, not a crash or a yes', async () => {
  class FailingGate extends KdfGate {
    override run<T>(): Promise<T> {
      return Promise.reject(new Error('Invalid scrypt params: memory limit exceeded'));
    }
  }
  const dir = filesDirectory(configWith(USERS), { gate: new FailingGate(1) });
  const r = await dir.authenticate('alice', 'alice-pw');
  assert.deepEqual(r, { ok: false, reason: 'unavailable', why: 'password check failed: Invalid scrypt params: memory limit exceeded' });
});

test('the dummy hash has the cost most users have (the default when none has a hash)', () => {
  const entry = (ln: number): UserEntry => ({ name: `u${ln}`, hash: { algorithm: 'scrypt', ln, r: 8, p: 1, salt: Buffer.alloc(16), hash: Buffer.alloc(32) }, addresses: [], admin: false, file: 'users', line: 1 });
  const d = dummyHashFor([entry(12), entry(14), entry(14), { ...entry(16), hash: null }]);
  assert.deepEqual([d.ln, d.r, d.p, d.salt.length, d.hash.length], [14, 8, 1, 16, 32]);
  const none = dummyHashFor([]);
  assert.deepEqual([none.ln, none.r, none.p], [15, 8, 1]);
});

/** Median time of `fn`, alternating with the others so load affects all alike. */
async function medians(fns: Array<() => Promise<unknown>>, rounds: number): Promise<number[]> {
  const times = fns.map(() => [] as number[]);
  for (let i = 0; i < rounds; i++) {
    for (const [k, fn] of fns.entries()) {
      const t = performance.now();
      await fn();
      times[k]!.push(performance.now() - t);
    }
  }
  return times.map((ts) => ts.sort((a, b) => a - b)[Math.floor(ts.length / 2)]!);
}

test('an unknown or locked user costs the same password hash as a wrong password (the time does not tell whether the user exists)', async () => {
  const cost = { ln: 14, r: 8, p: 1 };
  const text = [`alice:${await hashPassword('alice-pw', cost)}`, `bob:${await hashPassword('bob-pw', cost)}`, 'carol:*'].join('\n');
  const dir = filesDirectory(configWith(text), { gate: new KdfGate(1) });
  const [wrong, unknown, locked] = await medians(
    [() => dir.authenticate('alice', 'guess'), () => dir.authenticate('mallory', 'guess'), () => dir.authenticate('carol', 'guess')],
    7,
  );
  const detail = `wrong password ${wrong!.toFixed(1)} ms, unknown user ${unknown!.toFixed(1)} ms, locked ${locked!.toFixed(1)} ms`;
  // Without the dummy hash an unknown user answers in microseconds, hundreds of times faster.
  for (const t of [unknown!, locked!]) assert.ok(t > wrong! / 2 && t < wrong! * 2, detail);
});

test('a burst of 50 checks at the default cost runs off the event loop and leaves threads for file I/O', async () => {
  const text = `alice:${await hashPassword('alice-pw')}`;
  const gate = new KdfGate();
  const dir = filesDirectory(configWith(text), { gate });
  const scratch = mkdtempSync(join(tmpdir(), 'kdf-burst-'));
  try {
    const loop = monitorEventLoopDelay({ resolution: 5 });
    let burstDone = false;
    let peak = 0;
    const probes: number[] = [];
    // What queue I/O does meanwhile: a small write with fsync, then a stat (libuv thread pool calls, like scrypt).
    const probe = (async () => {
      const file = join(scratch, 'probe');
      while (!burstDone) {
        const t = performance.now();
        const fh = await open(file, 'w');
        await fh.write(Buffer.alloc(1024, 0x61));
        await fh.sync();
        await fh.close();
        await stat(file);
        probes.push(performance.now() - t);
        peak = Math.max(peak, gate.running);
      }
    })();
    loop.enable();
    const t0 = performance.now();
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => dir.authenticate(i % 2 ? 'alice' : `user${i}`, 'wrong')));
    const burst = performance.now() - t0;
    burstDone = true;
    await probe;
    loop.disable();
    assert.ok(results.every((r) => !r.ok && r.reason === 'invalid'));
    const slowestProbe = Math.max(...probes);
    const detail = `burst ${burst.toFixed(0)} ms, ${probes.length} file probes (slowest ${slowestProbe.toFixed(0)} ms), event loop delay p99 ${(loop.percentile(99) / 1e6).toFixed(1)} ms, gate ${gate.concurrency}`;
    assert.ok(peak <= gate.concurrency, detail);
    // The loop kept turning: no delay near the length of the burst.
    assert.ok(loop.percentile(99) / 1e6 < Math.min(250, burst / 4), detail);
    // File I/O was not queued behind the hashes (with no gate one probe waits for the whole burst).
    assert.ok(probes.length >= 10 && slowestProbe < burst / 3, detail);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});
