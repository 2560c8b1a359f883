// The shipped submission services on a started instance, with the mail clients people use: the
// repository's etc/ (dispatcher.cnf's SUBMISSION on 587 and SUBMISSIONS on 465, imta.cnf's
// tcp_submit and tcp_auth) with their ports moved to free ones on loopback, a certificate from a
// test CA and users in etc/users. swaks (PLAIN and LOGIN, STARTTLS and TLS at connect), msmtp,
// Python's smtplib and a real Postfix relaying with smtp_sasl_auth_enable submit as a user from
// outside INTERNAL_IP; what they send is queued for tcp_local from tcp_auth with the user in
// mail.log and `with ESMTPSA` in Received:. Port 25 offers no AUTH, relaying there is refused;
// a users file edited into garbage leaves the old one in force. Delivery channels are stopped.
// METRICS_PORT is on: one failed and one good AUTH move tsubame_smtp_auth_total by exactly one.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { freePort, repoRoot, runCli, waitFor } from '../helpers/instance.js';
import { MtaInstance, RawSession } from '../helpers/running-instance.js';
import { makeTestCa, type TestCa } from '../helpers/test-ca.js';
import { startPostfixPeer, type PostfixPeer } from '../helpers/postfix.js';
import { parseMailLogLine, type ParsedMailLogRecord } from '../../src/common/mail-log.js';
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.js';
import { runTool } from './smtp-harness.js';
import { usersFile } from './smtp-auth-fixture.js';

const SERVER = '127.0.47.10';
const CLIENT = '127.0.47.20';
const POSTFIX = '127.0.47.30';
const NOWHERE = '127.0.47.11';
const MX_NAME = 'mx.tsubame.test';

let mta: MtaInstance;
let ca: TestCa;
let caFile: string;
const ports = { smtp: 0, submission: 0, submissions: 0, metrics: 0 };

/** The shipped etc/ with the services on free loopback ports and tcp_local held (its smart host is nowhere). */
before(async () => {
  ca = makeTestCa();
  mta = await MtaInstance.create({ address: SERVER });
  const shipped = (name: string) => readFileSync(join(repoRoot, 'etc', name), 'utf8');
  for (const name of ['imta.cnf', 'dispatcher.cnf', 'job_controller.cnf', 'option.dat']) mta.inst.write(`etc/${name}`, shipped(name));
  ports.smtp = mta.port;
  ports.submission = await freePort(SERVER);
  ports.submissions = await freePort(SERVER);
  ports.metrics = await freePort('127.0.0.1');
  const dispatcher = shipped('dispatcher.cnf')
    .replace(/^PORT=25$/m, `PORT=${ports.smtp}\nINTERFACE_ADDRESS=${SERVER}`)
    .replace(/^PORT=587$/m, `PORT=${ports.submission}\nINTERFACE_ADDRESS=${SERVER}`)
    .replace(/^TLS_PORT=465$/m, `TLS_PORT=${ports.submissions}\nINTERFACE_ADDRESS=${SERVER}`);
  assert.match(dispatcher, new RegExp(`TLS_PORT=${ports.submissions}`), 'the shipped dispatcher.cnf has SUBMISSIONS on TLS_PORT=465');
  mta.inst.write('etc/dispatcher.cnf', dispatcher);
  const deadPort = await freePort(NOWHERE);
  // Clients outside INTERNAL_IP; no SPF or DNS of the Internet for the unauthenticated probes.
  mta.inst.write('etc/imta.cnf', shipped('imta.cnf').replace(/^(tcp_local smtp mx .*)$/m, `$1 daemon ${NOWHERE} port ${deadPort} spfnone noauthverify`));
  const cert = ca.issue([MX_NAME]);
  mta.inst.write('etc/tls/key.pem', cert.key.toString());
  mta.inst.write('etc/tls/cert.pem', cert.chain.toString());
  caFile = join(mta.root, 'ca.pem');
  writeFileSync(caFile, ca.rootPem);
  mta.inst.write(
    'etc/option.dat',
    shipped('option.dat').replace(/^INTERNAL_IP=.*$/m, `INTERNAL_IP=${SERVER}/32`) +
      `\nLOCAL_HOST=${MX_NAME}\nTLS_KEY=${join(mta.root, 'etc/tls/key.pem')}\nTLS_CERT=${join(mta.root, 'etc/tls/cert.pem')}\nDNS_SERVERS=${NOWHERE}:${deadPort}\nMETRICS_PORT=${ports.metrics}\n`,
  );
  mta.inst.write('etc/users', await usersFile());
  chmodSync(join(mta.root, 'etc', 'users'), 0o600);
  for (const channel of ['tcp_local', 'l']) {
    const r = await mta.imsimta(['qm', 'stop', channel]);
    assert.equal(r.code, 0, r.stderr);
  }
  const started = await mta.cli('start-msg', []);
  assert.equal(started.code, 0, started.stderr);
  assert.doesNotMatch(started.stdout, /is off/, 'with a certificate the submission services run');
});
after(async () => {
  await mta?.cleanup();
  ca?.remove();
});

