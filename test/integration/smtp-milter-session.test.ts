// Milters in real SMTP sessions (the service in this process, small milter servers on loopback
// speaking the protocol byte for byte): the filters' header, recipient and body changes are in
// the queued message (an added recipient routed by the rewrite rules to its own channel), and a
// `dkimsign` channel signs the header the filter left; a large message spooled to disk passes
// whole or replaced; quarantine writes it held, discard queues nothing, a refusal at RCPT or at
// connect answers with the filter's reply; a filter that answers garbage or closes in the middle
// of the body gives the default 4xx, one J record naming it, and nothing queued or left behind;
// a filter's own tempfail is 451 for that message only, and one that leaves after the
// negotiation turns the client away with 421.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { createRequire } from 'node:module';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { dnsRecordValue } from '../../src/dkim/keygen.js';
import { startFakeMilter, standardFilter, type FakeMilter, type Script } from '../helpers/fake-milter.js';
import { waitFor } from '../helpers/instance.js';
import { INTERNAL_IP, SERVER_IP, SmtpFixture, SmtpProbe, type Reply } from './smtp-harness.js';

const requireCjs = createRequire(import.meta.url);
const { dkimVerify } = requireCjs('mailauth/lib/dkim/verify.js') as {
  dkimVerify(message: Buffer, opts: { resolver: (name: string, type: string) => Promise<string[][]> }): Promise<{ results: Array<{ status: { result: string }; signingHeaders?: { keys: string } }> }>;
};

const IMTA = `! milter test
local.test           $U%$D@localhost
archive.test         $U%$D@tcp-archive
signed.test          $U%$D@tcp-signed
.                    $U%$H@tcp-daemon

l
localhost

tcp_local smtp mx spfnone noauthverify sourcespamfilter1
tcp-daemon

tcp_intranet smtp mx sourcespamfilter1
tcp_intranet-daemon

tcp_archive smtp mx
tcp-archive

tcp_signed smtp mx dkimsign
tcp-signed
`;

const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });

let fx: SmtpFixture;
let milter: FakeMilter;
/** What the filter does for the sessions opened from now on. */
let behaviour: Script = standardFilter();

before(async () => {
  milter = await startFakeMilter((c) => behaviour(c));
  fx = await SmtpFixture.start({
    imta: IMTA,
    mailboxes: ['joe', 'gone'],
    options: `SPAMFILTER1_MILTER={ ${milter.spec.name}, name = fake }\nMILTER_CONNECT_TIMEOUT=2\nMILTER_COMMAND_TIMEOUT=3\nMILTER_CONTENT_TIMEOUT=3\n`,
    files: {
      'etc/dkim/keys': 'signed.test  sel  sel.pem\n',
      'etc/dkim/sel.pem': pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    },
  });
});

after(async () => {
  await fx?.stop();
  await milter?.close();
});

async function session(from = INTERNAL_IP): Promise<SmtpProbe> {
  const p = await SmtpProbe.connect(SERVER_IP, fx.port, from);
  await p.hello();
  return p;
}

/** MAIL, the RCPTs (each must be taken), DATA and the message; the final reply. */
async function send(p: SmtpProbe, rcpts: string[], text: string | Buffer, from = 'a@signed.test'): Promise<Reply | null> {
  assert.equal((await p.command(`MAIL FROM:<${from}>`))?.code, 250);
  for (const r of rcpts) assert.equal((await p.command(`RCPT TO:<${r}>`))?.code, 250, r);
  assert.equal((await p.command('DATA'))?.code, 354);
  p.write(text);
  p.write('.\r\n');
  return p.reply(15_000);
}

const MESSAGE = 'From: A <a@signed.test>\r\nTo: joe@local.test\r\nSubject: original\r\nX-Remove-Me: yes\r\n\r\nThe body.\r\n';
const spoolFiles = () => (existsSync(join(fx.root, 'queue', '.tmp')) ? readdirSync(join(fx.root, 'queue', '.tmp')) : []);

async function queued(channel: string): Promise<Array<{ envelope: { from: string; recipients: Array<{ address: string }>; held: boolean }; body: Buffer; path: string }>> {
  return Promise.all(fx.queueFiles(channel).map(async (path) => ({ ...(await fx.readQueued(path)), path })));
}

