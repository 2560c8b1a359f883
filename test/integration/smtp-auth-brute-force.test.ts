// Password guessing over SMTP AUTH: failures counted per client address and per login name
// (SASL_FAILURES_PER_ADDRESS, SASL_FAILURES_PER_USER) and per session (disconnectbadauthlimit);
// past a limit AUTH gets SASL_PENALTY_DELAY then 421, with a J record in mail.log, while other
// addresses and users go on; an unknown login is counted like a known one, so the 421 tells
// nothing about who exists; failed AUTH counts toward the session's error limits as well.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { SmtpFixture } from './smtp-harness.js';
import { authLogin, authPlain, makeCertificate, startAuthFixture, tlsSession, type Certificate } from './smtp-auth-fixture.js';

const ATTACKER = '127.0.5.2';
const NEIGHBOUR = '127.0.5.3';
const PENALTY_MS = 100;
const REFUSED = '421 4.7.0 mx.tsubame.test Error: too many failed authentications, try again later';

let cert: Certificate;
let fx: SmtpFixture;

before(async () => {
  cert = makeCertificate();
  fx = await startAuthFixture({
    cert,
    options: `SASL_FAILURES_PER_ADDRESS=10\nSASL_FAILURES_PER_USER=25\nSASL_FAILURE_WINDOW=600\nSASL_FAILURE_DELAY=0.02\nSASL_PENALTY_DELAY=${PENALTY_MS / 1000}\nBANNER_PURGE_DELAY=0\n`,
  });
});
after(async () => {
  await fx?.stop();
  cert?.remove();
});

test('100 wrong passwords from one address: 3 per session, then 421 for that address only, recorded in mail.log', async () => {
  const replies: string[] = [];
  let penaltyTimes: number[] = [];
  let session = await tlsSession(fx, ATTACKER, 'implicit');
  try {
    for (let i = 0; i < 100; i++) {
      if (session.probe.closed) session = await tlsSession(fx, ATTACKER, 'implicit');
      const started = performance.now();
      const r = await authPlain(session.probe, 'bob', `guess-${i}`);
      replies.push(r?.text ?? 'CLOSED');
      if (r?.code === 421) {
        penaltyTimes.push(performance.now() - started);
        await session.probe.waitClosed();
      }
    }
  } finally {
    session.probe.close();
  }
  // Failures 1-2 of a session get 535, the third 421 (disconnectbadauthlimit 3): 10 failures are
  // 535 ×7 and 421 ×3; from then on every AUTH from this address is refused before its password is checked.
  assert.equal(replies.filter((r) => r.startsWith('535 5.7.8 ')).length, 7, replies.slice(0, 14).join('\n'));
  assert.equal(replies.filter((r) => r === REFUSED).length, 93);
  assert.deepEqual(replies.slice(10), Array(90).fill(REFUSED));
  penaltyTimes = penaltyTimes.slice(3);
  assert.ok(penaltyTimes.every((ms) => ms >= PENALTY_MS - 5), `each refusal waits the penalty: ${Math.min(...penaltyTimes)} ms`);

  const records = fx.mailLog().filter((r) => r.event === 'J' && r.status.startsWith('421 4.7.0'));
  assert.equal(records.filter((r) => r.status.endsWith(`client=${ATTACKER} limit=session`) && r.user === 'bob').length, 3);
  assert.equal(records.filter((r) => r.status.endsWith(`client=${ATTACKER} limit=address`)).length, 90);

  // Another address is not affected, for bob too (10 failures are fewer than his 25).
  const other = await tlsSession(fx, NEIGHBOUR);
  try {
    assert.equal((await authPlain(other.probe, 'bob', 'bob-pw'))!.code, 235);
  } finally {
    other.probe.close();
  }
});

test('one login guessed from many addresses: 421 past SASL_FAILURES_PER_USER even with the right password; an unknown login alike', async () => {
  for (const login of ['carol', 'ghost']) {
    for (let i = 0; i < 25; i++) {
      const { probe } = await tlsSession(fx, `127.0.6.${i + 1}`);
      try {
        assert.equal((await authLogin(probe, login, 'wrong'))!.code, 535, `${login} #${i + 1}`);
      } finally {
        probe.close();
      }
    }
    const { probe } = await tlsSession(fx, '127.0.7.1');
    try {
      assert.equal((await authPlain(probe, login, login === 'carol' ? 'carol-pw' : 'anything'))!.text, REFUSED, login);
    } finally {
      probe.close();
    }
  }
  const records = fx.mailLog().filter((r) => r.event === 'J' && r.status.endsWith('client=127.0.7.1 limit=user'));
  assert.deepEqual(records.map((r) => r.user), ['carol', 'ghost']);
  // Alice, from the same address, is not affected.
  const { probe } = await tlsSession(fx, '127.0.7.1');
  try {
    assert.equal((await authPlain(probe, 'alice', 'alice-pw'))!.code, 235);
  } finally {
    probe.close();
  }
});

test('failed AUTH counts toward the session error limits (SMTP_SOFT/HARD_ERROR_LIMIT)', async () => {
  const errors = await startAuthFixture({
    cert,
    localKeywords: 'disconnectbadauthlimit 100',
    options: 'SASL_FAILURES_PER_ADDRESS=0\nSASL_FAILURES_PER_USER=0\nSASL_FAILURE_DELAY=0\nSMTP_SOFT_ERROR_LIMIT=2\nSMTP_HARD_ERROR_LIMIT=4\nSMTP_ERROR_SLEEP_TIME=0.05\n',
  });
  try {
    const { probe } = await tlsSession(errors, ATTACKER);
    try {
      for (let i = 0; i < 4; i++) assert.equal((await authPlain(probe, 'bob', `guess-${i}`))!.code, 535);
      assert.equal((await authPlain(probe, 'bob', 'bob-pw'))!.text, '421 4.7.0 mx.tsubame.test Error: too many errors');
      assert.ok(await probe.waitClosed());
    } finally {
      probe.close();
    }
  } finally {
    await errors.stop();
  }
});
