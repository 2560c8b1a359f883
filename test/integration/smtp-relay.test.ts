// Open relay matrix: an external client (127.0.5.2, outside INTERNAL_IP=127.0.5.1/32) may only
// reach local users and hosted (non-SMTP) channels; every address that would leave through an
// SMTP channel is refused, whatever routing syntax it hides behind. The internal client relays.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { SmtpFixture, mailTo, EXTERNAL_IP, INTERNAL_IP } from './smtp-harness.js';

let fx: SmtpFixture;

before(async () => {
  fx = await SmtpFixture.start({ mailboxes: ['joe'] });
});
after(async () => {
  await fx?.stop();
});

/** RCPT address → what an external client must get: 'accept', or a reply pattern. */
const MATRIX: Array<[string, 'accept' | RegExp]> = [
  ['friend@remote.example', /^550 5\.7\.1 /],
  ['joe@localhost', 'accept'],
  ['JOE@LOCAL.TEST', 'accept'],
  ['anyone@hosted.test', 'accept'],
  // percent hack: never relayed, and `joe%remote.example` is nobody's mailbox
  ['joe%remote.example@localhost', /^550 5\.(7\.1|1\.1) /],
  ['user%remote.example@local.test', /^550 5\.(7\.1|1\.1) /],
  // source route: RFC 5321 says ignore it, so only the final address counts
  ['@remote.example:joe@localhost', 'accept'],
  ['@localhost:friend@remote.example', /^550 5\.7\.1 /],
  // bang path
  ['remote.example!joe@localhost', /^550 5\.(7\.1|1\.1) /],
  ['remote.example!joe', /^5\d\d 5\.\d\.\d+ /],
  // IP literal of a foreign host
  ['joe@[192.0.2.1]', /^550 5\.7\.1 /],
  // quoted local part with @, double @, trailing dot: syntax errors
  ['"joe@remote.example"@localhost', /^5\d\d 5\.\d\.\d+ /],
  ['joe@remote.example@localhost', /^5\d\d 5\.\d\.\d+ /],
];

test('external client: only the genuinely local addresses are accepted', async () => {
  const p = await fx.probe(EXTERNAL_IP);
  try {
    await p.hello();
    assert.equal((await p.command('MAIL FROM:<stranger@outside.example>'))!.code, 250);
    for (const [rcpt, expected] of MATRIX) {
      const r = await p.command(`RCPT TO:<${rcpt}>`);
      assert.ok(r, `reply to ${rcpt}`);
      if (expected === 'accept') assert.equal(r.code, 250, `${rcpt}: ${r.text}`);
      else {
        assert.notEqual(r.code, 250, `${rcpt} must not be accepted`);
        assert.match(r.text, expected, rcpt);
      }
    }
    assert.equal((await p.command('RSET'))!.code, 250);
  } finally {
    p.close();
  }
  // nothing was queued for tcp_local from the outside, and the refusals are in mail.log
  assert.deepEqual(fx.queueFiles('tcp_local'), []);
  const denied = fx.mailLog().filter((r) => r.event === 'J' && r.recipient === 'friend@remote.example');
  assert.ok(denied.length >= 1);
  assert.match(denied[0]!.status, /^550 5\.7\.1/);
  assert.equal(denied[0]!.source, 'tcp_local');
});

test('external client: a message to a remote and a local recipient reaches only the local one', async () => {
  const p = await fx.probe(EXTERNAL_IP);
  try {
    await p.hello();
    assert.equal((await mailTo(p, 'friend@remote.example'))!.code, 550);
    assert.equal((await p.command('RCPT TO:<joe@localhost>'))!.code, 250);
    assert.equal((await p.command('DATA'))!.code, 354);
    assert.equal((await p.command('Subject: hi\r\n\r\nhi\r\n.'))!.code, 250);
  } finally {
    p.close();
  }
  assert.deepEqual(fx.queueFiles('tcp_local'), []);
  const files = fx.queueFiles('l');
  assert.equal(files.length, 1);
  const { envelope } = await fx.readQueued(files[0]!);
  assert.equal(envelope.sourceChannel, 'tcp_local');
  assert.deepEqual(envelope.recipients.map((r) => r.address), ['joe@localhost']);
});

test('internal client: a remote domain is accepted onto the tcp_local queue', async () => {
  const p = await fx.probe(INTERNAL_IP);
  try {
    await p.hello();
    assert.equal((await mailTo(p, 'friend@remote.example'))!.code, 250);
    assert.equal((await p.command('RCPT TO:<other@[192.0.2.1]>'))!.code, 250);
    assert.equal((await p.command('DATA'))!.code, 354);
    const r = await p.command('Subject: out\r\n\r\nbye\r\n.');
    assert.equal(r!.code, 250, r!.text);
  } finally {
    p.close();
  }
  const files = fx.queueFiles('tcp_local');
  assert.equal(files.length, 1);
  const { envelope } = await fx.readQueued(files[0]!);
  assert.equal(envelope.channel, 'tcp_local');
  assert.equal(envelope.sourceChannel, 'tcp_intranet');
  assert.deepEqual(envelope.recipients.map((r) => r.address), ['friend@remote.example', 'other@[192.0.2.1]']);
});
