// SMTP AUTH on the inbound service (PLAIN and LOGIN, RFC 4954), against raw clients: offered only
// after STARTTLS or on the TLS_PORT, the session switched to tcp_auth and allowed to relay,
// Received: `with ESMTPSA` and mail.log's sasl_username, sender ownership (553 5.7.1), and the
// hostile cases: AUTH before STARTTLS, malformed base64, an 8 KiB line, AUTH twice, a foreign
// authorization identity, NUL bytes, an unknown user against a wrong password (one reply, the
// same time), and no transaction on a mustsaslserver channel before AUTH.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { EXTERNAL_IP, INTERNAL_IP, SmtpFixture, type Reply } from './smtp-harness.js';
import { authLogin, authPlain, b64, makeCertificate, startAuthFixture, tlsSession, type Certificate } from './smtp-auth-fixture.js';

let cert: Certificate;
let fx: SmtpFixture;

before(async () => {
  cert = makeCertificate();
  // No failure limits here (the brute-force test has its own instance), no delay.
  fx = await startAuthFixture({ cert, options: 'SASL_FAILURES_PER_ADDRESS=0\nSASL_FAILURES_PER_USER=0\nSASL_FAILURE_DELAY=0\nSMTP_SOFT_ERROR_LIMIT=0\nSMTP_HARD_ERROR_LIMIT=0\n', localKeywords: 'disconnectbadauthlimit 100' });
});
after(async () => {
  await fx?.stop();
  cert?.remove();
});

function offersAuth(ehlo: Reply): boolean {
  return ehlo.lines.some((l) => /^250[- ]AUTH PLAIN LOGIN$/.test(l));
}

test('before STARTTLS AUTH is not offered and refused with 530 5.7.0; after it PLAIN and LOGIN are', async () => {
  const p = await fx.probe(EXTERNAL_IP);
  try {
    const ehlo = await p.hello();
    assert.ok(!offersAuth(ehlo), ehlo.text);
    assert.ok(ehlo.lines.some((l) => l.endsWith('STARTTLS')), ehlo.text);
    assert.equal((await authPlain(p, 'alice', 'alice-pw'))!.text, '530 5.7.0 Must issue a STARTTLS command first');
  } finally {
    p.close();
  }
  for (const how of ['starttls', 'implicit'] as const) {
    const { probe, ehlo } = await tlsSession(fx, EXTERNAL_IP, how);
    try {
      assert.ok(offersAuth(ehlo), `${how}: ${ehlo.text}`);
      assert.ok(!ehlo.lines.some((l) => l.endsWith('STARTTLS')), 'no STARTTLS once encrypted');
      assert.equal((await authLogin(probe, 'alice', 'alice-pw'))!.text, '235 2.7.0 Authentication successful');
      const again = await probe.command('EHLO client.test');
      assert.ok(!offersAuth(again!), 'AUTH is not offered to an authenticated session');
    } finally {
      probe.close();
    }
  }
});

