// Hostile input, one case per test: each gets a clean SMTP reply, nothing bad is queued, and the
// session (or at least the service) keeps working.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../helpers/instance.js';
import { SmtpFixture, mailTo, type SmtpProbe } from './smtp-harness.js';

const MAX_SIZE = 20_000;
let fx: SmtpFixture;

before(async () => {
  fx = await SmtpFixture.start({ mailboxes: ['joe'], options: `MAX_MESSAGE_SIZE=${MAX_SIZE}\nMAX_RECIPIENTS=5\n` });
});
after(async () => {
  await fx?.stop();
});

async function session<T>(fn: (p: SmtpProbe) => Promise<T>): Promise<T> {
  const p = await fx.probe();
  try {
    await p.hello();
    return await fn(p);
  } finally {
    p.close();
  }
}

/** MAIL + RCPT joe + DATA, then the raw bytes given (which must end the data); returns the final reply. */
async function sendData(p: SmtpProbe, raw: string | Buffer): Promise<string> {
  assert.equal((await mailTo(p, 'joe@localhost'))!.code, 250);
  assert.equal((await p.command('DATA'))!.code, 354);
  p.write(raw);
  return (await p.reply(10_000))!.text;
}

async function stillServes(p: SmtpProbe): Promise<void> {
  const r = await p.command('NOOP');
  assert.equal(r?.text, '250 2.0.0 OK');
}

function tmpFiles(): string[] {
  const dir = join(fx.root, 'queue', '.tmp');
  return existsSync(dir) ? readdirSync(dir) : [];
}

test('bare LF in DATA: 550 5.5.2, nothing queued', async () => {
  await session(async (p) => {
    assert.equal(await sendData(p, 'Subject: lf\r\n\r\nbare\nline\r\n.\r\n'), '550 5.5.2 Message contains bare CR or LF');
    await stillServes(p);
  });
  assert.deepEqual(fx.allQueueFiles(), []);
});

test('bare CR in DATA: 550 5.5.2, nothing queued', async () => {
  await session(async (p) => {
    assert.equal(await sendData(p, 'Subject: cr\r\n\r\nbare\rcr\r\n.\r\n'), '550 5.5.2 Message contains bare CR or LF');
    await stillServes(p);
  });
  assert.deepEqual(fx.allQueueFiles(), []);
});

test('<LF>.<LF> smuggling: one refusal, no second message, no reply to the smuggled commands', async () => {
  await session(async (p) => {
    const smuggle =
      'Subject: first\r\n\r\nhello\n.\nMAIL FROM:<evil@spoofed.example>\nRCPT TO:<joe@localhost>\nDATA\nSubject: smuggled\n\nsmuggled\n.\n' +
      'MAIL FROM:<evil@spoofed.example>\r\nRCPT TO:<joe@localhost>\r\nDATA\r\nSubject: smuggled2\r\n\r\nx';
    assert.equal(await sendData(p, smuggle + '\r\n.\r\n'), '550 5.5.2 Message contains bare CR or LF');
    // the very next reply is the NOOP's: none of the smuggled commands was run
    await stillServes(p);
  });
  assert.deepEqual(fx.allQueueFiles(), []);
});

test('a line over 998 octets: 550 5.5.2, drained, nothing queued', async () => {
  await session(async (p) => {
    const reply = await sendData(p, `Subject: long\r\n\r\n${'x'.repeat(999)}\r\n${'y'.repeat(5000)}\r\n.\r\n`);
    assert.equal(reply, '550 5.5.2 Message contains a line longer than 998 octets');
    await stillServes(p);
  });
  assert.deepEqual(fx.allQueueFiles(), []);
});

test('SIZE over the limit at MAIL: 552 5.3.4', async () => {
  await session(async (p) => {
    const r = await p.command(`MAIL FROM:<big@client.test> SIZE=${MAX_SIZE + 1}`);
    assert.match(r!.text, /^552 5\.3\.4 /);
    assert.equal((await p.command(`MAIL FROM:<ok@client.test> SIZE=${MAX_SIZE}`))!.code, 250);
  });
});

test('an oversize stream without SIZE: 552 5.3.4 after the data, nothing queued', async () => {
  await session(async (p) => {
    const line = 'z'.repeat(78) + '\r\n';
    const reply = await sendData(p, 'Subject: big\r\n\r\n' + line.repeat(Math.ceil(MAX_SIZE / line.length) + 10) + '.\r\n');
    assert.equal(reply, `552 5.3.4 Message size exceeds fixed maximum message size of ${MAX_SIZE} octets`);
    await stillServes(p);
  });
  assert.deepEqual(fx.allQueueFiles(), []);
  assert.deepEqual(tmpFiles(), []);
});

test('NUL byte in commands: 5xx reply, session goes on', async () => {
  await session(async (p) => {
    assert.match((await p.command('MAIL FROM:<a\0b@client.test>'))!.text, /^501 5\.1\.7 /);
    assert.match((await p.command('NO\0OP'))!.text, /^500 5\.5\.2 /);
    assert.match((await p.command('EHLO bad\0name'))!.text, /^501 /);
    await stillServes(p);
  });
});

