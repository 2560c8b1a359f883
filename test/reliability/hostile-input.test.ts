// Hostile SMTP input (DESIGN.md "What must always hold"; mta-anchors.md §3.6): every case gets a
// definite reply — code and enhanced status code — and leaves a definite queue: how many files
// were added, and nothing partial in queue/.tmp. Extends test/integration/smtp-hostile.test.ts,
// smtp-limits.test.ts and smtp-tls.test.ts (which are not repeated here). The 100 MB stream runs
// against a real instance (bin/start-msg) so that the server process's memory can be read.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../helpers/instance.js';
import { MtaInstance, isAlive } from '../helpers/running-instance.js';
import {
  ReliabilityFixture, SmtpProbe, TEST_IMTA, INTERNAL_IP, EXTERNAL_IP, OTHER_EXTERNAL_IP,
  assertReply, makeCertificate, processMemory, streamOut, listFiles,
} from './helpers.js';

const MAX_SIZE = 1_000_000;
let fx: ReliabilityFixture;

before(async () => {
  fx = await ReliabilityFixture.start({ mailboxes: ['joe', 'mary'], options: `MAX_MESSAGE_SIZE=${MAX_SIZE}\n` });
});
after(async () => {
  await fx?.stop();
});

async function session<T>(fn: (p: SmtpProbe) => Promise<T>, from: string = INTERNAL_IP, on: ReliabilityFixture = fx): Promise<T> {
  const p = await on.probe(from);
  try {
    await p.hello();
    return await fn(p);
  } finally {
    p.close();
  }
}

/** MAIL + RCPT joe + DATA (354), then the raw bytes given, which must end the data; returns the reply to them. */
async function sendData(p: SmtpProbe, raw: string | Buffer, rcpt = 'joe@localhost') {
  assertReply(await p.command('MAIL FROM:<sender@client.test>'), '250 2.1.0', 'MAIL');
  assertReply(await p.command(`RCPT TO:<${rcpt}>`), '250 2.1.5', 'RCPT');
  assertReply(await p.command('DATA'), '354 -', 'DATA');
  p.write(raw);
  return p.reply(15_000);
}

/** The session still works, and the very next reply is NOOP's (nothing smuggled was answered). */
async function stillServes(p: SmtpProbe): Promise<void> {
  assertReply(await p.command('NOOP'), '250 2.0.0', 'NOOP after the case');
}

/** The stored message without the Received: field the server put in front. */
async function storedBody(file: string, on: ReliabilityFixture = fx): Promise<string> {
  const { body } = await on.readQueued(file);
  const text = body.toString('latin1');
  return text.replace(/^Received: [^]*?\r\n(?![\t ])/, '');
}

// ------------------------------------------------------------------ end-of-data smuggling

const SMUGGLED = 'MAIL FROM:<ceo@victim.example>\r\nRCPT TO:<mary@localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\nwire the money\r\n';

describe('end-of-data smuggling variants (SMTP smuggling, CVE-2023-51764 class)', () => {
  const refused: Array<[string, string]> = [
    ['<CR>.<CR>', '\r.\r'],
    ['<LF>.<CR><LF>', '\n.\r\n'],
    ['<CR><LF>.<LF>', '\r\n.\n'],
    ['<CR><LF>.<CR>', '\r\n.\r'],
    ['<CR><LF>.<CR><CR><LF>', '\r\n.\r\r\n'],
    ['<LF>..<LF> (dot-stuffed bare LF)', '\n..\n'],
  ];
  for (const [name, fake] of refused) {
    test(`${name} then smuggled commands: 550 5.5.2, no message at all, no reply to the smuggled commands`, async () => {
      const q = fx.queueMark();
      await session(async (p) => {
        assertReply(await sendData(p, `Subject: cover\r\n\r\nhello${fake}${SMUGGLED}.\r\n`), '550 5.5.2');
        await stillServes(p);
      });
      q.expect(0);
    });
  }

  const content: Array<[string, string]> = [
    ['<CR><LF><NUL>.<CR><LF>', '\r\n\0.\r\n'],
    ['<CR><LF>.<NUL><CR><LF>', '\r\n.\0\r\n'],
  ];
  for (const [name, fake] of content) {
    test(`${name} is content, not an end: one message (250), the smuggled commands are inside it`, async () => {
      const q = fx.queueMark();
      await session(async (p) => {
        assertReply(await sendData(p, `Subject: cover\r\n\r\nhello${fake}${SMUGGLED}.\r\n`), '250 2.0.0');
        await stillServes(p);
      });
      const [file] = q.expect(1);
      const body = await storedBody(file!);
      assert.equal(body, `Subject: cover\r\n\r\nhello${fake}${SMUGGLED}`);
      const { envelope } = await fx.readQueued(file!);
      assert.deepEqual(envelope.recipients.map((r) => r.address), ['joe@localhost'], 'nobody else got mail');
    });
  }
});

// ------------------------------------------------------------------ long lines

test('a command line of 10,000 octets: 421 4.4.2 and the connection is closed; the service goes on', async () => {
  const p = await fx.probe();
  try {
    await p.hello();
    p.write(`MAIL FROM:<${'a'.repeat(10_000)}@client.test>\r\n`);
    assertReply(await p.reply(), '421 4.4.2');
    assert.ok(await p.waitClosed());
  } finally {
    p.close();
  }
  await session(stillServes);
});

