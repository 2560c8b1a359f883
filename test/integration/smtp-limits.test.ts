// Session limits and timing: BANNER_PURGE_DELAY (external) vs BANNER_PURGE_DELAY_INTERNAL, early
// talkers, MAX_BAD_COMMANDS, MAX_MESSAGES_PER_SESSION, MAX_CONNS_PER_IP, connection counts and
// a graceful close.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/instance.js';
import { SmtpFixture, SmtpProbe, SERVER_IP, EXTERNAL_IP, INTERNAL_IP, mailTo } from './smtp-harness.js';

const EXTERNAL_DELAY_MS = 300;
let fx: SmtpFixture;
let changes = 0;

before(async () => {
  fx = await SmtpFixture.start({
    mailboxes: ['joe'],
    options: `BANNER_PURGE_DELAY=${EXTERNAL_DELAY_MS / 1000}\nBANNER_PURGE_DELAY_INTERNAL=0\nMAX_BAD_COMMANDS=3\nMAX_MESSAGES_PER_SESSION=2\nMAX_CONNS_PER_IP=2\n`,
  });
  fx.service.onChange(() => changes++);
});
after(async () => {
  await fx?.stop();
});

async function greetingTime(localAddress: string): Promise<number> {
  const p = await fx.probe(localAddress);
  try {
    const r = await p.reply(5000);
    assert.equal(r!.code, 220);
    return p.firstByteAt! - p.connectedAt;
  } finally {
    p.close();
  }
}

test('an internal client is greeted at once (< 50 ms)', async () => {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) times.push(await greetingTime(INTERNAL_IP));
  assert.ok(Math.min(...times) < 50, `greeting after ${times.map((t) => t.toFixed(1))} ms`);
});

test('an external client waits BANNER_PURGE_DELAY for the greeting', async () => {
  const t = await greetingTime(EXTERNAL_IP);
  assert.ok(t >= EXTERNAL_DELAY_MS - 20, `greeting after ${t.toFixed(1)} ms`);
});

test('an external early talker gets 421 and is disconnected; nothing else is answered', async () => {
  const p = await fx.probe(EXTERNAL_IP);
  try {
    p.write('EHLO early.test\r\nMAIL FROM:<spam@early.test>\r\n');
    const r = await p.reply(5000);
    assert.match(r!.text, /^421 .*You talk too soon/);
    assert.ok(await p.waitClosed());
  } finally {
    p.close();
  }
});

test('an internal client may talk first (no purge delay): its pipelined commands are served', async () => {
  const p = await fx.probe(INTERNAL_IP);
  try {
    p.write('EHLO eager.test\r\nNOOP\r\n');
    assert.equal((await p.reply())!.code, 220);
    assert.equal((await p.reply())!.code, 250);
    assert.equal((await p.reply())!.text, '250 2.0.0 OK');
  } finally {
    p.close();
  }
});

test('MAX_BAD_COMMANDS=3: the third unknown command ends the session with 421', async () => {
  const p = await fx.probe(INTERNAL_IP);
  try {
    await p.hello();
    assert.match((await p.command('BOGUS1'))!.text, /^500 5\.5\.2 /);
    assert.match((await p.command('BOGUS2'))!.text, /^500 5\.5\.2 /);
    assert.match((await p.command('BOGUS3'))!.text, /^421 /);
    assert.ok(await p.waitClosed());
  } finally {
    p.close();
  }
});

test('MAX_MESSAGES_PER_SESSION=2: the third MAIL gets 421 4.7.0', async () => {
  const p = await fx.probe(INTERNAL_IP);
  try {
    await p.hello();
    for (let i = 1; i <= 2; i++) {
      assert.equal((await mailTo(p, 'joe@localhost'))!.code, 250);
      assert.equal((await p.command('DATA'))!.code, 354);
      assert.equal((await p.command(`Subject: ${i}\r\n\r\nbody\r\n.`))!.code, 250);
    }
    assert.match((await p.command('MAIL FROM:<third@client.test>'))!.text, /^421 4\.7\.0 /);
    assert.ok(await p.waitClosed());
  } finally {
    p.close();
  }
  assert.equal(fx.queueFiles('l').length, 2);
});

test('MAX_CONNS_PER_IP=2: a third connection from one address gets 421 4.7.0; counts follow', async () => {
  const a = await fx.probe(EXTERNAL_IP);
  const b = await fx.probe(EXTERNAL_IP);
  let c: SmtpProbe | null = null;
  try {
    await waitFor(() => fx.service.openConnections() === 2, { timeoutMs: 3000, what: 'two open sessions' });
    const before = changes;
    c = await fx.probe(EXTERNAL_IP);
    const r = await c.reply(2000);
    assert.match(r!.text, /^421 4\.7\.0 Too many connections/);
    assert.ok(await c.waitClosed());
    assert.ok(changes > before, 'onChange fired');
    // another address is not affected
    const other = await SmtpProbe.connect(SERVER_IP, fx.port, '127.0.5.3');
    try {
      assert.equal((await other.reply(3000))!.code, 220);
    } finally {
      other.close();
    }
    a.close();
    await waitFor(() => fx.service.openConnections() <= 1, { timeoutMs: 3000, what: 'a session to close' });
    const d = await fx.probe(EXTERNAL_IP);
    try {
      assert.equal((await d.reply(3000))!.code, 220);
    } finally {
      d.close();
    }
  } finally {
    a.close();
    b.close();
    c?.close();
  }
  await waitFor(() => fx.service.openConnections() === 0, { timeoutMs: 5000, what: 'all sessions closed' });
});

test('close(): new connections get 421 4.3.2, open sessions get the grace period, then 421', async () => {
  const own = await SmtpFixture.start({ mailboxes: ['joe'] });
  try {
    const p = await own.probe(INTERNAL_IP);
    await p.hello();
    const started = performance.now();
    const closing = own.service.close(400);
    const late = await own.probe(INTERNAL_IP);
    assert.equal((await late.reply(2000))!.text, '421 4.3.2 Service shutting down, try again later');
    late.close();
    // the open session still works during the grace period
    assert.equal((await p.command('NOOP'))!.code, 250);
    const r = await p.reply(3000);
    assert.match(r!.text, /^421 4\.3\.2 /);
    assert.ok(await p.waitClosed());
    await closing;
    assert.ok(performance.now() - started >= 350);
    assert.equal(own.service.openConnections(), 0);
  } finally {
    await own.stop();
  }
});
