// The access tables of etc/mappings in real SMTP sessions (the service in this process, raw
// clients on loopback): PORT_ACCESS refuses before the greeting, FROM_ACCESS at MAIL, the four
// recipient tables at RCPT, each with its entry's text and code and one J record naming the
// table and the entry's file:line; what they accept passes. $D makes that client wait on a timer
// while another session goes on; $H writes the message held; $B drops a recipient's copy.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { basename } from 'node:path';
import { EXTERNAL_IP, SERVER_IP, SmtpFixture, SmtpProbe, type Reply } from './smtp-harness.js';

const IMTA = `! access table test
localhost            $U%localhost@localhost
local.test           $U%$D@localhost
.                    $U%$H@tcp-daemon
[]                   $U%[$L]@tcp-daemon

l
localhost

tcp_local smtp mx spfnone noauthverify
tcp-daemon

tcp_intranet smtp mx
tcp_intranet-daemon
`;

const MAPPINGS = `! access tables of the test
PORT_ACCESS

  TCP|*|*|127.0.5.3|*                    $NGo$ away
  *                                      $Y

FROM_ACCESS

  *|tcp_local|spammer@bad.test|*         $NSender$ not$ welcome
  *|tcp_local|*@held.test|*              $Y$H
  *|tcp_local|slowpoke@slow.test|*       $Y$D60

ORIG_SEND_ACCESS

  tcp_local|*|l|orig@local.test          $NOrig$ send$ refused
  tcp_local|*|l|slow@local.test          $D-150

ORIG_MAIL_ACCESS

  *|tcp_local|*|l|origmail@local.test    $NOrig$ mail$ refused

SEND_ACCESS

  tcp_local|*|l|send@local.test          $N$X5.7.0|Send$ refused
  tcp_local|*|l|held@local.test          $Y$H
  tcp_local|*|l|void@local.test          $Y$B

MAIL_ACCESS

  *|tcp_local|*|l|mail@local.test        $N450$ 4.7.1$ Busy
`;

/** The line of MAPPINGS an entry is on (as the J record names it). */
const lineOf = (pattern: string) => MAPPINGS.split('\n').findIndex((l) => l.trim().startsWith(pattern)) + 1;
const BLOCKED_IP = '127.0.5.3';

let fx: SmtpFixture;
before(async () => {
  fx = await SmtpFixture.start({ imta: IMTA, mailboxes: ['joe', 'orig', 'origmail', 'send', 'mail', 'held', 'void', 'slow'], files: { 'etc/mappings': MAPPINGS } });
});
after(async () => {
  await fx?.stop();
});

async function session(from = EXTERNAL_IP): Promise<SmtpProbe> {
  const p = await SmtpProbe.connect(SERVER_IP, fx.port, from);
  await p.hello();
  return p;
}

async function data(p: SmtpProbe, text = 'Subject: test\r\n\r\nhello\r\n'): Promise<Reply | null> {
  const go = await p.command('DATA');
  assert.equal(go?.code, 354, go?.text);
  p.write(`${text}.\r\n`);
  return p.reply();
}

const jRecords = () => fx.mailLog().filter((r) => r.event === 'J');

test('PORT_ACCESS: the entry’s text in place of the greeting, the connection closed, one J record naming the table and entry', async () => {
  const p = await SmtpProbe.connect(SERVER_IP, fx.port, BLOCKED_IP);
  const r = await p.reply();
  assert.equal(r?.text, '554 5.7.1 Go away');
  assert.ok(await p.waitClosed());
  const j = jRecords().filter((x) => x.status.startsWith('PORT_ACCESS:'));
  assert.equal(j.length, 1);
  assert.equal(j[0]!.status, `PORT_ACCESS: 554 5.7.1 Go away (${basename('mappings')}:${lineOf('TCP|*|*|127.0.5.3|*')})`);
  assert.equal(j[0]!.source, 'tcp_local');
  // another client passes
  const ok = await SmtpProbe.connect(SERVER_IP, fx.port, EXTERNAL_IP);
  assert.equal((await ok.reply())?.code, 220);
  ok.close();
});