test('invalid UTF-8 and non-ASCII without SMTPUTF8 in MAIL FROM: 553 5.6.7, session goes on', async () => {
  await session(async (p) => {
    const invalid = await p.command('MAIL FROM:<\xff\xfe@client.test>');
    assert.equal(invalid!.text, '553 5.6.7 Address is not valid UTF-8');
    p.write(Buffer.concat([Buffer.from('MAIL FROM:<'), Buffer.from('jörg', 'utf8'), Buffer.from('@client.test>\r\n')]));
    assert.equal((await p.reply())!.text, '553 5.6.7 Non-ASCII address requires the SMTPUTF8 parameter');
    p.write(Buffer.concat([Buffer.from('MAIL FROM:<'), Buffer.from('jörg', 'utf8'), Buffer.from('@client.test> SMTPUTF8\r\n')]));
    assert.equal((await p.reply())!.code, 250);
  });
});

test('too many recipients: 452 4.5.3 past MAX_RECIPIENTS; the accepted ones are queued', async () => {
  await session(async (p) => {
    assert.equal((await p.command('MAIL FROM:<many@client.test>'))!.code, 250);
    for (let i = 1; i <= 5; i++) assert.equal((await p.command(`RCPT TO:<joe+${i}@localhost>`))!.code, 250);
    assert.match((await p.command('RCPT TO:<joe+6@localhost>'))!.text, /^452 4\.5\.3 /);
    assert.equal((await p.command('DATA'))!.code, 354);
    assert.equal((await p.command('Subject: five\r\n\r\nfive\r\n.'))!.code, 250);
  });
  const files = fx.queueFiles('l');
  assert.equal(files.length, 1);
  const { envelope } = await fx.readQueued(files[0]!);
  assert.equal(envelope.recipients.length, 5);
  rmSync(files[0]!);
});

test('RCPT without MAIL and DATA without RCPT: 503 5.5.1', async () => {
  await session(async (p) => {
    assert.match((await p.command('RCPT TO:<joe@localhost>'))!.text, /^503 5\.5\.1 /);
    assert.match((await p.command('DATA'))!.text, /^503 5\.5\.1 /);
    assert.equal((await p.command('MAIL FROM:<x@client.test>'))!.code, 250);
    assert.match((await p.command('DATA'))!.text, /^503 5\.5\.1 /);
  });
});

test('client disconnects mid-DATA: nothing queued, no temporary file left', async () => {
  // default size limit, so the message is big enough to be streamed to a temporary file
  const own = await SmtpFixture.start({ mailboxes: ['joe'] });
  const tmp = join(own.root, 'queue', '.tmp');
  const tmpNow = () => (existsSync(tmp) ? readdirSync(tmp) : []);
  try {
    const p = await own.probe();
    await p.hello();
    assert.equal((await mailTo(p, 'joe@localhost'))!.code, 250);
    assert.equal((await p.command('DATA'))!.code, 354);
    p.write('Subject: cut\r\n\r\n' + ('q'.repeat(70) + '\r\n').repeat(3000));
    await waitFor(() => tmpNow().length > 0, { timeoutMs: 5000, what: 'the message to stream into a temporary file' });
    p.close();
    await waitFor(() => tmpNow().length === 0, { timeoutMs: 5000, what: 'the temporary file to go' });
    assert.deepEqual(own.allQueueFiles(), []);
    // the service goes on
    const q = await own.probe();
    try {
      await q.hello();
      assert.equal((await q.command('NOOP'))?.text, '250 2.0.0 OK');
    } finally {
      q.close();
    }
  } finally {
    await own.stop();
  }
});

test('a command line over the limit closes the session with 421; the service goes on', async () => {
  const p = await fx.probe();
  try {
    await p.hello();
    p.write('NOOP ' + 'a'.repeat(5000));
    const r = await p.reply();
    assert.match(r!.text, /^421 /);
    assert.ok(await p.waitClosed());
  } finally {
    p.close();
  }
  await session(async (q) => stillServes(q));
});

test('queue not writable: 452 4.3.1 at the end of DATA, nothing queued', async () => {
  const broken = await SmtpFixture.start({ mailboxes: ['joe'] });
  try {
    // queue/l is a file: no directory can be made there (works as root too)
    writeFileSync(join(broken.root, 'queue', 'l'), 'in the way');
    const p = await broken.probe();
    try {
      await p.hello();
      assert.equal((await mailTo(p, 'joe@localhost'))!.code, 250);
      assert.equal((await p.command('DATA'))!.code, 354);
      const r = await p.command('Subject: nowhere\r\n\r\nbody\r\n.');
      assert.equal(r!.text, '452 4.3.1 Insufficient system storage');
      assert.equal((await p.command('NOOP'))!.code, 250);
    } finally {
      p.close();
    }
    assert.deepEqual(broken.allQueueFiles(), []);
    const tmp = join(broken.root, 'queue', '.tmp');
    assert.deepEqual(existsSync(tmp) ? readdirSync(tmp) : [], []);
    const j = broken.mailLog().filter((r) => r.event === 'J');
    assert.equal(j.length, 1);
    assert.match(j[0]!.status, /^452 4\.3\.1/);
  } finally {
    await broken.stop();
  }
});
