// Tracing a message from its header to mail.log (issue 13, should-fix): the id in our own
// Received: line is the queue id (a message going to several channels has one file each, whose
// ids all start with it), and a message that came over TLS says so in its E records
// (`queued tls=TLSv1.3/CIPHER`), which mail.log's parser reads field by field.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { parseQueueFileName } from '../../src/queue/file-name.js';
import { SmtpFixture, TEST_IMTA, INTERNAL_IP, EXTERNAL_IP, mailTo } from './smtp-harness.js';

let certDir: string;
let fx: SmtpFixture;

before(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'tsubame-smtp-trace-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=test', '-days', '1', '-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem')], {
    stdio: 'ignore',
    timeout: 20_000,
  });
  fx = await SmtpFixture.start({
    imta: TEST_IMTA.replace('tcp_local smtp mx\n', 'tcp_local smtp mx maytlsserver\n'),
    options: `TLS_KEY=${join(certDir, 'key.pem')}\nTLS_CERT=${join(certDir, 'cert.pem')}\nBANNER_PURGE_DELAY=0\n`,
    mailboxes: ['joe'],
  });
});
after(async () => {
  await fx?.stop();
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

/** The `id` of the first Received: field of a queued body. */
function receivedId(body: Buffer): string {
  const m = /^Received: [^]*? id (\S+?);?\s/.exec(body.toString('latin1'));
  assert.ok(m, body.toString('latin1').slice(0, 300));
  return m[1]!;
}

test('the Received: id is the queue id; a message for two channels has two files whose ids start with it, and mail.log names them', async () => {
  const p = await fx.probe(INTERNAL_IP);
  let ids: string[];
  try {
    await p.hello();
    assert.equal((await mailTo(p, 'joe@localhost', 'tracer@client.test'))?.code, 250);
    assert.equal((await p.command('RCPT TO:<someone@hosted.test>'))?.code, 250);
    assert.equal((await p.command('DATA'))?.code, 354);
    const done = await p.command('Subject: trace me\r\n\r\nbody\r\n.');
    ids = /queued as (.+)$/.exec(done!.text)![1]!.split(' ');
  } finally {
    p.close();
  }
  assert.equal(ids.length, 2);
  const [first, second] = ids as [string, string];
  assert.ok(second.startsWith(first) && second !== first, `${second} starts with ${first}`);
  for (const id of ids) {
    const file = fx.allQueueFiles().find((f) => parseQueueFileName(basename(f))?.id === id)!;
    const { envelope, body } = await fx.readQueued(file);
    assert.equal(envelope.id, id);
    assert.equal(receivedId(body), first, 'every copy carries the message id in its Received: line');
  }
  const e = fx.mailLog().filter((r) => r.event === 'E' && r.from === 'tracer@client.test');
  assert.deepEqual(e.map((r) => r.id).sort(), [...ids].sort());
  assert.ok(e.every((r) => r.id.startsWith(first)), 'grep <Received: id> mail.log finds every record of the message');
  assert.ok(e.every((r) => r.status === 'queued'), 'a plaintext session: just "queued"');
});

test('a message that came over TLS: its E record says the protocol and cipher, and the line still parses', async () => {
  const p = await fx.probe(EXTERNAL_IP);
  try {
    await p.hello();
    assert.equal((await p.command('STARTTLS'))?.code, 220);
    const s = await p.startTls();
    try {
      await s.command('EHLO client.test');
      assert.equal((await mailTo(s, 'joe@localhost', 'secret@client.test'))?.code, 250);
      assert.equal((await s.command('DATA'))?.code, 354);
      assert.match((await s.command('Subject: tls\r\n\r\nbody\r\n.'))?.text ?? '', /^250 /);
    } finally {
      s.close();
    }
  } finally {
    p.close();
  }
  const [e] = fx.mailLog().filter((r) => r.event === 'E' && r.from === 'secret@client.test');
  assert.ok(e, 'an E record');
  assert.equal(e.status, 'queued');
  assert.match(e.tls ?? '', /^TLSv1\.[23]\/[A-Z0-9_-]+$/);
  assert.equal(e.recipient, 'joe@localhost');
  assert.equal(e.destination, 'l');
  const line = readFileSync(join(fx.root, 'log', 'mail.log'), 'utf8').split('\n').find((l) => l.includes('secret@client.test'))!;
  assert.match(line, / E \S+ tcp_local l \d+ secret@client\.test joe@localhost queued tls=TLSv1\.[23]\/\S+$/);
});