test('1 MB without any line end in command mode: cut at the command limit (421 4.4.2), not buffered', async () => {
  const p = await fx.probe();
  try {
    await p.hello();
    const started = performance.now();
    p.write('N'.repeat(1 << 20));
    assertReply(await p.reply(), '421 4.4.2');
    assert.ok(await p.waitClosed());
    assert.ok(performance.now() - started < 3000);
  } finally {
    p.close();
  }
});

test('a data line of 10,000 octets: 550 5.5.2 at the end of DATA, nothing queued, session goes on', async () => {
  const q = fx.queueMark();
  await session(async (p) => {
    const r = await sendData(p, `Subject: long\r\n\r\n${'x'.repeat(10_000)}\r\n.\r\n`);
    assert.equal(r?.text, '550 5.5.2 Message contains a line longer than 998 octets');
    await stillServes(p);
  });
  q.expect(0);
});

test('a header line of 500 kB with no line end until the dot: 550 5.5.2, nothing queued', async () => {
  const q = fx.queueMark();
  await session(async (p) => {
    assertReply(await sendData(p, `X-Big: ${'h'.repeat(500_000)}\r\n.\r\n`), '550 5.5.2');
    await stillServes(p);
  });
  q.expect(0);
});

// ------------------------------------------------------------------ recipients

test('100,000 RCPT pipelined: 1,000 accepted (MAX_RECIPIENTS), 99,000 × 452 4.5.3, one message with 1,000 recipients, bounded time', async () => {
  const q = fx.queueMark();
  const started = performance.now();
  await session(async (p) => {
    let batch = 'MAIL FROM:<bulk@client.test>\r\n';
    for (let i = 0; i < 100_000; i++) batch += `RCPT TO:<joe+${i}@localhost>\r\n`;
    p.write(batch + 'DATA\r\n');
    assertReply(await p.reply(), '250 2.1.0');
    const seen = new Map<string, number>();
    for (let i = 0; i < 100_000; i++) {
      const r = await p.reply(20_000);
      assert.ok(r, `connection closed after ${i} RCPT replies`);
      const key = r.text.slice(0, 9);
      seen.set(key, (seen.get(key) ?? 0) + 1);
      // the first 1,000 are accepted, every later one refused: the limit holds in order
      assert.equal(key, i < 1000 ? '250 2.1.5' : '452 4.5.3', `RCPT ${i}: ${r.text}`);
    }
    assert.deepEqual(Object.fromEntries(seen), { '250 2.1.5': 1000, '452 4.5.3': 99_000 });
    assertReply(await p.reply(), '354 -');
    assertReply(await p.command('Subject: bulk\r\n\r\nto many\r\n.'), '250 2.0.0');
    await stillServes(p);
  });
  assert.ok(performance.now() - started < 30_000, `took ${performance.now() - started} ms`);
  const [file] = q.expect(1);
  const { envelope } = await fx.readQueued(file!);
  assert.equal(envelope.recipients.length, 1000);
  assert.equal(envelope.recipients[999]!.address, 'joe+999@localhost');
});

test('DATA after every RCPT was refused: 503 5.5.1, nothing queued', async () => {
  const q = fx.queueMark();
  await session(async (p) => {
    assertReply(await p.command('MAIL FROM:<a@client.test>'), '250 2.1.0');
    assertReply(await p.command('RCPT TO:<nobody@localhost>'), '550 5.1.1');
    assertReply(await p.command('RCPT TO:<x@blocked.test>'), '550 5.1.2');
    assertReply(await p.command('DATA'), '503 5.5.1');
    await stillServes(p);
  }, EXTERNAL_IP);
  q.expect(0);
});

// ------------------------------------------------------------------ NUL and 8-bit

test('NUL in RCPT: 501 5.1.3; NUL in DATA is kept as it came (8-bit clean, one message)', async () => {
  const q = fx.queueMark();
  await session(async (p) => {
    assertReply(await p.command('MAIL FROM:<a@client.test>'), '250 2.1.0');
    assertReply(await p.command('RCPT TO:<jo\0e@localhost>'), '501 5.1.3');
    assertReply(await p.command('RCPT TO:<joe@localhost>'), '250 2.1.5');
    assertReply(await p.command('DATA'), '354 -');
    assertReply(await p.command('Subject: nul\r\n\r\na\0b\r\n.'), '250 2.0.0');
  });
  const [file] = q.expect(1);
  assert.equal(await storedBody(file!), 'Subject: nul\r\n\r\na\0b\r\n');
});

