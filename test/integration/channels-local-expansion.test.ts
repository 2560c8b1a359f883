// The local channel's list expansion against a real queue (issue 19), with the files source:
// `:include:` files that are missing or not files, lists that contain themselves through another,
// a 100,000-member list streamed into queue files (1,000 recipients each, the owner as envelope
// sender) with the memory of the process measured, and a directory that fails part way through
// an expansion (nothing it wrote is left behind). Failures go to the list's owner in a DSN (or the
// sender when the list has none) and to mail.log as R records; imsimta cnbuild warns of them.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { createLocalJob } from '../../src/channels/local.js';
import { expandForDelivery, type ExpansionDeps } from '../../src/channels/local-expansion.js';
import { instancePaths } from '../../src/common/instance.js';
import { silentLogger } from '../../src/common/logger.js';
import { MailLog, parseMailLogLine } from '../../src/common/mail-log.js';
import { loadInstanceConfigOrThrow } from '../../src/config/load.js';
import type { InstanceConfig } from '../../src/config/types.js';
import type { ChannelJob, DeliveryItem } from '../../src/channels/types.js';
import type { ListMember, RecipientDirectory, RecipientLookup } from '../../src/directory/types.js';
import { NoticeSender } from '../../src/notices/send.js';
import { queueStoreFor, type QueueStore } from '../../src/queue/index.js';
import { compileRewriter } from '../../src/rewrite/index.js';
import { makeInstance, runCli, type TestInstance } from '../helpers/instance.js';

const IMTA = `! expansion test
localhost            $U%localhost@localhost
.                    $U%$H@tcp-daemon

l
localhost

tcp_local smtp mx
tcp-daemon
`;

const instances: TestInstance[] = [];
after(() => instances.forEach((i) => i.remove()));

interface Setup {
  inst: TestInstance;
  config: InstanceConfig;
  store: QueueStore;
  job: ChannelJob;
}

async function setup(aliases: string, users: string[], files: Record<string, string> = {}): Promise<Setup> {
  const inst = makeInstance({ files: { 'etc/imta.cnf': IMTA, 'etc/option.dat': 'LOCAL_HOST=mta.expand.test\n', 'etc/aliases': aliases, ...files } });
  instances.push(inst);
  for (const u of users) mkdirSync(join(inst.root, 'mailbox', u, 'new'), { recursive: true });
  const config = loadInstanceConfigOrThrow(inst.root);
  const store = queueStoreFor(instancePaths(inst.root), config);
  const channel = config.imta.channelByName.get('l')!;
  const job = await createLocalJob({ root: inst.root, config, channel, logger: silentLogger(), openBody: (path) => store.openBody(path) });
  return { inst, config, store, job };
}

/** A message queued to channel l for `to`, as the SMTP server would queue it. */
async function queued(s: Setup, from: string, to: string[], subject = 'list test'): Promise<DeliveryItem> {
  const body = Buffer.from(`From: <${from || 'mailer-daemon@x.test'}>\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}@x.test>\r\n\r\nhello\r\n`);
  const [ref] = await s.store.enqueue(
    [{ channel: 'l', from, mailParams: {}, sourceChannel: 'tcp_local', clientAddress: '127.0.0.9', clientHelo: 'x.test', arrival: new Date(), recipients: to.map((address) => ({ address, original: address, orcpt: null, notify: null, state: 'pending' as const, status: null })) }],
    body,
  );
  return { ref: ref!, envelope: await s.store.readEnvelope(ref!.path) };
}

const inbox = (s: Setup, user: string) => {
  const dir = join(s.inst.root, 'mailbox', user, 'new');
  return existsSync(dir) ? readdirSync(dir).map((f) => readFileSync(join(dir, f), 'latin1')) : [];
};
const mailLog = (s: Setup) => readFileSync(join(s.inst.root, 'log', 'mail.log'), 'utf8').split('\n').map(parseMailLogLine).filter((r) => r !== null);

