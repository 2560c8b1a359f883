// The local channel `l`: Maildir delivery, subaddresses, etc/aliases, postmaster, unknown users,
// unwritable mailboxes, an alias to a remote address queued to the channel the rewrite rules give it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createLocalJob } from '../../src/channels/local.js';
import { parseImtaCnf } from '../../src/config/imta-cnf.js';
import type { Diagnostic } from '../../src/config/types.js';
import { QueueStore } from '../../src/queue/index.js';
import { makeChannel, makeConfig, Spool } from './delivery-fixtures.js';

const spool = new Spool();
after(() => spool.remove());

const newFiles = (user: string) => {
  const dir = join(spool.root, 'mailbox', user, 'new');
  return existsSync(dir) ? readdirSync(dir).map((f) => readFileSync(join(dir, f), 'utf8')) : [];
};

test('l channel: Maildir delivery with aliases, subaddresses, postmaster, /dev/null, unknown users and unwritable mailboxes', async () => {
  for (const u of ['alice', 'bob']) mkdirSync(join(spool.root, 'mailbox', u), { recursive: true });
  // carol's Maildir is broken: tmp is a file.
  mkdirSync(join(spool.root, 'mailbox', 'carol'), { recursive: true });
  writeFileSync(join(spool.root, 'mailbox', 'carol', 'tmp'), 'not a directory');
  mkdirSync(join(spool.root, 'etc'), { recursive: true });
  writeFileSync(join(spool.root, 'etc', 'imta.cnf'), 'tsubame.sim.test  $U%$D@tsubame.sim.test\n.  $U%$H@tcp-daemon\n\nl\ntsubame.sim.test\n\ntcp_local smtp mx\ntcp-daemon\n');
  const diagnostics: Diagnostic[] = [];
  const imta = parseImtaCnf(join(spool.root, 'etc', 'imta.cnf'), diagnostics);
  assert.deepEqual(diagnostics, []);
  const channel = imta.channelByName.get('l')!;
  const config = makeConfig(spool.root, {
    imta,
    aliases: {
      team: ['alice', 'bob@tsubame.sim.test'],
      devnull: ['/dev/null'],
      forward: ['someone@elsewhere.test'],
      chain: ['team'],
      half: ['alice', 'ghost'],
    },
  });
  const job = await createLocalJob(spool.context(config, channel));
  const item = spool.message('sender@sim.test', [
    'alice@tsubame.sim.test',
    'Alice+lists@tsubame.sim.test',
    'team@tsubame.sim.test',
    'devnull@tsubame.sim.test',
    'postmaster@tsubame.sim.test',
    'nobody@tsubame.sim.test',
    'forward@tsubame.sim.test',
    'carol@tsubame.sim.test',
    'chain@tsubame.sim.test',
    'half@tsubame.sim.test',
  ]);
  item.envelope.recipients[9]!.state = 'delivered'; // already done: must be skipped
  const [o] = await job.deliver([item]);
  const by = Object.fromEntries(o!.recipients.map((r) => [r.address, r]));
  assert.equal(o!.recipients.length, 9, 'only pending recipients are reported');
  assert.equal(by['alice@tsubame.sim.test']!.result, 'delivered');
  assert.equal(by['Alice+lists@tsubame.sim.test']!.result, 'delivered');
  assert.equal(by['team@tsubame.sim.test']!.result, 'delivered');
  assert.equal(by['chain@tsubame.sim.test']!.result, 'delivered');
  assert.equal(by['devnull@tsubame.sim.test']!.result, 'delivered');
  assert.match(by['devnull@tsubame.sim.test']!.status, /discarded/);
  assert.equal(by['postmaster@tsubame.sim.test']!.result, 'delivered');
  assert.equal(by['nobody@tsubame.sim.test']!.result, 'failed');
  assert.match(by['nobody@tsubame.sim.test']!.status, /^550 5\.1\.1 /);
  // An alias to a remote address: a copy queued to the channel the rewrite rules route it to, from the sender.
  assert.equal(by['forward@tsubame.sim.test']!.result, 'delivered');
  assert.match(by['forward@tsubame.sim.test']!.status, /^250 2\.0\.0 1 copy queued for other addresses$/);
  assert.equal(o!.enqueued?.length, 1);
  assert.equal(o!.enqueued[0]!.channel, 'tcp_local');
  const copy = await new QueueStore({ queueDir: join(spool.root, 'queue'), corruptDir: join(spool.root, 'corrupt'), subdirs: () => 0 }).readMessage(o!.enqueued[0]!.path);
  assert.equal(copy.envelope.held, false, 'released once the expansion finished');
  assert.equal(copy.envelope.from, 'sender@sim.test');
  assert.deepEqual(copy.envelope.recipients.map((r) => [r.address, r.orcpt]), [['someone@elsewhere.test', 'rfc822;forward@tsubame.sim.test']]);
  assert.match(copy.body.toString('latin1'), /^Delivered-To: forward@tsubame\.sim\.test\r\nFrom: <sender@sim\.test>/);
  assert.equal(by['carol@tsubame.sim.test']!.result, 'deferred');
  assert.match(by['carol@tsubame.sim.test']!.status, /^451 4\.2\.0 /);

  // alice: direct, +lists, team, chain → 4 copies; bob: team, chain → 2; postmaster created.
  const alice = newFiles('alice');
  assert.equal(alice.length, 4);
  assert.equal(newFiles('bob').length, 2);
  assert.equal(newFiles('postmaster').length, 1);
  assert.ok(existsSync(join(spool.root, 'mailbox', 'postmaster', 'cur')));
  assert.equal(newFiles('ghost').length, 0);
  const direct = alice.find((m) => m.includes('Delivered-To: alice@tsubame.sim.test'))!;
  // LF line ends in the Maildir file, as Postfix's local and Dovecot write them.
  assert.match(direct, /^Return-Path: <sender@sim\.test>\nDelivered-To: alice@tsubame\.sim\.test\nFrom: <sender@sim\.test>/);
  assert.match(direct, /\n\nHello msg1\.\n/);
  assert.deepEqual(readdirSync(join(spool.root, 'mailbox', 'alice', 'tmp')), [], 'tmp/ is left empty');
  const names = readdirSync(join(spool.root, 'mailbox', 'alice', 'new'));
  assert.ok(names.every((n) => /^\d+\.\d+_\d+_\d+\.tsubame\.sim\.test$/.test(n)), names.join(' '));
  await job.close();
});

test('l channel: an alias list with an unknown member delivers to the others and says so', async () => {
  const channel = makeChannel({ name: 'l', smtp: false });
  mkdirSync(join(spool.root, 'mailbox', 'dave'), { recursive: true });
  const config = makeConfig(spool.root, { channels: [channel], aliases: { half: ['dave', 'ghost'], loopa: ['loopb'], loopb: ['loopa'] } });
  const job = await createLocalJob(spool.context(config, channel));
  const [o] = await job.deliver([spool.message('', ['half@x.test', 'loopa@x.test'])]);
  assert.equal(o!.recipients[0]!.result, 'delivered');
  assert.match(o!.recipients[0]!.status, /1 member failed: ghost@x\.test/);
  assert.match(newFiles('dave')[0]!, /^Return-Path: <>\n/);
  assert.equal(o!.recipients[1]!.result, 'failed', 'an alias cycle with no mailbox is unknown');
});