test('invalid UTF-8 in RCPT: 553 5.6.7 with and without SMTPUTF8; valid UTF-8 needs SMTPUTF8', async () => {
  await session(async (p) => {
    assertReply(await p.command('MAIL FROM:<a@client.test>'), '250 2.1.0');
    assertReply(await p.command('RCPT TO:<\xff\xfe@localhost>'), '553 5.6.7', 'invalid, no SMTPUTF8');
    p.write(Buffer.concat([Buffer.from('RCPT TO:<'), Buffer.from('jörg', 'utf8'), Buffer.from('@localhost>\r\n')]));
    assertReply(await p.reply(), '553 5.6.7', 'valid UTF-8, no SMTPUTF8');
    assertReply(await p.command('RSET'), '250 2.0.0');
    assertReply(await p.command('MAIL FROM:<a@client.test> SMTPUTF8'), '250 2.1.0');
    assertReply(await p.command('RCPT TO:<\xc3\x28@localhost>'), '553 5.6.7', 'invalid, SMTPUTF8');
    p.write(Buffer.concat([Buffer.from('RCPT TO:<'), Buffer.from('jörg', 'utf8'), Buffer.from('@localhost>\r\n')]));
    assertReply(await p.reply(), '550 5.1.1', 'valid UTF-8 with SMTPUTF8 passes the charset check (no such user)');
  });
});

test('invalid UTF-8 and 8-bit octets in the body: accepted and stored octet for octet', async () => {
  const q = fx.queueMark();
  const raw = Buffer.concat([Buffer.from('Subject: 8bit\r\n\r\n'), Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0x80, 0x0d, 0x0a])]);
  await session(async (p) => assertReply(await sendData(p, Buffer.concat([raw, Buffer.from('.\r\n')])), '250 2.0.0'));
  const [file] = q.expect(1);
  assert.equal(await storedBody(file!), raw.toString('latin1'));
});

test('non-ASCII octets in EHLO: accepted, but only printable ASCII reaches the Received: line', async () => {
  const q = fx.queueMark();
  const p = await fx.probe();
  try {
    assertReply(await p.reply(), '220 -');
    p.write('EHLO \xff\xfe.example\r\n');
    assertReply(await p.reply(), '250 -');
    assertReply(await sendData(p, 'Subject: helo\r\n\r\nx\r\n.\r\n'), '250 2.0.0');
  } finally {
    p.close();
  }
  const [file] = q.expect(1);
  const { body } = await fx.readQueued(file!);
  const received = body.toString('latin1').split('\r\n')[0]!;
  assert.match(received, /^Received: from \?+\.example \(\[127\.0\.8\.1\]\)$/);
});

// ------------------------------------------------------------------ order of commands

test('a whole transaction sent before the greeting (external client): only 421 "You talk too soon", closed, nothing queued', async () => {
  const q = fx.queueMark();
  const p = await fx.probe(EXTERNAL_IP);
  try {
    p.write('EHLO early.example\r\nMAIL FROM:<a@early.example>\r\nRCPT TO:<joe@localhost>\r\nDATA\r\nSubject: early\r\n\r\nx\r\n.\r\nQUIT\r\n');
    // the greeting was never sent: the reply answers EHLO, which carries no enhanced code (RFC 2034)
    const r = assertReply(await p.reply(), '421 -');
    assert.equal(r.text, '421 mx.tsubame.test You talk too soon');
    assert.ok(await p.waitClosed());
    assert.equal(await p.reply(), null, 'nothing else was answered');
  } finally {
    p.close();
  }
  q.expect(0);
});

test('MAIL before HELO/EHLO: 503 5.5.1', async () => {
  const p = await fx.probe();
  try {
    assertReply(await p.reply(), '220 -');
    assertReply(await p.command('MAIL FROM:<a@client.test>'), '503 5.5.1');
    assertReply(await p.command('RCPT TO:<joe@localhost>'), '503 5.5.1');
    await stillServes(p);
  } finally {
    p.close();
  }
});

test('EHLO without a name and a 2,000-octet EHLO: 501 (no enhanced code on EHLO replies), session goes on', async () => {
  const p = await fx.probe();
  try {
    assertReply(await p.reply(), '220 -');
    assertReply(await p.command('EHLO'), '501 -');
    assertReply(await p.command(`EHLO ${'h'.repeat(2000)}.example`), '501 -');
    assertReply(await p.command('EHLO ok.example'), '250 -');
    await stillServes(p);
  } finally {
    p.close();
  }
});

test('a second EHLO in a transaction resets it: RCPT then gets 503 5.5.1', async () => {
  await session(async (p) => {
    assertReply(await p.command('MAIL FROM:<a@client.test>'), '250 2.1.0');
    assertReply(await p.command('EHLO again.example'), '250 -');
    assertReply(await p.command('RCPT TO:<joe@localhost>'), '503 5.5.1');
  });
});

test('duplicate MAIL: 503 5.5.1, the first transaction stays intact and is queued with its sender', async () => {
  const q = fx.queueMark();
  await session(async (p) => {
    assertReply(await p.command('MAIL FROM:<first@client.test>'), '250 2.1.0');
    assertReply(await p.command('MAIL FROM:<second@client.test>'), '503 5.5.1');
    assertReply(await p.command('RCPT TO:<joe@localhost>'), '250 2.1.5');
    assertReply(await p.command('DATA'), '354 -');
    assertReply(await p.command('Subject: dup\r\n\r\nx\r\n.'), '250 2.0.0');
  });
  const [file] = q.expect(1);
  assert.equal((await fx.readQueued(file!)).envelope.from, 'first@client.test');
});

