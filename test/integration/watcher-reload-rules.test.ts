// Live reload of imta.cnf on a started instance: an edit is applied to new sessions without a
// restart while an open session keeps its rules; a broken edit changes nothing and says why
// with file:line (log and `imsimta reload`); a burst of writes makes one reload. etc/mappings,
// etc/dkim/ (the DKIM keys file and keys) and etc/shaping.cnf are watched and checked the same way.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeInstance, runCli, waitFor } from '../helpers/instance.js';
import type { MtaInstance } from '../helpers/running-instance.js';
import { ACCEPT_BLOCKED, REFUSE_BLOCKED, SmtpTalk, aliceMessages, imtaCnf, logRecords, settledReloads, startMta, swaks, watcherStatus } from './reload-harness.js';

const ADDRESS = '127.0.11.1';
let mta: MtaInstance;

before(async () => {
  mta = await startMta({ address: ADDRESS });
});
after(async () => mta?.cleanup());

const send = (to: string) => swaks(ADDRESS, mta.port, ['--from', 'sender@client.test', '--to', to]);

test('an edit that accepts a refused domain applies to new sessions; a session opened before keeps its rules', async () => {
  const refused = await send('alice@blocked.test');
  assert.notEqual(refused.code, 0);
  assert.match(refused.stdout, /550 5\.1\.2 Mail to blocked\.test is not accepted/);

  // A session opened before the edit.
  const old = await SmtpTalk.open(ADDRESS, mta.port);
  try {
    assert.equal((await old.reply()).code, 220);
    assert.equal((await old.command('EHLO client.test')).code, 250);
    assert.equal((await old.command('MAIL FROM:<sender@client.test>')).code, 250);

    const before = (await watcherStatus(mta)).reloads.watched;
    mta.inst.write('etc/imta.cnf', imtaCnf(ACCEPT_BLOCKED));
    await settledReloads(mta, (r) => r.watched > before, 'the edit to be reloaded');

    // A new session: accepted and delivered, no restart.
    const accepted = await send('alice@blocked.test');
    assert.equal(accepted.code, 0, accepted.stdout + accepted.stderr);
    assert.match(accepted.stdout, /250 2\.0\.0 Ok: queued as/);
    await waitFor(() => aliceMessages(mta).length === 1, { what: 'the message in mailbox/alice', timeoutMs: 15_000 });

    // The old session still refuses it, as the rules it started with say.
    const rcpt = await old.command('RCPT TO:<alice@blocked.test>');
    assert.equal(rcpt.code, 550, rcpt.text);
    assert.match(rcpt.text, /not accepted/);
    assert.equal((await old.command('QUIT')).code, 221);
  } finally {
    old.close();
  }
  const reloads = logRecords(mta, 'watcher.log').filter((r) => r.msg === 'configuration reloaded');
  assert.ok(reloads.some((r) => r.trigger === 'watch' && Array.isArray(r.files) && (r.files as string[]).includes('imta.cnf')), JSON.stringify(reloads));
});

test('a broken edit is rejected with file:line in the log and in `imsimta reload`; the old rules stay', async () => {
  const before = (await watcherStatus(mta)).reloads;
  // Would refuse blocked.test again if it were applied; line 8 is not a host line.
  const broken = imtaCnf(REFUSE_BLOCKED).replace('l\nlocalhost\n', 'l\nlocalhost is here\n');
  const brokenLine = broken.split('\n').indexOf('localhost is here') + 1;
  mta.inst.write('etc/imta.cnf', broken);
  await settledReloads(mta, (r) => r.rejected > before.rejected, 'the broken edit to be rejected');

  const where = new RegExp(`etc/imta\\.cnf:${brokenLine}: error: `);
  const rejected = logRecords(mta, 'watcher.log').filter((r) => r.level === 50 && /configuration rejected/.test(String(r.msg)));
  assert.equal(rejected.length, 1, JSON.stringify(rejected));
  assert.match((rejected[0]!.errors as string[]).join('\n'), where);
  assert.match(String(rejected[0]!.msg), where);

  const cmd = await mta.imsimta(['reload']);
  assert.equal(cmd.code, 1);
  assert.equal(cmd.stdout, '');
  assert.match(cmd.stderr, /reload rejected, the running instance keeps its last good configuration/);
  assert.match(cmd.stderr, where);
  assert.doesNotMatch(cmd.stderr, /\n\s+at /);

  // Still the last good rules: blocked.test is accepted.
  const accepted = await send('alice@blocked.test');
  assert.equal(accepted.code, 0, accepted.stdout);
  assert.equal((await watcherStatus(mta)).reloads.watched, before.watched);

  // Fixed: `imsimta reload` applies it and says so in one line.
  mta.inst.write('etc/imta.cnf', imtaCnf(ACCEPT_BLOCKED, 'fixed'));
  const ok = await mta.imsimta(['reload']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, new RegExp(`^configuration reloaded: 4 rewrite rules, 2 channels; SMTP on ${ADDRESS.replace(/\./g, '\\.')}:${mta.port}; \\d+ SMTP server process(es)? switched; job controller (reloaded|kept its configuration)\\n$`));
});