test(':include: files that are missing or not files: the other members get the mail, the owner a DSN naming each, mail.log an R record each; cnbuild warns', async () => {
  const dir = join(makeInstance().root, 'a-directory');
  mkdirSync(dir);
  const s = await setup(`team: alice, :include:/nonexistent/team.txt, :include:${dir}\nowner-team: bob\n`, ['alice', 'bob']);
  const item = await queued(s, 'sender@remote.test', ['team@localhost']);
  const [o] = await s.job.deliver([item]);
  const r = o!.recipients[0]!;
  assert.equal(r.result, 'delivered');
  assert.match(r.status, /^250 2\.0\.0 delivered to alice; 2 members failed \(reported to <owner-team@localhost>\)/);
  assert.equal(inbox(s, 'alice').length, 1);
  assert.match(inbox(s, 'alice')[0]!, /^Return-Path: <owner-team@localhost>\nDelivered-To: team@localhost\n/);
  // The DSN to owner-team (an alias of bob): queued to channel l, then delivered by the job.
  assert.equal(o!.enqueued?.length, 1);
  const notice = await s.store.readMessage(o!.enqueued[0]!.path);
  assert.deepEqual([notice.envelope.from, notice.envelope.recipients.map((x) => x.address)], ['', ['owner-team@localhost']]);
  const text = notice.body.toString('latin1');
  assert.match(text, /Final-Recipient: rfc822; ?:include:\/nonexistent\/team\.txt/);
  assert.match(text, /cannot read \/nonexistent\/team\.txt: ENOENT/);
  assert.match(text, /not a regular file/);
  assert.match(text, /Status: 5\.2\.4/);
  const [n] = await s.job.deliver([{ ref: o!.enqueued[0]!, envelope: notice.envelope }]);
  assert.equal(n!.recipients[0]!.result, 'delivered');
  assert.equal(inbox(s, 'bob').length, 1);
  const returned = mailLog(s).filter((x) => x.event === 'R').map((x) => x.recipient);
  assert.deepEqual(returned.sort(), [`:include:${dir}`, ':include:/nonexistent/team.txt'].sort());

  const cnbuild = await runCli('imsimta', ['cnbuild', '--root', s.inst.root]);
  assert.equal(cnbuild.code, 0, cnbuild.stderr);
  assert.match(cnbuild.stderr, /aliases:1: warning: alias team: cannot read \/nonexistent\/team\.txt: ENOENT/);
  assert.match(cnbuild.stderr, new RegExp(`aliases:1: warning: alias team: cannot read ${dir}: not a regular file`));
  await s.job.close();
});

test('lists that contain themselves, directly or through another: each member once, the loop told to the sender; cnbuild names the unknown member', async () => {
  const s = await setup('ping: pong, alice, ghost\npong: ping, bob\nroot: root, alice\n', ['alice', 'bob', 'root']);
  const item = await queued(s, 'sender@remote.test', ['ping@localhost', 'root@localhost']);
  const [o] = await s.job.deliver([item]);
  const [ping, root] = o!.recipients;
  assert.equal(ping!.result, 'delivered');
  assert.match(ping!.status, /delivered to bob, alice; 2 members failed \(reported to <sender@remote\.test>\)/);
  assert.equal(root!.result, 'delivered');
  assert.match(root!.status, /^250 2\.0\.0 delivered to root, alice$/, '`root: root` delivers to the mailbox root, as sendmail does');
  assert.equal(inbox(s, 'alice').length, 2);
  assert.equal(inbox(s, 'bob').length, 1);
  // The sender's DSN: to tcp_local (sender@remote.test is outside), naming the loop and the unknown member.
  const notices = await Promise.all(o!.enqueued!.map((ref) => s.store.readMessage(ref.path)));
  assert.deepEqual(notices.map((n) => [n.envelope.channel, n.envelope.from, n.envelope.recipients[0]!.address]), [['tcp_local', '', 'sender@remote.test']]);
  const text = notices[0]!.body.toString('utf8');
  assert.match(text, /Status: 5\.4\.6/);
  assert.match(text, /Final-Recipient: rfc822; ?ping@localhost/);
  assert.match(text, /Final-Recipient: rfc822; ?ghost@localhost/);
  assert.match(text, /Status: 5\.1\.1/);

  const cnbuild = await runCli('imsimta', ['cnbuild', '--root', s.inst.root]);
  assert.match(cnbuild.stderr, /aliases:1: warning: alias ping: no such user: ghost@mta\.expand\.test/);
  assert.match(cnbuild.stderr, /aliases:1: warning: alias ping: loop: ping@mta\.expand\.test → pong@mta\.expand\.test → ping@mta\.expand\.test/);
  assert.match(cnbuild.stderr, /aliases:2: warning: alias pong: loop: pong@mta\.expand\.test → ping@mta\.expand\.test → pong@mta\.expand\.test/);
  assert.equal(cnbuild.stderr.match(/ghost/g)?.length, 1, 'the unknown member once, for the alias that names it');
  assert.doesNotMatch(cnbuild.stderr, /alias root:/, '`root: root` is no loop');
  await s.job.close();
});

/** The heap after a full collection (gc made available at run time: the runner gives no --expose-gc). */
function heapAfterGc(): number {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
  return process.memoryUsage().heapUsed;
}