test('RSET mid-transaction (pipelined among RCPTs): 250 2.0.0, the earlier recipients are gone, nothing queued', async () => {
  const q = fx.queueMark();
  await session(async (p) => {
    p.write('MAIL FROM:<a@client.test>\r\nRCPT TO:<joe@localhost>\r\nRSET\r\nRCPT TO:<mary@localhost>\r\nDATA\r\n');
    assertReply(await p.reply(), '250 2.1.0');
    assertReply(await p.reply(), '250 2.1.5');
    assertReply(await p.reply(), '250 2.0.0', 'RSET');
    assertReply(await p.reply(), '503 5.5.1', 'RCPT after RSET');
    assertReply(await p.reply(), '503 5.5.1', 'DATA after RSET');
    await stillServes(p);
  });
  q.expect(0);
});

test('a whole transaction in one write (PIPELINING): replies in order, exactly one message', async () => {
  const q = fx.queueMark();
  const p = await fx.probe();
  try {
    assertReply(await p.reply(), '220 -');
    p.write('EHLO pipe.example\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<joe@localhost>\r\nRCPT TO:<mary@localhost>\r\nDATA\r\nSubject: pipe\r\n\r\nx\r\n.\r\nQUIT\r\n');
    for (const expected of ['250 -', '250 2.1.0', '250 2.1.5', '250 2.1.5', '354 -', '250 2.0.0', '221 2.0.0']) assertReply(await p.reply(), expected);
    assert.ok(await p.waitClosed());
  } finally {
    p.close();
  }
  q.expect(1);
});

test('10,000 NOOPs in one write: 10,000 replies in order, within a few seconds (junk command limit off)', async () => {
  // With the default SMTP_JUNK_COMMAND_LIMIT such a flood ends in 421 (smtp-error-limits.test.ts); this is about pipelining.
  const unlimited = await ReliabilityFixture.start({ mailboxes: ['joe'], options: 'SMTP_JUNK_COMMAND_LIMIT=0\n' });
  try {
    await session(async (p) => {
      const started = performance.now();
      p.write('NOOP\r\n'.repeat(10_000) + 'QUIT\r\n');
      for (let i = 0; i < 10_000; i++) assertReply(await p.reply(), '250 2.0.0', `NOOP ${i}`);
      assertReply(await p.reply(), '221 2.0.0');
      assert.ok(performance.now() - started < 10_000);
    }, INTERNAL_IP, unlimited);
  } finally {
    await unlimited.stop();
  }
});

// ------------------------------------------------------------------ commands that are not offered

test('unknown commands: 500 5.5.2 each, the 10th (default MAX_BAD_COMMANDS) gets 421 and the session ends; valid commands do not reset the count', async () => {
  const p = await fx.probe();
  try {
    await p.hello();
    const junk = ['XYZZY', 'BDAT 10 LAST', 'EXPN staff', 'SAML FROM:<a@client.test>', 'TURN', 'XCLIENT ADDR=127.0.8.1', 'WIZ', 'DEBUG', '\x01\x02\x03'];
    for (const [i, cmd] of junk.entries()) {
      assertReply(await p.command(cmd), '500 5.5.2', cmd);
      if (i === 4) await stillServes(p);
    }
    assertReply(await p.command('SHELL'), '421 4.4.2', 'the 10th');
    assert.ok(await p.waitClosed());
  } finally {
    p.close();
  }
});

test('an HTTP request (cross-protocol attack): 421 4.4.2 at once, closed', async () => {
  const p = await fx.probe();
  try {
    await p.hello();
    p.write('POST / HTTP/1.1\r\nHost: mx.tsubame.test\r\nContent-Length: 4\r\n\r\nMAIL');
    assertReply(await p.reply(), '421 4.4.2');
    assert.ok(await p.waitClosed());
  } finally {
    p.close();
  }
});

test('BDAT/CHUNKING is not offered: not in EHLO, BDAT gets 500 5.5.2', async () => {
  const p = await fx.probe();
  try {
    assertReply(await p.reply(), '220 -');
    const ehlo = assertReply(await p.command('EHLO c.example'), '250 -');
    assert.ok(!ehlo.lines.some((l) => /CHUNKING|BINARYMIME/.test(l)), ehlo.text);
    assertReply(await p.command('BDAT 4 LAST'), '500 5.5.2');
    await stillServes(p);
  } finally {
    p.close();
  }
});

test('VRFY does not tell users from non-users (252 2.1.5 for both); EXPN is not offered (500 5.5.2); VRFY alone is 501 5.5.4', async () => {
  await session(async (p) => {
    const known = assertReply(await p.command('VRFY joe'), '252 2.1.5');
    const unknown = assertReply(await p.command('VRFY nobody'), '252 2.1.5');
    assert.equal(known.text, unknown.text);
    assertReply(await p.command('EXPN joe'), '500 5.5.2');
    assertReply(await p.command('VRFY'), '501 5.5.4');
  }, EXTERNAL_IP);
});

test('HELP, with and without an argument: 214 2.0.0', async () => {
  await session(async (p) => {
    assertReply(await p.command('HELP'), '214 2.0.0');
    assertReply(await p.command('HELP MAIL'), '214 2.0.0');
  });
});

test('NOOP with an argument (RFC 5321 §4.1.1.9): 250 2.0.0', async () => {
  await session(async (p) => {
    assertReply(await p.command('NOOP are you there?'), '250 2.0.0');
    assertReply(await p.command(`NOOP ${'z'.repeat(1000)}`), '250 2.0.0');
  });
});