test('five writes within 100 ms (the last one a temp file renamed over it) make exactly one reload', async () => {
  // Nothing of the previous test is still waiting.
  const before = await settledReloads(mta, () => true, 'a quiet watcher');
  const records = () => logRecords(mta, 'watcher.log').filter((r) => r.msg === 'configuration reloaded' && r.trigger === 'watch').length;
  const recordsBefore = records();
  for (let i = 0; i < 5; i++) {
    const text = imtaCnf(i % 2 ? REFUSE_BLOCKED : ACCEPT_BLOCKED, `burst ${i}`);
    if (i === 4) {
      // The last one as editors save: a temporary file renamed over the old one.
      mta.inst.write('etc/.imta.cnf.swp', text);
      renameSync(join(mta.root, 'etc', '.imta.cnf.swp'), join(mta.root, 'etc', 'imta.cnf'));
    } else {
      mta.inst.write('etc/imta.cnf', text);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  const after = await settledReloads(mta, (r) => r.watched > before.watched, 'the burst to be reloaded');
  assert.equal(after.watched, before.watched + 1);
  await waitFor(() => records() === recordsBefore + 1, { what: 'the reload record' });
  assert.equal(records(), recordsBefore + 1);
  assert.equal(after.rejected, before.rejected);

  // The last write is what runs: burst 4 accepts blocked.test.
  const accepted = await send('alice@blocked.test');
  assert.equal(accepted.code, 0, accepted.stdout);
});

test('etc/mappings is watched: a good edit becomes the configuration in force, a broken one is rejected with file:line', async () => {
  const inForce = () => readFileSync(join(mta.root, 'run', 'config-in-force', 'mappings'), 'utf8');
  const good = 'PORT_ACCESS\n\n  TCP|*|*|192.0.2.*|*   $NGo$ away\n  *                    $Y\n';
  let before = await settledReloads(mta, () => true, 'a quiet watcher');
  mta.inst.write('etc/mappings', good);
  let now = await settledReloads(mta, (r) => r.watched > before.watched, 'the new mappings file to be reloaded');
  assert.equal(now.rejected, before.rejected);
  assert.equal(inForce(), good);

  before = now;
  mta.inst.write('etc/mappings', good.replace('$NGo$ away', '$NGo away'));
  now = await settledReloads(mta, (r) => r.rejected > before.rejected, 'the broken mappings edit to be rejected');
  assert.equal(now.watched, before.watched);
  const where = /etc\/mappings:3: error: entry has text after its template: "away"/;
  const rejected = logRecords(mta, 'watcher.log').filter((r) => r.level === 50 && /configuration rejected/.test(String(r.msg)));
  assert.match(String(rejected.at(-1)?.msg), where);
  assert.equal(inForce(), good, 'the last good mappings stay in force');
  const cmd = await mta.imsimta(['reload']);
  assert.equal(cmd.code, 1);
  assert.match(cmd.stderr, where);

  // Removed again: no tables, which is a valid configuration.
  before = await settledReloads(mta, () => true, 'a quiet watcher'); // the command counted a rejection too
  rmSync(join(mta.root, 'etc', 'mappings'));
  now = await settledReloads(mta, (r) => r.watched > before.watched, 'the removal to be reloaded');
  assert.equal(now.rejected, before.rejected);
});

test('etc/dkim/ is watched: a new key comes into force, a key replaced under its name too, a key file gone is rejected with etc/dkim/keys:LINE', async () => {
  const inForce = (rel: string) => readFileSync(join(mta.root, 'run', 'config-in-force', rel), 'latin1');
  const keyFile = join(mta.root, 'etc', 'dkim', 'example.com.s1.pem');
  let before = await settledReloads(mta, () => true, 'a quiet watcher');
  const made = await mta.imsimta(['dkim', 'keygen', 'example.com', 's1']);
  assert.equal(made.code, 0, made.stderr);
  await waitFor(() => /^example\.com s1 /m.test(inForce('dkim/keys')), { timeoutMs: 20_000, what: 'the new keys file in force' });
  let now = await settledReloads(mta, () => true, 'a quiet watcher');
  assert.ok(now.watched > before.watched);
  assert.equal(now.rejected, before.rejected);
  const first = readFileSync(keyFile, 'latin1');
  assert.equal(inForce('dkim/example.com.s1.pem'), first);

  // Rotated in place (same file name, new key): a change like any other.
  before = now;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  now = await settledReloads(mta, (r) => r.watched > before.watched, 'the replaced key to be reloaded');
  assert.equal(now.rejected, before.rejected);
  assert.notEqual(inForce('dkim/example.com.s1.pem'), first);

  before = now;
  rmSync(keyFile);
  await settledReloads(mta, (r) => r.rejected > before.rejected, 'the missing key to be rejected');
  const where = new RegExp(`etc/dkim/keys:2: error: cannot read key file ${keyFile.replace(/\./g, '\\.')}: ENOENT`);
  const rejected = logRecords(mta, 'watcher.log').filter((r) => r.level === 50 && /configuration rejected/.test(String(r.msg)));
  assert.match(String(rejected.at(-1)?.msg), where);
  assert.match(inForce('dkim/keys'), /^example\.com s1 /m, 'the last good keys stay in force');

  // The keys file removed too: no signing, a valid configuration again.
  before = await settledReloads(mta, () => true, 'a quiet watcher');
  rmSync(join(mta.root, 'etc', 'dkim'), { recursive: true });
  now = await settledReloads(mta, (r) => r.watched > before.watched, 'the removal to be reloaded');
  assert.equal(now.rejected, before.rejected);
});

test('etc/shaping.cnf is watched: an edit comes into force, a broken one is rejected with etc/shaping.cnf:LINE and the last good one stays', async () => {
  const inForce = () => readFileSync(join(mta.root, 'run', 'config-in-force', 'shaping.cnf'), 'latin1');
  let before = await settledReloads(mta, () => true, 'a quiet watcher');
  mta.inst.write('etc/shaping.cnf', '[DESTINATION=gmail]\nMX_SUFFIX=*.google.com\nMAX_CONNECTIONS=4\n');
  let now = await settledReloads(mta, (r) => r.watched > before.watched, 'the new shaping.cnf to be reloaded');
  assert.equal(now.rejected, before.rejected);
  assert.match(inForce(), /MAX_CONNECTIONS=4/);
  const reloads = logRecords(mta, 'watcher.log').filter((r) => r.msg === 'configuration reloaded');
  assert.ok(reloads.some((r) => Array.isArray(r.files) && (r.files as string[]).includes('shaping.cnf')), JSON.stringify(reloads.at(-1)));

  before = now;
  mta.inst.write('etc/shaping.cnf', '[DESTINATION=gmail]\nMX_SUFFIX=*.google.com\nMAX_MESSAGE_RATE=fast\n');
  now = await settledReloads(mta, (r) => r.rejected > before.rejected, 'the broken shaping.cnf to be rejected');
  const rejected = logRecords(mta, 'watcher.log').filter((r) => r.level === 50 && /configuration rejected/.test(String(r.msg)));
  assert.match(String(rejected.at(-1)?.msg), /etc\/shaping\.cnf:3: error: MAX_MESSAGE_RATE must be a count per unit/);
  assert.match(inForce(), /MAX_CONNECTIONS=4/, 'the last good shaping stays in force');
  rmSync(join(mta.root, 'etc', 'shaping.cnf'));
  await settledReloads(mta, (r) => r.watched > now.watched, 'the removal to be reloaded');
});

test('`imsimta reload` on an instance that is not running says so and fails', async () => {
  const idle = makeInstance({ files: { 'etc/imta.cnf': imtaCnf(REFUSE_BLOCKED) } });
  try {
    const r = await runCli('imsimta', ['reload', '--root', idle.root]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^imsimta: tsubame is not running .*nothing to reload/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  } finally {
    idle.remove();
  }
});
