// Error limits of an inbound session (issue 13, item 9), as Postfix's smtpd has them: a
// dictionary attack of unknown-user RCPTs and endless MAIL/RSET cycles end in `421 4.7.0` and
// a closed connection long before the client is done; past the soft limit each reply waits
// SMTP_ERROR_SLEEP_TIME without holding up other sessions; an ordinary session with a few
// errors is not slowed; `DATA foo` and `RSET foo` are syntax errors (501 5.5.4).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { SmtpFixture, SmtpProbe, EXTERNAL_IP, INTERNAL_IP, mailTo, type Reply } from './smtp-harness.js';

/** The defaults (soft 10, hard 20, junk 100) with a short pause, so the attack tests finish quickly. */
let defaults: SmtpFixture;
/** Small limits and a pause long enough to measure. */
const SLEEP_MS = 1500;
let small: SmtpFixture;

before(async () => {
  defaults = await SmtpFixture.start({ mailboxes: ['joe'], options: 'BANNER_PURGE_DELAY=0\nSMTP_ERROR_SLEEP_TIME=0.02\n' });
  small = await SmtpFixture.start({
    mailboxes: ['joe'],
    options: `BANNER_PURGE_DELAY=0\nSMTP_SOFT_ERROR_LIMIT=3\nSMTP_HARD_ERROR_LIMIT=6\nSMTP_ERROR_SLEEP_TIME=${SLEEP_MS / 1000}\n`,
  });
});
after(async () => {
  await defaults?.stop();
  await small?.stop();
});

/** Sends `line`, returns the reply and how long it took. */
async function timed(p: SmtpProbe, line: string): Promise<{ reply: Reply | null; ms: number }> {
  const t0 = performance.now();
  const reply = await p.command(line);
  return { reply, ms: performance.now() - t0 };
}

test('2,000 unknown-user RCPTs: 421 4.7.0 and close after the hard error limit (20), not 2,000 answers', async () => {
  const p = await defaults.probe(EXTERNAL_IP);
  try {
    await p.hello();
    assert.equal((await p.command('MAIL FROM:<dictionary@attacker.test>'))?.code, 250);
    const codes: number[] = [];
    let last: Reply | null = null;
    for (let i = 0; i < 2000; i++) {
      last = await p.command(`RCPT TO:<nobody${i}@localhost>`);
      if (!last) break;
      codes.push(last.code);
      if (last.code === 421) break;
    }
    assert.match(last?.text ?? '', /^421 4\.7\.0 mx\.tsubame\.test Error: too many errors$/);
    assert.equal(codes.filter((c) => c === 550).length, 20, `answers: ${codes.join(' ')}`);
    assert.ok(await p.waitClosed(), 'the connection is closed after the 421');
  } finally {
    p.close();
  }
  // The refusals were logged as J records, 20 of them, no more.
  assert.equal(defaults.mailLog().filter((r) => r.event === 'J' && r.from === 'dictionary@attacker.test').length, 20);
});

test('500 MAIL/RSET cycles: after 100 junk commands each RSET is an error; 421 4.7.0 and close well before 500', async () => {
  const p = await defaults.probe(EXTERNAL_IP);
  try {
    await p.hello();
    let cycles = 0;
    let last: Reply | null = null;
    for (; cycles < 500; cycles++) {
      last = await p.command('MAIL FROM:<cycler@attacker.test>');
      if (last?.code !== 250) break;
      last = await p.command('RSET');
      if (last?.code !== 250) break;
    }
    assert.match(last?.text ?? '', /^421 4\.7\.0 .*too many errors/);
    // 100 free RSETs, then 20 counted as errors: the 121st cycle is refused.
    assert.ok(cycles > 100 && cycles <= 121, `stopped after ${cycles} cycles`);
    assert.ok(await p.waitClosed());
  } finally {
    p.close();
  }
});

test('NOOP and VRFY are junk commands too', async () => {
  const p = await defaults.probe(EXTERNAL_IP);
  try {
    await p.hello();
    const verbs = ['NOOP', 'VRFY joe'];
    let sent = 0;
    let last: Reply | null = null;
    for (; sent < 400; sent++) {
      last = await p.command(verbs[sent % verbs.length]!);
      if (!last || last.code === 421) break;
    }
    assert.match(last?.text ?? '', /^421 4\.7\.0 /);
    assert.ok(sent > 100 && sent <= 120, `closed after ${sent} junk commands`);
  } finally {
    p.close();
  }
});