test('AUTH on a channel without maysaslserver: not offered, 503 5.5.1 (Postfix\'s reply), and it grants nothing (an external client still may not relay)', async () => {
  await session(async (p) => {
    const ehlo = assertReply(await p.command('EHLO again.example'), '250 -');
    assert.ok(!ehlo.lines.some((l) => /AUTH/.test(l)), ehlo.text);
    assert.match(assertReply(await p.command('AUTH PLAIN AGpvZQBzZWNyZXQ='), '503 5.5.1').text, /authentication not enabled/);
    assertReply(await p.command('AUTH LOGIN'), '503 5.5.1');
    assertReply(await p.command('MAIL FROM:<joe@localhost>'), '250 2.1.0');
    assertReply(await p.command('RCPT TO:<friend@remote.example>'), '550 5.7.1');
  }, EXTERNAL_IP);
});

// ------------------------------------------------------------------ addresses and parameters

test('MAIL FROM with bad syntax: 501 5.1.7 for each form; the null sender is accepted', async () => {
  await session(async (p) => {
    for (const bad of ['MAIL FROM:user@client.test', 'MAIL FROM:<user@client.test', 'MAIL FROM:<us er@client.test>', 'MAIL FROM:<@>', 'MAIL FROM:<user@>', 'MAIL FROM:<@client.test>', 'MAIL FROM:<a@b@c.test>', 'MAIL FROM:<<a@client.test>>', 'MAIL TO:<a@client.test>', 'MAIL FROM:']) {
      assertReply(await p.command(bad), '501 5.1.7', bad);
    }
    assertReply(await p.command('MAIL FROM:<>'), '250 2.1.0', 'null sender');
  });
});

test('malformed and unknown ESMTP parameters: 501 5.5.4 / 552 5.3.4 / 555 5.5.4', async () => {
  await session(async (p) => {
    const mail: Array<[string, string]> = [
      ['SIZE=abc', '501 5.5.4'],
      ['SIZE=99999999999999999999', '552 5.3.4'],
      ['BODY=FOO', '501 5.5.4'],
      ['RET=FULL RET=HDRS', '501 5.5.4'],
      ['SMTPUTF8=yes', '501 5.5.4'],
      ['FOO=BAR', '555 5.5.4'],
      ['AUTH=<>', '555 5.5.4'],
      ['ENVID=ab+0D+0Acd', '501 5.1.7'],
    ];
    for (const [param, expected] of mail) assertReply(await p.command(`MAIL FROM:<a@client.test> ${param}`), expected, `MAIL ${param}`);
    assertReply(await p.command('MAIL FROM:<a@client.test> SIZE=10 BODY=8BITMIME RET=HDRS ENVID=x1'), '250 2.1.0');
    const rcpt: Array<[string, string]> = [
      ['NOTIFY=NEVER,SUCCESS', '501 5.5.4'],
      ['NOTIFY=SOMETIMES', '501 5.5.4'],
      ['ORCPT=garbage', '501 5.5.4'],
      ['SIZE=10', '555 5.5.4'],
      ['FOO=BAR', '555 5.5.4'],
    ];
    for (const [param, expected] of rcpt) assertReply(await p.command(`RCPT TO:<joe@localhost> ${param}`), expected, `RCPT ${param}`);
    assertReply(await p.command('RCPT TO:<joe@localhost> NOTIFY=FAILURE,DELAY ORCPT=rfc822;joe@localhost'), '250 2.1.5');
  });
});

test('RCPT with a source route: accepted, the route is dropped (RFC 5321 §3.6.1), queued for the final address only', async () => {
  const q = fx.queueMark();
  await session(async (p) => {
    assertReply(await p.command('MAIL FROM:<a@client.test>'), '250 2.1.0');
    assertReply(await p.command('RCPT TO:<@relay1.example,@relay2.example:joe@localhost>'), '250 2.1.5');
    assertReply(await p.command('DATA'), '354 -');
    assertReply(await p.command('Subject: route\r\n\r\nx\r\n.'), '250 2.0.0');
  }, EXTERNAL_IP);
  const [file] = q.expect(1);
  const { envelope } = await fx.readQueued(file!);
  assert.deepEqual(envelope.recipients.map((r) => r.address), ['joe@localhost']);
});

test('RCPT TO:<postmaster> without a domain is accepted (RFC 5321 §4.5.1) and queued for the local postmaster; RCPT TO:<> is 501 5.1.3', async () => {
  const q = fx.queueMark();
  await session(async (p) => {
    assertReply(await p.command('MAIL FROM:<>'), '250 2.1.0');
    assertReply(await p.command('RCPT TO:<>'), '501 5.1.3');
    assertReply(await p.command('RCPT TO:<Postmaster>'), '250 2.1.5');
    assertReply(await p.command('DATA'), '354 -');
    assertReply(await p.command('Subject: pm\r\n\r\nx\r\n.'), '250 2.0.0');
  }, EXTERNAL_IP);
  const [file] = q.expect(1);
  const { envelope } = await fx.readQueued(file!);
  assert.equal(envelope.channel, 'l');
  assert.match(envelope.recipients[0]!.address, /^postmaster@localhost$/i);
});