test('a 100,000-member list streams into queue files of 1,000 recipients from the owner; the heap stays bounded', async () => {
  const members = 100_000;
  const inst = makeInstance();
  const listFile = join(inst.root, 'big.txt');
  writeFileSync(listFile, `# the big list\n${Array.from({ length: members }, (_, i) => `member${i}@d${i % 50}.example.test\n`).join('')}alice\nbob@localhost\n`);
  instances.push(inst);
  const s = await setup(`big: :include:${listFile}\nowner-big: alice\n`, ['alice', 'bob']);
  const item = await queued(s, 'sender@remote.test', ['big@localhost'], 'big list');

  const base = heapAfterGc();
  const rssBase = process.memoryUsage().rss;
  let peak = base;
  let rssPeak = rssBase;
  // The live heap (after a full collection) every 100 ms: what the expansion holds, not the garbage it leaves.
  let samples = 0;
  const sampler = setInterval(() => {
    samples++;
    peak = Math.max(peak, heapAfterGc());
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
  }, 100);
  const t0 = performance.now();
  const [o] = await s.job.deliver([item]);
  const ms = performance.now() - t0;
  clearInterval(sampler);
  const growth = peak - base;
  const rssGrowth = rssPeak - rssBase;
  console.log(`# 100,000 members expanded in ${Math.round(ms)} ms; live heap peak +${(growth / 2 ** 20).toFixed(1)} MiB (${samples} samples), RSS peak +${(rssGrowth / 2 ** 20).toFixed(1)} MiB`);

  const r = o!.recipients[0]!;
  assert.equal(r.result, 'delivered', r.status);
  assert.match(r.status, /^250 2\.0\.0 delivered to alice, bob; 100000 copies queued for other addresses$/);
  assert.equal(o!.enqueued!.length, 100);
  let total = 0;
  for (const ref of o!.enqueued!) {
    const env = await s.store.readEnvelope(ref.path);
    assert.equal(env.channel, 'tcp_local');
    assert.equal(env.from, 'owner-big@localhost');
    assert.equal(env.held, false);
    assert.equal(env.recipients.length, 1000);
    total += env.recipients.length;
  }
  assert.equal(total, members);
  const sample = await s.store.readMessage(o!.enqueued![0]!.path);
  assert.match(sample.body.toString('latin1'), /^Delivered-To: big@localhost\r\nFrom: <sender@remote\.test>/);
  assert.equal(mailLog(s).filter((x) => x.event === 'E').length, members, 'an E record for each member queued');
  // Holding the list (100,000 addresses and their queue entries) takes well over 40 MiB of heap; streaming, a few.
  assert.ok(growth < 16 * 2 ** 20, `heap grew by ${(growth / 2 ** 20).toFixed(1)} MiB`);
  assert.ok(rssGrowth < 128 * 2 ** 20, `RSS grew by ${(rssGrowth / 2 ** 20).toFixed(1)} MiB`);
  await s.job.close();
});

test('the directory fails part way through an expansion: the copies written so far are removed, the recipient deferred', async () => {
  const s = await setup('', []);
  const item = await queued(s, 'sender@remote.test', ['list@localhost']);
  // A directory whose list breaks after 2,500 members (as an LDAP server that goes away would).
  const flaky: RecipientDirectory = {
    source: 'test',
    async findRecipient(address: string): Promise<RecipientLookup> {
      return address === 'list@localhost' ? { kind: 'group', id: 'list', address, owner: null, selfMailbox: null } : { kind: 'none' };
    },
    async *listMembers(): AsyncGenerator<ListMember> {
      for (let i = 0; i < 2500; i++) yield { kind: 'address', address: `m${i}@remote.test` };
      yield { kind: 'unavailable', why: 'connection lost' };
    },
  };
  const rewriter = compileRewriter(s.config.imta);
  const mailLogFile = new MailLog(join(s.inst.root, 'log', 'mail.log'));
  const deps: ExpansionDeps = {
    directory: flaky,
    isLocal: (a) => a.endsWith('@localhost'),
    route: (a) => ({ ok: true, channel: 'tcp_local', address: a }),
    senderFor: (_source, from) => from,
    filesize: () => 0,
    localChannel: 'l',
    store: s.store,
    notices: new NoticeSender({ store: s.store, rewriter, mailLog: mailLogFile, logger: silentLogger(), localHost: 'mta.expand.test', returnLimitOctets: 1 << 20 }),
    mailLog: mailLogFile,
    logger: silentLogger(),
    now: Date.now,
  };
  const outcome = await expandForDelivery(deps, { item, recipient: item.envelope.recipients[0]!, body: () => s.store.openBody(item.ref.path) });
  assert.deepEqual(outcome, { kind: 'unavailable', why: 'connection lost' });
  const left = existsSync(join(s.inst.root, 'queue', 'tcp_local')) ? readdirSync(join(s.inst.root, 'queue', 'tcp_local')) : [];
  assert.deepEqual(left, [], 'the two full files written held before the failure are gone');
  mailLogFile.close();
  await s.job.close();
});