test('FROM_ACCESS at MAIL: 550 5.7.1 with the text and the sender; the session goes on; other senders pass', async () => {
  const p = await session();
  const r = await p.command('MAIL FROM:<spammer@bad.test>');
  assert.equal(r?.text, '550 5.7.1 Sender not welcome: spammer@bad.test');
  const j = jRecords().find((x) => x.status.startsWith('FROM_ACCESS:'));
  assert.equal(j?.from, 'spammer@bad.test');
  assert.equal(j?.status, `FROM_ACCESS: 550 5.7.1 Sender not welcome: spammer@bad.test (mappings:${lineOf('*|tcp_local|spammer@bad.test|*')})`);
  assert.equal((await p.command('MAIL FROM:<friend@good.test>'))?.code, 250);
  assert.equal((await p.command('RCPT TO:<joe@local.test>'))?.code, 250);
  assert.equal((await data(p))?.code, 250);
  p.close();
});

test('the recipient tables at RCPT, each with its own text and code; an accepted recipient still gets the message', async () => {
  const p = await session();
  assert.equal((await p.command('MAIL FROM:<friend@good.test>'))?.code, 250);
  assert.equal((await p.command('RCPT TO:<orig@local.test>'))?.text, '550 5.7.1 Orig send refused: orig@local.test');
  assert.equal((await p.command('RCPT TO:<origmail@local.test>'))?.text, '550 5.7.1 Orig mail refused: origmail@local.test');
  assert.equal((await p.command('RCPT TO:<send@local.test>'))?.text, '550 5.7.0 Send refused: send@local.test');
  assert.equal((await p.command('RCPT TO:<mail@local.test>'))?.text, '450 4.7.1 Busy: mail@local.test');
  assert.equal((await p.command('RCPT TO:<joe@local.test>'))?.code, 250);
  const queued = await data(p);
  assert.equal(queued?.code, 250, queued?.text);
  p.close();
  const byRecipient = new Map(jRecords().map((j) => [j.recipient, j]));
  assert.match(byRecipient.get('orig@local.test')!.status, /^ORIG_SEND_ACCESS: 550 5\.7\.1 Orig send refused: orig@local\.test \(mappings:\d+\)$/);
  assert.match(byRecipient.get('origmail@local.test')!.status, /^ORIG_MAIL_ACCESS: 550 5\.7\.1 /);
  assert.match(byRecipient.get('send@local.test')!.status, /^SEND_ACCESS: 550 5\.7\.0 /);
  assert.match(byRecipient.get('mail@local.test')!.status, /^MAIL_ACCESS: 450 4\.7\.1 Busy/);
  assert.equal(byRecipient.get('mail@local.test')!.destination, 'l');
  const e = fx.mailLog().filter((r) => r.event === 'E');
  assert.deepEqual(e.map((r) => r.recipient), ['joe@local.test', 'joe@local.test']);
});

test('$D: that client’s answer waits on a timer while another session delivers a whole message', async () => {
  const slow = await session();
  assert.equal((await slow.command('MAIL FROM:<friend@good.test>'))?.code, 250);
  const started = performance.now();
  slow.write('RCPT TO:<slow@local.test>\r\n');
  const slowReply = slow.reply(10_000).then((r) => ({ r, ms: performance.now() - started }));
  // Meanwhile another client goes through a whole transaction.
  const other = await session();
  assert.equal((await other.command('MAIL FROM:<friend@good.test>'))?.code, 250);
  assert.equal((await other.command('RCPT TO:<joe@local.test>'))?.code, 250);
  assert.equal((await data(other))?.code, 250);
  const otherMs = performance.now() - started;
  other.close();
  const { r, ms } = await slowReply;
  assert.equal(r?.code, 250);
  assert.ok(ms >= 1400, `the $D-150 answer came after ${ms} ms`);
  assert.ok(otherMs < ms, `the other session (${otherMs} ms) finished before the delayed answer (${ms} ms)`);
  slow.close();
});