test('overlong addresses: a 65-octet local part (no such user) 550 5.1.1, a 64-octet label 550 5.1.2, a 300-octet domain 501 5.1.3', async () => {
  await session(async (p) => {
    assertReply(await p.command('MAIL FROM:<a@client.test>'), '250 2.1.0');
    assertReply(await p.command(`RCPT TO:<${'l'.repeat(65)}@localhost>`), '550 5.1.1');
    assertReply(await p.command(`RCPT TO:<joe@${'d'.repeat(64)}.example>`), '550 5.1.2');
    assertReply(await p.command(`RCPT TO:<joe@${('d'.repeat(59) + '.').repeat(5)}example>`), '501 5.1.3');
    assertReply(await p.command('RSET'), '250 2.0.0');
    assertReply(await p.command(`MAIL FROM:<a@${('d'.repeat(59) + '.').repeat(5)}example>`), '501 5.1.7');
  });
});

// ------------------------------------------------------------------ what a message may be

test('header-only message (no blank line, no body): 250, stored as sent', async () => {
  const q = fx.queueMark();
  await session(async (p) => assertReply(await sendData(p, 'Subject: only a header\r\nX-Other: yes\r\n.\r\n'), '250 2.0.0'));
  const [file] = q.expect(1);
  assert.equal(await storedBody(file!), 'Subject: only a header\r\nX-Other: yes\r\n');
});

test('empty message (DATA then the dot at once): 250, stored as the Received: line alone', async () => {
  const q = fx.queueMark();
  await session(async (p) => assertReply(await sendData(p, '.\r\n'), '250 2.0.0'));
  const [file] = q.expect(1);
  const { body } = await fx.readQueued(file!);
  assert.match(body.toString('latin1'), /^Received: [^]*\r\n$/);
  assert.equal(await storedBody(file!), '');
});

// ------------------------------------------------------------------ clients that leave

test('QUIT inside DATA is message content: no 221; the client then leaves: nothing queued', async () => {
  const q = fx.queueMark();
  const p = await fx.probe();
  try {
    await p.hello();
    assertReply(await p.command('MAIL FROM:<a@client.test>'), '250 2.1.0');
    assertReply(await p.command('RCPT TO:<joe@localhost>'), '250 2.1.5');
    assertReply(await p.command('DATA'), '354 -');
    p.write('Subject: bye\r\n\r\nQUIT\r\n');
    await assert.rejects(p.reply(300), /no SMTP reply/, 'QUIT got no reply');
  } finally {
    p.close();
  }
  await waitFor(() => fx.service.openConnections() === 0, { timeoutMs: 5000, what: 'the session to end' });
  q.expect(0);
});

test('QUIT inside DATA followed by the dot: one message containing the QUIT line, session goes on', async () => {
  const q = fx.queueMark();
  await session(async (p) => {
    assertReply(await sendData(p, 'Subject: quit\r\n\r\nQUIT\r\n.\r\n'), '250 2.0.0');
    await stillServes(p);
  });
  const [file] = q.expect(1);
  assert.equal(await storedBody(file!), 'Subject: quit\r\n\r\nQUIT\r\n');
});

test('a client that half-closes (FIN) in the middle of DATA: nothing queued, no temporary file', async () => {
  const q = fx.queueMark();
  const p = await fx.probe();
  try {
    await p.hello();
    assertReply(await p.command('MAIL FROM:<a@client.test>'), '250 2.1.0');
    assertReply(await p.command('RCPT TO:<joe@localhost>'), '250 2.1.5');
    assertReply(await p.command('DATA'), '354 -');
    p.write('Subject: cut\r\n\r\n' + ('q'.repeat(70) + '\r\n').repeat(3000));
    (p.socket).end();
    assert.ok(await p.waitClosed(5000), 'the server closed its side too');
  } finally {
    p.close();
  }
  await waitFor(() => fx.tmpFiles().length === 0, { timeoutMs: 5000, what: 'the temporary file to go' });
  q.expect(0);
});

// ------------------------------------------------------------------ STARTTLS