test('10,000 NOOPs in one write: 100 answered, then the junk counts as errors and the session ends in 421 4.7.0', async () => {
  const p = await defaults.probe(EXTERNAL_IP);
  try {
    await p.hello();
    p.write('NOOP\r\n'.repeat(10_000));
    const codes: number[] = [];
    for (;;) {
      const r = await p.reply(10_000);
      if (!r) break;
      codes.push(r.code);
      if (r.code === 421) break;
    }
    assert.equal(codes.at(-1), 421);
    assert.equal(codes.length, 121, 'NOOPs 101..120 are errors 1..20; the next one is refused');
    assert.ok(await p.waitClosed());
  } finally {
    p.close();
  }
});

test('RCPTs over MAX_RECIPIENTS (452 4.5.3) are flow control, not errors: the message still goes', async () => {
  const p = await defaults.probe(INTERNAL_IP);
  try {
    await p.hello();
    let batch = 'MAIL FROM:<list@client.test>\r\n';
    for (let i = 0; i < 1050; i++) batch += `RCPT TO:<joe+${i}@localhost>\r\n`;
    p.write(batch + 'DATA\r\n');
    assert.equal((await p.reply())?.code, 250);
    const codes = new Map<number, number>();
    for (let i = 0; i < 1050; i++) {
      const r = await p.reply();
      codes.set(r!.code, (codes.get(r!.code) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries(codes), { 250: 1000, 452: 50 });
    assert.equal((await p.reply())?.code, 354);
    assert.equal((await p.command('Subject: list\r\n\r\nbody\r\n.'))?.code, 250);
  } finally {
    p.close();
  }
});

test('past the soft limit each reply waits SMTP_ERROR_SLEEP_TIME; another session is not held up meanwhile', async () => {
  const p = await small.probe(EXTERNAL_IP);
  const other = await small.probe(EXTERNAL_IP);
  try {
    await p.hello();
    await other.hello('other.test');
    assert.equal((await p.command('MAIL FROM:<slow@attacker.test>'))?.code, 250);
    for (let i = 0; i < 3; i++) {
      const { reply, ms } = await timed(p, `RCPT TO:<nobody${i}@localhost>`);
      assert.equal(reply?.code, 550);
      assert.ok(ms < SLEEP_MS - 200, `error ${i + 1} answered after ${ms.toFixed(0)} ms, before the soft limit`);
    }
    // Three errors: the soft limit. The next command waits, whatever it is.
    const delayed = timed(p, 'RCPT TO:<joe@localhost>');
    const others = await timed(other, 'NOOP');
    assert.equal(others.reply?.code, 250);
    assert.ok(others.ms < SLEEP_MS / 2, `the other session waited ${others.ms.toFixed(0)} ms`);
    const { reply, ms } = await delayed;
    assert.equal(reply?.code, 250, 'a good recipient is still accepted');
    assert.ok(ms >= SLEEP_MS - 20, `answered after ${ms.toFixed(0)} ms`);
  } finally {
    p.close();
    other.close();
  }
});

test('an ordinary session with a few errors is not slowed, and an accepted message starts the count again', async () => {
  const p = await small.probe(INTERNAL_IP);
  try {
    await p.hello();
    for (let round = 0; round < 3; round++) {
      const times: number[] = [];
      const step = async (line: string, code: number) => {
        const { reply, ms } = await timed(p, line);
        assert.equal(reply?.code, code, `${line}: ${reply?.text}`);
        times.push(ms);
      };
      await step('MAIL FROM:<writer@client.test>', 250);
      await step('RCPT TO:<typo@localhost>', 550);
      await step('RCPT TO:<joe@localhost>', 250);
      await step('RCPT TO:<another-typo@localhost>', 550);
      await step('DATA', 354);
      await step(`Subject: round ${round}\r\n\r\nhello\r\n.`, 250);
      // Two errors per round, six in all, the hard limit: never reached, as each message resets the count.
      assert.ok(Math.max(...times) < SLEEP_MS - 200, `round ${round}: ${times.map((t) => t.toFixed(0)).join(' ')} ms`);
    }
    assert.equal((await p.command('QUIT'))?.code, 221);
  } finally {
    p.close();
  }
});

test('DATA and RSET take no argument: 501 5.5.4, and the transaction goes on', async () => {
  const p = await defaults.probe(INTERNAL_IP);
  try {
    await p.hello();
    assert.equal((await mailTo(p, 'joe@localhost'))?.code, 250);
    assert.equal((await p.command('DATA foo'))?.text, '501 5.5.4 Syntax: DATA');
    assert.equal((await p.command('RSET now'))?.text, '501 5.5.4 Syntax: RSET');
    assert.equal((await p.command('DATA'))?.code, 354, 'the transaction was not reset');
    assert.equal((await p.command('Subject: x\r\n\r\nbody\r\n.'))?.code, 250);
  } finally {
    p.close();
  }
});