function mailLog(): ParsedMailLogRecord[] {
  const path = join(mta.root, 'log', 'mail.log');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .map((l) => parseMailLogLine(l))
    .filter((r): r is ParsedMailLogRecord => r !== null);
}

/** The E record of `recipient`, waited for. */
function enqueuedFor(recipient: string): Promise<ParsedMailLogRecord> {
  return waitFor(() => mailLog().find((r) => r.event === 'E' && r.recipient === recipient), { timeoutMs: 30_000, what: `E record for ${recipient}` });
}

/** The queue file of message `id` (under queue/CHANNEL/…). */
function queuedText(channel: string, id: string): string {
  const walk = (dir: string): string | null => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        const found = walk(p);
        if (found) return found;
      } else if (e.name.includes(id)) return p;
    }
    return null;
  };
  const file = walk(join(mta.root, 'queue', channel));
  assert.ok(file, `queue file of ${id} in ${channel}`);
  return readFileSync(file, 'utf8');
}

/** An authenticated message's trace: on tcp_auth for tcp_local, the user in mail.log, ESMTPSA in Received:. */
async function assertSubmitted(recipient: string, user: string, transcript: string): Promise<void> {
  const e = await enqueuedFor(recipient);
  assert.equal(e.source, 'tcp_auth', transcript);
  assert.equal(e.destination, 'tcp_local');
  assert.equal(e.user, user);
  assert.match(e.tls ?? '', /^TLSv1\.[23]\//);
  assert.match(queuedText('tcp_local', e.id), /^Received: from .*\r?\n(?:\s.*\r?\n)*?\s.*with ESMTPSA/m);
  assert.doesNotMatch(readFileSync(join(mta.root, 'log', 'mail.log'), 'utf8'), /-pw/, 'no password in mail.log');
}

const swaks = (port: number, args: string[]) => runTool('/usr/bin/swaks', ['--server', `${SERVER}:${port}`, '--local-interface', CLIENT, '--ehlo', 'laptop.test', '--timeout', '15', ...args], 30_000);

test('swaks --auth PLAIN over STARTTLS on the submission port: relays to the Internet as alice', async () => {
  const r = await swaks(ports.submission, ['-tls', '--auth', 'PLAIN', '--auth-user', 'alice', '--auth-password', 'alice-pw', '--from', 'alice@localhost', '--to', 'plain587@remote.example']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  await assertSubmitted('plain587@remote.example', 'alice', r.stdout);
});

test('swaks --auth LOGIN with TLS at connect on the submissions port (RFC 8314)', async () => {
  const r = await swaks(ports.submissions, ['--tlsc', '--auth', 'LOGIN', '--auth-user', 'bob', '--auth-password', 'bob-pw', '--from', 'bob@localhost', '--to', 'login465@remote.example']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  await assertSubmitted('login465@remote.example', 'bob', r.stdout);
});

/** tsubame_smtp_auth_total of the SUBMISSION service, one sample per result (absent counts as 0). */
async function submissionAuthCounts(): Promise<{ succeeded: number; failed: number; refused: number }> {
  const res = await fetch(`http://127.0.0.1:${ports.metrics}/metrics`);
  assert.equal(res.status, 200);
  const m = parsePrometheusText(await res.text());
  const of = (result: string) => sampleValue(m, 'tsubame_smtp_auth_total', { service: 'SUBMISSION', result }) ?? 0;
  return { succeeded: of('succeeded'), failed: of('failed'), refused: of('refused') };
}

test('tsubame_smtp_auth_total on /metrics: one wrong password and one good AUTH on 587 count failed +1 and succeeded +1, nothing refused', async () => {
  const before = await submissionAuthCounts();
  const bad = await swaks(ports.submission, ['-tls', '--auth', 'PLAIN', '--auth-user', 'alice', '--auth-password', 'wrong-pw', '--quit-after', 'AUTH']);
  assert.match(bad.stdout, /<~?\* 535 5\.7\.8 /, bad.stdout);
  const good = await swaks(ports.submission, ['-tls', '--auth', 'LOGIN', '--auth-user', 'bob', '--auth-password', 'bob-pw', '--quit-after', 'AUTH']);
  assert.equal(good.code, 0, good.stdout + good.stderr);
  assert.match(good.stdout, /<~ +235 /, good.stdout);
  // The server processes report their counts to the dispatcher as they go: wait for both to show,
  // then the counts must have moved by exactly the two attempts made.
  const after = await waitFor(
    async () => {
      const now = await submissionAuthCounts();
      return now.failed > before.failed && now.succeeded > before.succeeded ? now : null;
    },
    { timeoutMs: 20_000, what: 'the failed and succeeded AUTH on /metrics' },
  );
  assert.deepEqual(after, { succeeded: before.succeeded + 1, failed: before.failed + 1, refused: before.refused });
});

test('submission port: AUTH before STARTTLS 530 5.7.0, MAIL before AUTH 530 5.7.0; port 25 offers no AUTH and refuses relaying with 550 5.7.1', async () => {
  const noTls = await swaks(ports.submission, ['--quit-after', 'EHLO']);
  assert.equal(noTls.code, 0, noTls.stderr);
  assert.doesNotMatch(noTls.stdout, /250[ -]AUTH/, 'AUTH is not offered before STARTTLS');
  assert.match(noTls.stdout, /250[ -]STARTTLS/);
  const early = await RawSession.open(SERVER, ports.submission);
  try {
    await early.banner();
    early.socket.write('EHLO laptop.test\r\nAUTH PLAIN AGFsaWNlAGFsaWNlLXB3\r\nMAIL FROM:<alice@localhost>\r\n');
    await waitFor(() => (early.received.match(/^530 /gm)?.length === 2 ? true : null), { what: 'two 530 replies' });
    assert.match(early.received, /^530 5\.7\.0 /m);
  } finally {
    early.close();
  }
  const afterTlsNoAuth = await swaks(ports.submission, ['-tls', '--from', 'alice@localhost', '--to', 'x@remote.example']);
  assert.notEqual(afterTlsNoAuth.code, 0);
  assert.match(afterTlsNoAuth.stdout, /<~?\* 530 5\.7\.0 /);

  const port25 = await swaks(ports.smtp, ['--from', 'alice@localhost', '--to', 'relay25@remote.example']);
  assert.match(port25.stdout, /<\*\* 550 5\.7\.1 /, 'unauthenticated relaying from outside INTERNAL_IP');
  assert.doesNotMatch(port25.stdout, /250[ -]AUTH/);
  const auth25 = await swaks(ports.smtp, ['-tls', '--auth', 'PLAIN', '--auth-user', 'alice', '--auth-password', 'alice-pw', '--from', 'alice@localhost', '--to', 'relay25@remote.example']);
  assert.notEqual(auth25.code, 0, 'port 25 takes no AUTH');
  assert.doesNotMatch(auth25.stdout, /235 /);
});

test('sender ownership through swaks: another user\'s address 553 5.7.1; an admin may send as anyone', async () => {
  const theft = await swaks(ports.submission, ['-tls', '--auth', 'PLAIN', '--auth-user', 'alice', '--auth-password', 'alice-pw', '--from', 'bob@localhost', '--to', 'theft@remote.example']);
  assert.match(theft.stdout, /<~?\* 553 5\.7\.1 /, theft.stdout);
  const admin = await swaks(ports.submission, ['-tls', '--auth', 'PLAIN', '--auth-user', 'root', '--auth-password', 'root-pw', '--from', 'bob@localhost', '--to', 'admin@remote.example']);
  assert.equal(admin.code, 0, admin.stdout);
  await assertSubmitted('admin@remote.example', 'root', admin.stdout);
});

test('msmtp (the client of many mail programs) through 587 with STARTTLS, AUTH and a verified certificate', async () => {
  const conf = join(mta.root, 'msmtprc');
  writeFileSync(
    conf,
    [
      'account default',
      `host ${SERVER}`,
      `port ${ports.submission}`,
      `source_ip ${CLIENT}`,
      'domain laptop.test',
      'from carol@localhost',
      'auth on',
      'user carol',
      'password carol-pw',
      'tls on',
      'tls_starttls on',
      `tls_trust_file ${caFile}`,
      `tls_host_override ${MX_NAME}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const message = 'From: carol@localhost\r\nTo: msmtp@remote.example\r\nSubject: from msmtp\r\n\r\nhello\r\n';
  const r = await runTool('/usr/bin/msmtp', ['-C', conf, 'msmtp@remote.example'], 30_000, message);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  await assertSubmitted('msmtp@remote.example', 'carol', r.stderr);
});

test('Python smtplib: SMTP_SSL on 465 and starttls on 587, login, send; a wrong password is SMTPAuthenticationError 535', async () => {
  const script = `
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
# The chain is verified against the test CA; the name is the server's, not the address connected to.
ctx.check_hostname = False
host, p465, p587, src = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
with smtplib.SMTP_SSL(host, p465, context=ctx, source_address=(src, 0)) as s:
    s.login('alice', 'alice-pw')
    s.sendmail('alias@other.test', ['smtplib465@remote.example'], 'Subject: py\\r\\n\\r\\nhi\\r\\n')
with smtplib.SMTP(host, p587, source_address=(src, 0)) as s:
    s.starttls(context=ctx)
    s.login('alice', 'alice-pw')
    s.sendmail('alice@localhost', ['smtplib587@remote.example'], 'Subject: py\\r\\n\\r\\nhi\\r\\n')
with smtplib.SMTP(host, p587, source_address=(src, 0)) as s:
    s.starttls(context=ctx)
    try:
        s.login('alice', 'not-her-password')
        print('LOGGED-IN')
    except smtplib.SMTPAuthenticationError as e:
        print('AUTHFAIL', e.smtp_code, e.smtp_error.decode())
`;
  const r = await runTool('python3', ['-c', script, caFile, SERVER, String(ports.submissions), String(ports.submission), CLIENT], 60_000);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^AUTHFAIL 535 5\.7\.8 /m);
  await assertSubmitted('smtplib465@remote.example', 'alice', r.stdout);
  await assertSubmitted('smtplib587@remote.example', 'alice', r.stdout);
});

test('a real Postfix relays into tsubame\'s 587 with smtp_sasl_auth_enable (its SASL client, libsasl2-modules)', async () => {
  const postfixPort = await freePort(POSTFIX);
  let peer: PostfixPeer | null = null;
  try {
    peer = await startPostfixPeer({
      ip: POSTFIX,
      port: postfixPort,
      relayIp: SERVER,
      relayPort: ports.submission,
      extra: [
        'smtp_sasl_auth_enable = yes',
        'smtp_sasl_password_maps = static:bob:bob-pw',
        'smtp_sasl_security_options = noanonymous',
        'smtp_tls_security_level = encrypt',
        `smtp_bind_address = ${CLIENT}`,
      ],
    });
    const r = await runTool('/usr/bin/swaks', ['--server', `${POSTFIX}:${postfixPort}`, '--from', 'bob@localhost', '--to', 'via-postfix@remote.example', '--timeout', '15'], 30_000);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    await assertSubmitted('via-postfix@remote.example', 'bob', peer.log());
  } finally {
    await peer?.stop();
  }
});

/** A session on the submissions port (TLS at connect) from CLIENT: send a line, read the next final reply. */
async function implicitTlsSession(): Promise<{ say(line: string): Promise<string>; close(): void }> {
  const socket = tls.connect({ socket: net.connect({ host: SERVER, port: ports.submissions, localAddress: CLIENT }), servername: MX_NAME, ca: ca.rootPem });
  let buffer = '';
  const finals: string[] = [];
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => {
    buffer += d;
    for (let nl = buffer.indexOf('\r\n'); nl >= 0; nl = buffer.indexOf('\r\n')) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 2);
      if (!/^\d{3}-/.test(line)) finals.push(line);
    }
  });
  socket.on('error', () => {});
  const next = () => waitFor(() => finals.shift(), { timeoutMs: 20_000, intervalMs: 5, what: 'an SMTP reply' });
  assert.match(await next(), /^220 /);
  return {
    say: (line) => {
      socket.write(`${line}\r\n`);
      return next();
    },
    close: () => socket.destroy(),
  };
}

test('etc/users edited into garbage while sessions run: reload refused with file:line, the old users stay in force, the open session goes on', async () => {
  const users = join(mta.root, 'etc', 'users');
  const good = readFileSync(users, 'utf8');
  const open = await implicitTlsSession();
  try {
    assert.match(await open.say('EHLO laptop.test'), /^250 /);
    assert.match(await open.say(`AUTH PLAIN ${Buffer.from('\0alice\0alice-pw').toString('base64')}`), /^235 /);
    writeFileSync(users, 'alice:not-a-hash\n\u0000garbage\n');
    const r = await mta.imsimta(['reload']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /users:1: /);
    // The session authenticated before the edit sends its mail.
    assert.match(await open.say('MAIL FROM:<alice@localhost>'), /^250 /);
    assert.match(await open.say('RCPT TO:<during-garbage@remote.example>'), /^250 /);
    assert.match(await open.say('DATA'), /^354 /);
    assert.match(await open.say('Subject: during the edit\r\n\r\nhello\r\n.'), /^250 /);
    await assertSubmitted('during-garbage@remote.example', 'alice', 'open session');
    const s = await swaks(ports.submission, ['-tls', '--auth', 'LOGIN', '--auth-user', 'alice', '--auth-password', 'alice-pw', '--from', 'alice@localhost', '--to', 'after-garbage@remote.example']);
    assert.equal(s.code, 0, s.stdout);
    await assertSubmitted('after-garbage@remote.example', 'alice', s.stdout);
  } finally {
    open.close();
    writeFileSync(users, good);
  }
});

test('a fresh clone\'s etc/ (no certificate): start-msg starts port 25 and says which services are off and how to turn them on; cnbuild says it too', async () => {
  const fresh = await MtaInstance.create({ address: '127.0.47.40' });
  try {
    const shipped = (name: string) => readFileSync(join(repoRoot, 'etc', name), 'utf8');
    for (const name of ['imta.cnf', 'job_controller.cnf', 'option.dat']) fresh.inst.write(`etc/${name}`, shipped(name));
    fresh.inst.write('etc/dispatcher.cnf', shipped('dispatcher.cnf').replace(/^PORT=25$/m, `PORT=${fresh.port}\nINTERFACE_ADDRESS=127.0.47.40`));
    const cn = await runCli('imsimta', ['cnbuild', '--root', fresh.root]);
    assert.equal(cn.code, 0, cn.stderr);
    assert.match(cn.stdout, /dispatcher\.cnf:\d+: note: \[SERVICE=SUBMISSION\] \(port 587\) is off: .*set TLS_CERT and TLS_KEY in etc\/option\.dat/);
    assert.match(cn.stdout, /dispatcher\.cnf:\d+: note: \[SERVICE=SUBMISSIONS\] \(port 465\) is off/);
    mkdirSync(join(fresh.root, 'queue'), { recursive: true });
    const started = await fresh.cli('start-msg', []);
    assert.equal(started.code, 0, started.stderr);
    assert.match(started.stdout, /\[SERVICE=SUBMISSION\] \(port 587\) is off/);
    const s = await RawSession.open('127.0.47.40', fresh.port);
    try {
      assert.match(await s.banner(), /^220 /);
    } finally {
      s.close();
    }
  } finally {
    await fresh.cleanup();
  }
});