test('$D positive in FROM_ACCESS: MAIL and every later command of the transaction wait; the next transaction does not', async () => {
  const p = await session();
  const timed = async (line: string) => {
    const started = performance.now();
    const r = await p.command(line);
    return { code: r?.code, ms: performance.now() - started };
  };
  const mail = await timed('MAIL FROM:<slowpoke@slow.test>');
  const rcpt = await timed('RCPT TO:<joe@local.test>');
  assert.equal((await p.command('DATA'))?.code, 354);
  const started = performance.now();
  p.write('Subject: slow\r\n\r\nhello\r\n.\r\n');
  const dataReply = await p.reply();
  const dataMs = performance.now() - started;
  for (const [what, t] of [['MAIL', mail], ['RCPT', rcpt]] as const) {
    assert.equal(t.code, 250, what);
    assert.ok(t.ms >= 550, `${what} answered after ${t.ms} ms`);
  }
  assert.equal(dataReply?.code, 250);
  assert.ok(dataMs >= 550, `the DATA answer after ${dataMs} ms`);
  const next = await timed('MAIL FROM:<friend@good.test>');
  assert.equal(next.code, 250);
  assert.ok(next.ms < 550, `a new transaction does not wait (${next.ms} ms)`);
  p.close();
});

test('$H: the message is queued held (.HELD) in its channel, its E records say why; $H in FROM_ACCESS too', async () => {
  const before = new Set(fx.queueFiles('l'));
  const p = await session();
  assert.equal((await p.command('MAIL FROM:<friend@good.test>'))?.code, 250);
  assert.equal((await p.command('RCPT TO:<held@local.test>'))?.code, 250);
  assert.equal((await p.command('RCPT TO:<joe@local.test>'))?.code, 250);
  assert.equal((await data(p))?.code, 250);
  assert.equal((await p.command('MAIL FROM:<someone@held.test>'))?.code, 250);
  assert.equal((await p.command('RCPT TO:<joe@local.test>'))?.code, 250);
  assert.equal((await data(p))?.code, 250);
  p.close();
  const added = fx.queueFiles('l').filter((f) => !before.has(f));
  assert.equal(added.length, 2);
  assert.ok(added.every((f) => f.endsWith('.HELD')), added.join(' '));
  const held = fx.mailLog().filter((r) => r.event === 'E' && r.status.startsWith('queued held'));
  assert.equal(held.length, 3);
  assert.match(held[0]!.status, /^queued held \(SEND_ACCESS \$H \(mappings:\d+\)\)$/);
  assert.match(held[2]!.status, /^queued held \(FROM_ACCESS \$H/);
});

test('$B: that recipient’s copy is not queued (a D record says discarded); alone, the message is accepted and nothing queued', async () => {
  const before = fx.allQueueFiles().length;
  const p = await session();
  assert.equal((await p.command('MAIL FROM:<friend@good.test>'))?.code, 250);
  assert.equal((await p.command('RCPT TO:<void@local.test>'))?.code, 250);
  assert.equal((await p.command('RCPT TO:<joe@local.test>'))?.code, 250);
  assert.equal((await data(p))?.code, 250);
  assert.equal(fx.allQueueFiles().length, before + 1);
  assert.equal((await p.command('MAIL FROM:<friend@good.test>'))?.code, 250);
  assert.equal((await p.command('RCPT TO:<void@local.test>'))?.code, 250);
  const alone = await data(p);
  assert.match(alone?.text ?? '', /^250 2\.0\.0 Ok: \S+ discarded$/);
  p.close();
  assert.equal(fx.allQueueFiles().length, before + 1);
  const d = fx.mailLog().filter((r) => r.event === 'D' && r.recipient === 'void@local.test');
  assert.equal(d.length, 2);
  assert.match(d[0]!.status, /^discarded: SEND_ACCESS \$B \(mappings:\d+\)$/);
});
