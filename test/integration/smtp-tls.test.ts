// STARTTLS (maytlsserver / musttlsserver with option.dat TLS_KEY/TLS_CERT), the CVE-2011-0411
// class (plaintext pipelined behind STARTTLS must be discarded), and the slave_debug transcript.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../helpers/instance.js';
import { SmtpFixture, TEST_IMTA, INTERNAL_IP, EXTERNAL_IP, mailTo } from './smtp-harness.js';

let certDir: string;
let may: SmtpFixture;

function imtaWith(keywords: string): string {
  return TEST_IMTA.replace('tcp_local smtp mx\n', `tcp_local smtp mx ${keywords}\n`);
}

function tlsOptions(): string {
  return `TLS_KEY=${join(certDir, 'key.pem')}\nTLS_CERT=${join(certDir, 'cert.pem')}\n`;
}

before(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'tsubame-smtp-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=test', '-days', '1', '-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem')], {
    stdio: 'ignore',
    timeout: 20_000,
  });
  may = await SmtpFixture.start({ imta: imtaWith('maytlsserver slave_debug'), options: tlsOptions(), mailboxes: ['joe'] });
});
after(async () => {
  await may?.stop();
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

test('maytlsserver + certificate: STARTTLS offered, mail accepted without it too', async () => {
  const p = await may.probe(EXTERNAL_IP);
  try {
    const ehlo = await p.hello();
    assert.ok(ehlo.lines.some((l) => l.endsWith('STARTTLS')), ehlo.text);
    assert.equal((await mailTo(p, 'joe@localhost'))!.code, 250);
  } finally {
    p.close();
  }
});

test('plaintext pipelined behind STARTTLS is discarded; the TLS session starts clean', async () => {
  const p = await may.probe(INTERNAL_IP);
  try {
    await p.hello();
    p.write('STARTTLS\r\nRSET\r\nMAIL FROM:<injected@evil.example>\r\nRCPT TO:<joe@localhost>\r\n');
    assert.equal((await p.reply())!.text, '220 2.0.0 Ready to start TLS');
    const s = await p.startTls();
    try {
      // the first reply over TLS is the EHLO's: nothing of the plaintext was answered
      const ehlo = await s.command('EHLO client.test');
      assert.match(ehlo!.lines[0]!, /^250-mx\.tsubame\.test Hello/);
      assert.ok(!ehlo!.lines.some((l) => l.includes('STARTTLS')), 'no STARTTLS once encrypted');
      // and the injected MAIL did not open a transaction
      assert.match((await s.command('RCPT TO:<joe@localhost>'))!.text, /^503 5\.5\.1 /);
      assert.equal((await mailTo(s, 'joe@localhost'))!.code, 250);
      assert.equal((await s.command('DATA'))!.code, 354);
      const done = await s.command('Subject: secret\r\n\r\nover TLS\r\n.');
      assert.equal(done!.code, 250, done!.text);
      const id = /queued as (\S+)/.exec(done!.text)![1]!;
      const file = may.queueFiles('l').find((f) => f.includes(id))!;
      const { envelope, body } = await may.readQueued(file);
      assert.equal(envelope.from, 'sender@client.test');
      assert.match(body.toString(), /with ESMTPS id \S+ \(using TLSv1\.[23] with cipher \S+\)/);
    } finally {
      s.close();
    }
  } finally {
    p.close();
  }
});

test('STARTTLS twice: 503', async () => {
  const p = await may.probe(INTERNAL_IP);
  try {
    await p.hello();
    assert.equal((await p.command('STARTTLS'))!.code, 220);
    const s = await p.startTls();
    try {
      await s.command('EHLO client.test');
      assert.match((await s.command('STARTTLS'))!.text, /^503 /);
    } finally {
      s.close();
    }
  } finally {
    p.close();
  }
});

test('slave_debug: the session transcript is written to log/tcp_local_slave.log-<pid>', async () => {
  const p = await may.probe(INTERNAL_IP);
  try {
    await p.hello('transcript.test');
    await p.command('NOOP');
    await p.command('QUIT');
  } finally {
    p.close();
  }
  const name = `tcp_local_slave.log-${process.pid}`;
  assert.ok(readdirSync(join(may.root, 'log')).includes(name));
  const text = await waitFor(() => {
    const t = readFileSync(join(may.root, 'log', name), 'utf8');
    return t.includes('S: 221') ? t : null;
  }, { timeoutMs: 3000, what: 'the transcript' });
  assert.match(text, /^\S+Z \S+ C: EHLO transcript\.test$/m);
  assert.match(text, /^\S+Z \S+ S: 250 2\.0\.0 OK$/m);
});

test('musttlsserver: MAIL without TLS gets 530 5.7.0; with TLS it is accepted', async () => {
  const must = await SmtpFixture.start({ imta: imtaWith('musttlsserver'), options: tlsOptions(), mailboxes: ['joe'] });
  try {
    const p = await must.probe(EXTERNAL_IP);
    try {
      await p.hello();
      assert.equal((await p.command('MAIL FROM:<a@client.test>'))!.text, '530 5.7.0 Must issue a STARTTLS command first');
      assert.equal((await p.command('STARTTLS'))!.code, 220);
      const s = await p.startTls();
      try {
        await s.command('EHLO client.test');
        assert.equal((await mailTo(s, 'joe@localhost'))!.code, 250);
      } finally {
        s.close();
      }
    } finally {
      p.close();
    }
  } finally {
    await must.stop();
  }
});

test('musttlsserver without a certificate is refused at start with file:line', async () => {
  await assert.rejects(SmtpFixture.start({ imta: imtaWith('musttlsserver') }), /imta\.cnf:\d+: channel tcp_local has musttlsserver/);
});