test('header, recipient and sender changes are in the queued message; an added recipient is routed to its own channel', async () => {
  behaviour = standardFilter({
    eom: () => [
      { type: 'addheader', name: 'X-Filtered', value: 'yes' },
      { type: 'chgheader', index: 1, name: 'Subject', value: 'edited' },
      { type: 'chgheader', index: 1, name: 'X-Remove-Me', value: '' },
      { type: 'addrcpt', address: '<copy@archive.test>', args: null },
      { type: 'delrcpt', address: '<gone@local.test>' },
      { type: 'chgfrom', address: '<bounces@signed.test>', args: null },
      { type: 'continue' },
    ],
  });
  const p = await session();
  const r = await send(p, ['joe@local.test', 'gone@local.test'], MESSAGE);
  p.close();
  assert.match(r?.text ?? '', /^250 2\.0\.0 Ok: queued as /);
  const local = await queued('l');
  assert.equal(local.length, 1);
  assert.deepEqual(local[0]!.envelope.recipients.map((x) => x.address), ['joe@local.test']);
  assert.equal(local[0]!.envelope.from, 'bounces@signed.test');
  const text = local[0]!.body.toString('latin1');
  assert.match(text, /^Received: from client\.test \(\[127\.0\.5\.1\]\)/);
  assert.match(text, /\r\nSubject: edited\r\n/);
  assert.match(text, /\r\nX-Filtered: yes\r\n\r\nThe body\.\r\n$/);
  assert.ok(!text.includes('X-Remove-Me'));
  const archive = await queued('tcp_archive');
  assert.deepEqual(archive.map((q) => q.envelope.recipients.map((x) => x.address)), [['copy@archive.test']]);
  assert.ok(archive[0]!.body.equals(local[0]!.body), 'every copy is the same final message');
  const e = fx.mailLog().filter((x) => x.event === 'E');
  assert.deepEqual(e.map((x) => `${x.from} ${x.recipient}`).sort(), ['bounces@signed.test copy@archive.test', 'bounces@signed.test joe@local.test']);
  assert.deepEqual(spoolFiles(), []);
});

test('a dkimsign channel signs the header the filter left: the signature covers the new Subject', async () => {
  behaviour = standardFilter({ eom: () => [{ type: 'chgheader', index: 1, name: 'Subject', value: 'changed by the filter' }, { type: 'continue' }] });
  const p = await session();
  const r = await send(p, ['someone@signed.test'], MESSAGE.replace('To: joe@local.test', 'To: someone@signed.test'));
  p.close();
  assert.match(r?.text ?? '', /^250 /);
  const [signed] = await queued('tcp_signed');
  const text = signed!.body.toString('latin1');
  assert.match(text, /^DKIM-Signature: /);
  assert.match(text, /\r\nSubject: changed by the filter\r\n/);
  const resolver = async () => [[dnsRecordValue(pair.publicKey)]];
  const v = await dkimVerify(signed!.body, { resolver });
  assert.deepEqual(v.results.map((x) => x.status.result), ['pass']);
  assert.match(v.results[0]!.signingHeaders?.keys ?? '', /Subject/i);
  // The signature was made over the filter's Subject: the one the client sent does not verify.
  const original = Buffer.from(text.replace('Subject: changed by the filter', 'Subject: original'), 'latin1');
  assert.notEqual((await dkimVerify(original, { resolver })).results[0]!.status.result, 'pass');
});

test('a large message (spooled to disk): passed whole, or with the body the filter sent; no spool file stays', async () => {
  const line = `${'0123456789'.repeat(9)}\r\n`;
  const big = `From: A <a@signed.test>\r\nSubject: big\r\n\r\n${line.repeat(7000)}`; // about 640 KiB
  behaviour = standardFilter();
  const before = new Set(fx.queueFiles('l'));
  const p = await session();
  assert.match((await send(p, ['joe@local.test'], big))?.text ?? '', /^250 /);
  behaviour = standardFilter({ eom: () => [{ type: 'replbody', chunk: Buffer.from('Replaced by the filter.\r\n') }, { type: 'continue' }] });
  const q = await session();
  assert.match((await send(q, ['joe@local.test'], big.replace('Subject: big', 'Subject: replaced')))?.text ?? '', /^250 /);
  p.close();
  q.close();
  const added = (await queued('l')).filter((x) => !before.has(x.path));
  const whole = added.find((x) => x.body.includes('Subject: big'))!;
  assert.equal(whole.body.toString('latin1').replace(/^Received: [^]*?\r\n(?=From: )/, ''), big);
  const replaced = added.find((x) => x.body.includes('Subject: replaced'))!;
  assert.match(replaced.body.toString('latin1'), /\r\nSubject: replaced\r\n\r\nReplaced by the filter\.\r\n$/);
  assert.deepEqual(spoolFiles(), []);
});