describe('STARTTLS edge cases', () => {
  let certDir: string;
  let tlsFx: ReliabilityFixture;

  before(async () => {
    certDir = mkdtempSync(join(tmpdir(), 'tsubame-rel-tls-'));
    const lines = makeCertificate(certDir);
    tlsFx = await ReliabilityFixture.start({ imta: TEST_IMTA.replace('tcp_local smtp mx\n', 'tcp_local smtp mx maytlsserver\n'), options: lines, mailboxes: ['joe'] });
  });
  after(async () => {
    await tlsFx?.stop();
    if (certDir) rmSync(certDir, { recursive: true, force: true });
  });

  test('STARTTLS with an argument: 501 5.5.4, no handshake', async () => {
    await session(async (p) => {
      assertReply(await p.command('STARTTLS now'), '501 5.5.4');
      await stillServes(p);
    }, INTERNAL_IP, tlsFx);
  });

  test('STARTTLS in the middle of a transaction forgets it: after TLS, RCPT is 503 5.5.1', async () => {
    const p = await tlsFx.probe(EXTERNAL_IP);
    try {
      await p.hello();
      assertReply(await p.command('MAIL FROM:<before-tls@client.test>'), '250 2.1.0');
      assertReply(await p.command('STARTTLS'), '220 2.0.0');
      const s = await p.startTls();
      try {
        assertReply(await s.command('EHLO after.example'), '250 -');
        assertReply(await s.command('RCPT TO:<joe@localhost>'), '503 5.5.1');
      } finally {
        s.close();
      }
    } finally {
      p.close();
    }
  });

  test('a whole plaintext transaction pipelined behind STARTTLS is discarded: nothing queued, the first TLS reply is EHLO\'s', async () => {
    const q = tlsFx.queueMark();
    const p = await tlsFx.probe(EXTERNAL_IP);
    try {
      await p.hello();
      p.write('STARTTLS\r\nMAIL FROM:<evil@attacker.example>\r\nRCPT TO:<joe@localhost>\r\nDATA\r\nSubject: injected\r\n\r\nx\r\n.\r\nQUIT\r\n');
      assertReply(await p.reply(), '220 2.0.0');
      const s = await p.startTls();
      try {
        const ehlo = assertReply(await s.command('EHLO after.example'), '250 -');
        assert.match(ehlo.lines[0]!, /^250-mx\.tsubame\.test Hello/);
        await stillServes(s);
      } finally {
        s.close();
      }
    } finally {
      p.close();
    }
    q.expect(0);
  });

  test('AUTH after TLS is not offered either: 503 5.5.1', async () => {
    const p = await tlsFx.probe(EXTERNAL_IP);
    try {
      await p.hello();
      assertReply(await p.command('STARTTLS'), '220 2.0.0');
      const s = await p.startTls();
      try {
        const ehlo = assertReply(await s.command('EHLO after.example'), '250 -');
        assert.ok(!ehlo.lines.some((l) => /AUTH/.test(l)), ehlo.text);
        assertReply(await s.command('AUTH PLAIN AGpvZQBzZWNyZXQ='), '503 5.5.1');
      } finally {
        s.close();
      }
    } finally {
      p.close();
    }
  });
});

// ------------------------------------------------------------------ slow and idle clients

describe('slow and idle clients (SMTP_TIMEOUT=1, MAX_CONNS_PER_IP=5)', () => {
  let slow: ReliabilityFixture;

  before(async () => {
    slow = await ReliabilityFixture.start({ mailboxes: ['joe'], options: 'SMTP_TIMEOUT=1\nMAX_CONNS_PER_IP=5\n' });
  });
  after(async () => {
    await slow?.stop();
  });

  test('slowloris in a command (a byte every 1.5 s): 421 4.4.2 about 1 s after a byte, closed', async () => {
    const p = await slow.probe(EXTERNAL_IP);
    const text = 'EHLO slow.example\r\n';
    let sent = 0;
    let lastByteAt = 0;
    const sendByte = () => {
      if (p.closed) return;
      p.write(text[sent++ % text.length]!);
      lastByteAt = performance.now();
    };
    let trickle: NodeJS.Timeout | undefined;
    try {
      assertReply(await p.reply(), '220 -');
      sendByte();
      trickle = setInterval(sendByte, 1500);
      assertReply(await p.reply(6000), '421 4.4.2');
      const idle = performance.now() - lastByteAt;
      assert.ok(await p.waitClosed(3000));
      assert.ok(sent >= 1 && sent < text.length, `the command never completed (${sent} bytes sent)`);
      assert.ok(idle >= 900 && idle < 1500, `cut ${idle.toFixed(0)} ms after the last byte`);
    } finally {
      clearInterval(trickle);
      p.close();
    }
  });

  test('slowloris in DATA: 421 4.4.2, nothing queued, no temporary file', async () => {
    const q = slow.queueMark();
    await session(async (p) => {
      assertReply(await p.command('MAIL FROM:<a@client.test>'), '250 2.1.0');
      assertReply(await p.command('RCPT TO:<joe@localhost>'), '250 2.1.5');
      assertReply(await p.command('DATA'), '354 -');
      p.write('Subject: slow\r\n\r\n' + 'y'.repeat(50_000) + '\r\n');
      assertReply(await p.reply(5000), '421 4.4.2');
      assert.ok(await p.waitClosed(3000));
    }, INTERNAL_IP, slow);
    await waitFor(() => slow.tmpFiles().length === 0, { timeoutMs: 5000, what: 'the temporary file to go' });
    q.expect(0);
  });

  test('40 idle connections from one address: 5 greeted, 35 refused with 421 4.7.0; another address is served; the idle ones are closed by the timeout', async () => {
    const probes: SmtpProbe[] = [];
    try {
      for (let i = 0; i < 40; i++) probes.push(await slow.probe(EXTERNAL_IP));
      const first = await Promise.all(probes.map((p) => p.reply(5000)));
      const greeted = first.filter((r) => r?.code === 220).length;
      const refused = first.filter((r) => r?.text.startsWith('421 4.7.0 Too many connections')).length;
      assert.deepEqual({ greeted, refused }, { greeted: 5, refused: 35 });
      const other = await slow.probe(OTHER_EXTERNAL_IP);
      try {
        assertReply(await other.reply(3000), '220 -');
      } finally {
        other.close();
      }
      const closed = await Promise.all(probes.map((p) => p.waitClosed(5000)));
      assert.ok(closed.every(Boolean), 'every idle connection was closed');
      const idleReplies = await Promise.all(probes.filter((_, i) => first[i]?.code === 220).map((p) => p.reply(100)));
      for (const r of idleReplies) assertReply(r, '421 4.4.2');
      await waitFor(() => slow.service.openConnections() === 0, { timeoutMs: 3000, what: 'no open sessions' });
      const again = await slow.probe(EXTERNAL_IP);
      try {
        assertReply(await again.reply(3000), '220 -');
      } finally {
        again.close();
      }
    } finally {
      for (const p of probes) p.close();
    }
  });
});