test('authenticated from outside INTERNAL_IP: relays, on tcp_auth, Received: with ESMTPSA, mail.log names the user; the same client unauthenticated gets 550 5.7.1', async () => {
  const { probe } = await tlsSession(fx, EXTERNAL_IP, 'implicit');
  try {
    assert.equal((await authPlain(probe, 'alice@local.test', 'alice-pw'))!.code, 235);
    assert.equal((await probe.command('MAIL FROM:<alice@local.test>'))!.code, 250);
    assert.equal((await probe.command('RCPT TO:<friend@remote.example>'))!.code, 250);
    assert.equal((await probe.command('DATA'))!.code, 354);
    assert.equal((await probe.command('Subject: from the road\r\n\r\nhello\r\n.'))!.code, 250);
  } finally {
    probe.close();
  }
  const files = fx.queueFiles('tcp_local');
  assert.equal(files.length, 1);
  const { envelope, body } = await fx.readQueued(files[0]!);
  assert.equal(envelope.sourceChannel, 'tcp_auth');
  assert.match(body.toString('latin1'), /^Received: from client\.test \(\[127\.0\.5\.2\]\)\r\n\tby mx\.tsubame\.test \(tsubame\) with ESMTPSA id /);
  const queued = fx.mailLog().find((r) => r.event === 'E' && r.recipient === 'friend@remote.example');
  assert.ok(queued);
  assert.equal(queued.user, 'alice');
  assert.equal(queued.source, 'tcp_auth');
  assert.match(queued.tls ?? '', /^TLSv1\.[23]\//);
  assert.doesNotMatch(readFileSync(`${fx.root}/log/mail.log`, 'utf8'), /alice-pw/);

  const { probe: anonymous } = await tlsSession(fx, EXTERNAL_IP);
  try {
    assert.equal((await anonymous.command('MAIL FROM:<alice@local.test>'))!.code, 250);
    assert.match((await anonymous.command('RCPT TO:<friend@remote.example>'))!.text, /^550 5\.7\.1 <friend@remote\.example>: Relaying denied/);
  } finally {
    anonymous.close();
  }
  assert.equal(fx.queueFiles('tcp_local').length, 1);
});

test('XVERP from outside INTERNAL_IP: neither offered nor taken before AUTH (555 5.5.4), offered after it and kept in the queue file', async () => {
  const { probe, ehlo } = await tlsSession(fx, EXTERNAL_IP, 'implicit');
  try {
    assert.ok(!ehlo.lines.some((l) => /XVERP/.test(l)), ehlo.text);
    assert.equal((await probe.command('MAIL FROM:<alice@local.test> XVERP'))!.text, '555 5.5.4 Unsupported parameter XVERP');
    assert.equal((await authPlain(probe, 'alice@local.test', 'alice-pw'))!.code, 235);
    const again = await probe.command('EHLO client.test');
    assert.ok(again!.lines.some((l) => /^250[- ]XVERP$/.test(l)), again!.text);
    assert.equal((await probe.command('MAIL FROM:<alice@local.test> XVERP=-='))!.code, 250);
    assert.equal((await probe.command('RCPT TO:<member@xverp.example>'))!.code, 250);
    assert.equal((await probe.command('DATA'))!.code, 354);
    assert.equal((await probe.command('Subject: list mail\r\n\r\nhello\r\n.'))!.code, 250);
  } finally {
    probe.close();
  }
  const queued = await Promise.all(fx.queueFiles('tcp_local').map((f) => fx.readQueued(f)));
  const mine = queued.find((q) => q.envelope.recipients.some((r) => r.address === 'member@xverp.example'));
  assert.equal(mine?.envelope.mailParams.verp, '-=');
});

test('sender ownership: own and listed addresses, 553 5.7.1 for another user\'s, any address for an admin', async () => {
  const { probe } = await tlsSession(fx, EXTERNAL_IP);
  try {
    assert.equal((await authPlain(probe, 'alice', 'alice-pw'))!.code, 235);
    for (const own of ['alice@local.test', 'alice@localhost', 'ALICE+news@local.test', 'alias@other.test', '']) {
      assert.equal((await probe.command(`MAIL FROM:<${own}>`))!.code, 250, own);
      assert.equal((await probe.command('RSET'))!.code, 250);
    }
    assert.equal((await probe.command('MAIL FROM:<bob@local.test>'))!.text, '553 5.7.1 <bob@local.test>: Sender address rejected: not owned by user alice');
    assert.equal((await probe.command('MAIL FROM:<someone@remote.example>'))!.code, 553);
  } finally {
    probe.close();
  }
  const { probe: admin } = await tlsSession(fx, EXTERNAL_IP);
  try {
    assert.equal((await authLogin(admin, 'root', 'root-pw'))!.code, 235);
    assert.equal((await admin.command('MAIL FROM:<bob@local.test>'))!.code, 250);
  } finally {
    admin.close();
  }
});

test('hostile: malformed base64, an 8 KiB line, AUTH twice, another authorization identity, NUL bytes, an unknown mechanism, AUTH in a transaction', async () => {
  const { probe } = await tlsSession(fx, EXTERNAL_IP);
  try {
    assert.match((await probe.command('AUTH PLAIN not*base64'))!.text, /^501 5\.5\.2 /);
    assert.match((await probe.command('AUTH PLAIN YWxpY2U'))!.text, /^501 5\.5\.2 /, 'unpadded');
    assert.match((await probe.command('AUTH LOGIN'))!.text, /^334 VXNlcm5hbWU6$/);
    assert.match((await probe.command('%%%'))!.text, /^501 5\.5\.2 /);
    assert.match((await probe.command('AUTH LOGIN'))!.text, /^334 /);
    assert.match((await probe.command('*'))!.text, /^501 5\.0\.0 Authentication aborted/);
    assert.match((await probe.command('AUTH CRAM-MD5'))!.text, /^504 5\.5\.4 /);
    assert.match((await probe.command('AUTH'))!.text, /^501 5\.5\.4 /);
    // PLAIN with three NULs, a NUL in a LOGIN password, a control character in a login
    assert.match((await probe.command(`AUTH PLAIN ${b64('\0alice\0alice-pw\0x')}`))!.text, /^501 5\.5\.2 /);
    assert.match((await authLogin(probe, 'alice', 'alice-pw\0'))!.text, /^501 5\.5\.2 /);
    assert.match((await authLogin(probe, 'ali\rce', 'alice-pw'))!.text, /^501 5\.5\.2 /);
    assert.match((await probe.command(`AUTH PLAIN ${b64('alice\0\0alice-pw')}`))!.text, /^501 5\.5\.2 /, 'an empty login');
    // Another authorization identity: refused like a wrong password, even with the right one.
    assert.equal((await authPlain(probe, 'alice', 'alice-pw', 'bob'))!.text, '535 5.7.8 Error: authentication failed');
    // AUTH is refused inside a transaction, then works; twice is refused.
    assert.equal((await probe.command('MAIL FROM:<>'))!.code, 250);
    assert.match((await authPlain(probe, 'alice', 'alice-pw'))!.text, /^503 5\.5\.1 /);
    assert.equal((await probe.command('RSET'))!.code, 250);
    assert.equal((await authPlain(probe, 'alice', 'alice-pw', 'alice'))!.code, 235, 'authzid = the login');
    assert.match((await authPlain(probe, 'bob', 'bob-pw'))!.text, /^503 5\.5\.1 /);
    assert.equal((await probe.command('MAIL FROM:<alice@local.test>'))!.code, 250, 'still alice');
  } finally {
    probe.close();
  }
  const log = readFileSync(`${fx.root}/log/mail.log`, 'utf8');
  assert.doesNotMatch(log, /alice-pw|bob-pw/);
});

test('hostile: an 8 KiB AUTH line closes that session with 421 (the command line limit); others go on', async () => {
  const { probe } = await tlsSession(fx, EXTERNAL_IP);
  try {
    assert.match((await probe.command(`AUTH PLAIN ${b64(`\0alice\0${'x'.repeat(6200)}`)}`))!.text, /^421 4\.4\.2 .*Command line too long/);
    assert.ok(await probe.waitClosed(), 'closed');
  } finally {
    probe.close();
  }
  const { probe: next } = await tlsSession(fx, EXTERNAL_IP);
  try {
    assert.equal((await authPlain(next, 'alice', 'alice-pw'))!.code, 235);
  } finally {
    next.close();
  }
});

test('unknown user and wrong password: the same reply, in about the same time', async () => {
  const { probe } = await tlsSession(fx, EXTERNAL_IP);
  const times: Record<'unknown' | 'wrong', number[]> = { unknown: [], wrong: [] };
  try {
    for (let i = 0; i < 12; i++) {
      for (const kind of ['unknown', 'wrong'] as const) {
        const started = performance.now();
        const r = kind === 'unknown' ? await authPlain(probe, `nobody${i}`, 'guess') : await authLogin(probe, 'bob', `guess${i}`);
        times[kind].push(performance.now() - started);
        assert.equal(r!.text, '535 5.7.8 Error: authentication failed', kind);
      }
    }
  } finally {
    probe.close();
  }
  // Loosely: the medians within a factor of two (a skipped password hash would make the
  // unknown user several times faster; LOGIN's two extra round trips are small beside a hash).
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const [u, w] = [median(times.unknown), median(times.wrong)];
  assert.ok(u / w > 0.5 && u / w < 2, `medians: unknown ${u.toFixed(1)} ms, wrong password ${w.toFixed(1)} ms`);
});

test('port without maysaslserver: AUTH is neither offered nor taken (503 5.5.1)', async () => {
  const plain = await SmtpFixture.start({ mailboxes: ['joe'] });
  try {
    const p = await plain.probe(EXTERNAL_IP);
    try {
      const ehlo = await p.hello();
      assert.ok(!ehlo.lines.some((l) => /AUTH/.test(l)), ehlo.text);
      assert.equal((await authPlain(p, 'alice', 'alice-pw'))!.text, '503 5.5.1 Error: authentication not enabled');
      assert.equal((await p.command('MAIL FROM:<x@remote.example>'))!.code, 250, 'the session goes on');
    } finally {
      p.close();
    }
  } finally {
    await plain.stop();
  }
});

test('mustsaslserver on the service channel: MAIL before AUTH gets 530 5.7.0, internal clients too', async () => {
  const must = await startAuthFixture({ cert, service: 'PARAMETER=CHANNEL=tcp_auth', options: 'SASL_FAILURE_DELAY=0\n' });
  try {
    for (const ip of [EXTERNAL_IP, INTERNAL_IP]) {
      const { probe } = await tlsSession(must, ip);
      try {
        assert.equal((await probe.command('MAIL FROM:<alice@local.test>'))!.text, '530 5.7.0 No AUTH command has been given.');
        assert.equal((await authPlain(probe, 'alice', 'alice-pw'))!.code, 235);
        assert.equal((await probe.command('MAIL FROM:<alice@local.test>'))!.code, 250);
      } finally {
        probe.close();
      }
    }
  } finally {
    await must.stop();
  }
});

test('nosenderloginmatch on the switched channel: an authenticated user may use any sender', async () => {
  const loose = await startAuthFixture({ cert, authKeywords: 'nosenderloginmatch', options: 'SASL_FAILURE_DELAY=0\n' });
  try {
    const { probe } = await tlsSession(loose, EXTERNAL_IP);
    try {
      assert.equal((await authPlain(probe, 'alice', 'alice-pw'))!.code, 235);
      assert.equal((await probe.command('MAIL FROM:<bob@local.test>'))!.code, 250);
    } finally {
      probe.close();
    }
  } finally {
    await loose.stop();
  }
});