test('quarantine: the message is queued held (.HELD), its E records say by which filter', async () => {
  behaviour = standardFilter({ eom: () => [{ type: 'quarantine', reason: 'looks suspicious' }, { type: 'continue' }] });
  const before = new Set(fx.queueFiles('l'));
  const p = await session();
  assert.match((await send(p, ['joe@local.test'], MESSAGE))?.text ?? '', /^250 /);
  p.close();
  const added = fx.queueFiles('l').filter((f) => !before.has(f));
  assert.equal(added.length, 1);
  assert.ok(added[0]!.endsWith('.HELD'), added[0]);
  const e = fx.mailLog().filter((x) => x.event === 'E').at(-1)!;
  assert.equal(e.status, 'queued held (milter:fake quarantine: looks suspicious)');
});

test('discard: 250, nothing queued, D records say discarded by the filter', async () => {
  behaviour = standardFilter({ eom: () => [{ type: 'discard' }] });
  const before = fx.allQueueFiles().length;
  const p = await session();
  const r = await send(p, ['joe@local.test'], MESSAGE);
  p.close();
  assert.match(r?.text ?? '', /^250 2\.0\.0 Ok: \S+ discarded$/);
  assert.equal(fx.allQueueFiles().length, before);
  const d = fx.mailLog().filter((x) => x.event === 'D').at(-1)!;
  assert.deepEqual([d.recipient, d.status], ['joe@local.test', 'discarded: milter:fake discard']);
});

test('a refusal at RCPT answers with the filter’s reply and a J record naming it; the other recipient goes on', async () => {
  behaviour = standardFilter({
    answer: (cmd) => (cmd.type === 'rcpt' && cmd.argv[0] === '<gone@local.test>' ? { type: 'replycode', reply: { code: 550, enhanced: '5.7.1', lines: ['No such user here'] } } : null),
  });
  const p = await session();
  assert.equal((await p.command('MAIL FROM:<a@signed.test>'))?.code, 250);
  assert.equal((await p.command('RCPT TO:<gone@local.test>'))?.text, '550 5.7.1 No such user here');
  assert.equal((await p.command('RCPT TO:<joe@local.test>'))?.code, 250);
  p.close();
  const j = fx.mailLog().filter((x) => x.event === 'J').at(-1)!;
  assert.deepEqual([j.recipient, j.destination, j.status], ['gone@local.test', 'l', 'milter:fake: 550 5.7.1 No such user here']);
});

test('a refusal at connect: 554 in place of the greeting, closed', async () => {
  behaviour = standardFilter({ answer: (cmd) => (cmd.type === 'connect' ? { type: 'replycode', reply: { code: 550, enhanced: '5.7.1', lines: ['Your network is not welcome'] } } : null) });
  const p = await SmtpProbe.connect(SERVER_IP, fx.port, INTERNAL_IP);
  assert.equal((await p.reply())?.text, '554 5.7.1 Your network is not welcome');
  assert.ok(await p.waitClosed());
  assert.equal(fx.mailLog().filter((x) => x.event === 'J').at(-1)!.status, 'milter:fake: 554 5.7.1 Your network is not welcome');
});

test('a client that leaves while its filters are still being connected to: the filter connection is closed all the same', async () => {
  let negotiate: () => void = () => {};
  const released = new Promise<void>((resolve) => (negotiate = resolve));
  const filter: { closed: Promise<void> | null } = { closed: null };
  behaviour = async (c) => {
    filter.closed = c.closed;
    await released; // the negotiation is answered only once the client is gone
    await standardFilter()(c);
  };
  const connections = milter.connections.length;
  const p = await SmtpProbe.connect(SERVER_IP, fx.port, INTERNAL_IP);
  await waitFor(() => milter.connections.length > connections, { what: 'the filter connected to' });
  p.close();
  await waitFor(() => fx.service.openConnections() === 0, { what: 'the SMTP session to end' });
  negotiate();
  assert.ok(filter.closed);
  await Promise.race([filter.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('the filter connection stayed open')), 5000))]);
});