// ------------------------------------------------------------------ 100 MB through a real server process

describe('100 MB over SIZE against a running instance (bin/start-msg)', () => {
  const ADDRESS = '127.0.8.11';
  let mta: MtaInstance;
  let serverPid: number;

  before(async () => {
    mta = await MtaInstance.create({ address: ADDRESS, service: 'MIN_PROCS=1\nMAX_PROCS=1\nMAX_LIFE_CONNS=100000' });
    mta.inst.write('etc/imta.cnf', TEST_IMTA);
    mta.inst.write('etc/option.dat', `INTERNAL_IP=${ADDRESS}/32\nLOCAL_HOST=mx.tsubame.test\nDNS_SERVERS=127.0.8.53\n`);
    mkdirSync(join(mta.root, 'mailbox', 'joe', 'new'), { recursive: true });
    const r = await mta.cli('start-msg', ['dispatcher']);
    assert.equal(r.code, 0, r.stderr);
    serverPid = await waitFor(async () => (await mta.processes()).find((p) => p.role === 'smtp_server' && p.ready)?.pid, { what: 'an SMTP server process' });
  });
  after(async () => {
    await mta?.cleanup();
  });

  const queue = () => listFiles(join(mta.root, 'queue')).filter((f) => !f.includes('/.'));

  test('SIZE=104857600 declared at MAIL: 552 5.3.4 before any data', async () => {
    const p = await SmtpProbe.connect(ADDRESS, mta.port, ADDRESS);
    try {
      await p.hello();
      assertReply(await p.command('MAIL FROM:<big@client.test> SIZE=104857600'), '552 5.3.4');
      await stillServes(p);
    } finally {
      p.close();
    }
  });

  test('100 MB streamed without SIZE: 552 5.3.4 after the dot, not buffered (server peak memory grows < 64 MB), process alive, nothing queued', async (t) => {
    const before = processMemory(serverPid);
    assert.ok(before, 'server memory readable');
    let middle: typeof before;
    const p = await SmtpProbe.connect(ADDRESS, mta.port, ADDRESS);
    try {
      await p.hello();
      assertReply(await p.command('MAIL FROM:<big@client.test>'), '250 2.1.0');
      assertReply(await p.command('RCPT TO:<joe@localhost>'), '250 2.1.5');
      assertReply(await p.command('DATA'), '354 -');
      const line = Buffer.from('x'.repeat(78) + '\r\n');
      const block = Buffer.concat(Array.from({ length: 3276 }, () => line)); // 262,080 octets, whole lines
      const total = 100 * 1024 * 1024;
      const started = performance.now();
      // in two halves: if the message were held in memory, the second half would add another 50 MB
      await streamOut(p.socket, total / 2, (_off, size) => block.subarray(0, size), block.length);
      middle = processMemory(serverPid) ?? before;
      await streamOut(p.socket, total / 2, (_off, size) => block.subarray(0, size), block.length);
      p.write('\r\n.\r\n');
      const r = await p.reply(60_000);
      assert.equal(r?.text, '552 5.3.4 Message size exceeds fixed maximum message size of 10240000 octets');
      assert.ok(performance.now() - started < 60_000);
      await stillServes(p);
    } finally {
      p.close();
    }
    assert.ok(isAlive(serverPid), 'the SMTP server process is alive');
    const after = processMemory(serverPid)!;
    const growth = after.peak - before.peak;
    const mb = (n: number) => (n / 1048576).toFixed(1);
    t.diagnostic(`server peak RSS ${mb(before.peak)} → ${mb(middle.peak)} (after 50 MB) → ${mb(after.peak)} MB (after 100 MB)`);
    assert.ok(growth < 64 * 1024 * 1024, `peak RSS grew by ${mb(growth)} MB (from ${mb(before.peak)} MB)`);
    assert.ok(after.peak - middle.peak < 24 * 1024 * 1024, `the second 50 MB raised the peak RSS by ${mb(after.peak - middle.peak)} MB`);
    assert.deepEqual(queue(), []);
    assert.deepEqual(listFiles(join(mta.root, 'queue', '.tmp')), []);
    // and the same process still takes mail
    const q = await SmtpProbe.connect(ADDRESS, mta.port, ADDRESS);
    try {
      await q.hello();
      assertReply(await sendData(q, 'Subject: after\r\n\r\nsmall\r\n.\r\n'), '250 2.0.0');
    } finally {
      q.close();
    }
    assert.equal((await mta.processes()).find((r) => r.role === 'smtp_server')?.pid, serverPid, 'the same process served it');
  });
});