test('hostile: a filter that answers garbage at MAIL: 451 4.7.1 by default, a J record naming it', async () => {
  behaviour = async (c) => {
    await c.negotiate();
    for (;;) {
      const cmd = await c.next(10_000);
      if (!cmd || cmd.type === 'quit') return;
      if (cmd.type === 'mail') c.sendRaw(Buffer.from([0, 0, 0, 5, 0x7a, 0xde, 0xad, 0xbe, 0xef]));
      else if (cmd.type === 'connect' || cmd.type === 'helo') c.send({ type: 'continue' });
    }
  };
  const p = await session();
  const r = await p.command('MAIL FROM:<a@signed.test>');
  p.close();
  assert.equal(r?.text, '451 4.7.1 Service unavailable - try again later');
  const j = fx.mailLog().filter((x) => x.event === 'J').at(-1)!;
  assert.deepEqual([j.from, j.recipient], ['a@signed.test', '']);
  assert.match(j.status, /^milter:fake: 451 4\.7\.1 Service unavailable - try again later \(default action: /);
});

test('hostile: a filter that closes in the middle of the body: 451 at the end of DATA, nothing queued, no spool left', async () => {
  behaviour = async (c) => {
    await c.negotiate();
    for (;;) {
      const cmd = await c.next(10_000);
      if (!cmd || cmd.type === 'quit') return;
      if (cmd.type === 'body') return void c.socket.destroy();
      if (['connect', 'helo', 'mail', 'rcpt', 'data', 'header', 'eoh'].includes(cmd.type)) c.send({ type: 'continue' });
    }
  };
  const before = fx.allQueueFiles().length;
  const p = await session();
  // about 350 KiB: spooled to disk
  const r = await send(p, ['joe@local.test'], `From: A <a@signed.test>\r\nSubject: cut\r\n\r\n${'line\r\n'.repeat(60_000)}`);
  p.close();
  assert.equal(r?.text, '451 4.7.1 Service unavailable - try again later');
  assert.equal(fx.allQueueFiles().length, before);
  assert.deepEqual(spoolFiles(), []);
  assert.match(fx.mailLog().filter((x) => x.event === 'J').at(-1)!.status, /^milter:fake: 451 4\.7\.1 /);
});

test('hostile: a header section over 1 MiB is refused with 552 5.3.4 (the filters are given no such thing), nothing queued', async () => {
  behaviour = standardFilter();
  const before = fx.allQueueFiles().length;
  const p = await session();
  const fields = Array.from({ length: 12_000 }, (_, i) => `X-Padding-${i}: ${'p'.repeat(80)}\r\n`).join(''); // about 1.1 MiB
  const r = await send(p, ['joe@local.test'], `From: A <a@signed.test>\r\n${fields}\r\nbody\r\n`);
  p.close();
  assert.equal(r?.text, '552 5.3.4 Message header section exceeds 1048576 octets');
  assert.equal(fx.allQueueFiles().length, before);
  assert.deepEqual(spoolFiles(), []);
});

test('a filter that answers tempfail (bare, and as a 451 reply): 451 at the end of DATA, nothing queued; the next message of the session passes it', async () => {
  behaviour = standardFilter({
    eom: (n) => (n === 0 ? [{ type: 'tempfail' }] : n === 1 ? [{ type: 'replycode', reply: { code: 451, enhanced: '4.7.1', lines: ['Try again later'] } }] : [{ type: 'continue' }]),
  });
  const before = fx.allQueueFiles().length;
  const p = await session();
  const first = await send(p, ['joe@local.test'], MESSAGE);
  assert.equal(first?.text, '451 4.7.1 Service unavailable - try again later');
  const second = await send(p, ['joe@local.test'], MESSAGE);
  assert.equal(second?.text, '451 4.7.1 Try again later');
  assert.equal(fx.allQueueFiles().length, before);
  const third = await send(p, ['joe@local.test'], MESSAGE);
  assert.match(third?.text ?? '', /^250 2\.0\.0 Ok: queued as /);
  p.close();
  const j = fx.mailLog().filter((x) => x.event === 'J').slice(-2).map((x) => x.status);
  assert.deepEqual(j, ['milter:fake: 451 4.7.1 Service unavailable - try again later', 'milter:fake: 451 4.7.1 Try again later']);
});

test('a filter that closes its socket right after the negotiation: 421 in place of the greeting (the default action), a J record', async () => {
  behaviour = async (c) => {
    await c.negotiate();
    c.socket.destroy();
  };
  const p = await SmtpProbe.connect(SERVER_IP, fx.port, INTERNAL_IP);
  const r = await p.reply(15_000);
  assert.match(r?.text ?? '', /^421 4\.7\.1 /);
  assert.ok(await p.waitClosed());
  assert.match(fx.mailLog().filter((x) => x.event === 'J').at(-1)!.status, /^milter:fake: 421 4\.7\.1 .*\(default action: /);
});
