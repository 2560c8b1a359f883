// The inbound SMTP service with real clients: swaks and smtp-source deliver, the queue files
// are read back, mail.log has its records, recipients are checked and routed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { waitFor } from '../helpers/instance.js';
import { SmtpFixture, swaks, runTool, mailTo, SERVER_IP, EXTERNAL_IP } from './smtp-harness.js';

let fx: SmtpFixture;

before(async () => {
  fx = await SmtpFixture.start({ mailboxes: ['joe', 'Mary'], aliases: 'info: joe\nsales: joe, mary\n' });
});
after(async () => {
  await fx?.stop();
});

test('EHLO offers the extensions, the banner names the host', async () => {
  const p = await fx.probe();
  try {
    const greeting = await p.reply();
    assert.match(greeting!.text, /^220 mx\.tsubame\.test ESMTP/);
    const ehlo = await p.command('EHLO client.test');
    const ext = ehlo!.lines.map((l) => l.slice(4).split(' ')[0]);
    for (const e of ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'DSN', 'SIZE']) assert.ok(ext.includes(e), `${e} in ${ext}`);
    assert.ok(ehlo!.lines.some((l) => /SIZE 10240000$/.test(l)));
    assert.ok(!ext.includes('STARTTLS'), 'no STARTTLS without a certificate');
    assert.ok(!ext.includes('AUTH'), 'no AUTH');
  } finally {
    p.close();
  }
});

test('swaks to a local user: 250 after the file is queued; exact bytes behind a Received: line', async () => {
  const data = 'From: Sender <sender@client.test>\r\nTo: joe@localhost\r\nSubject: exact bytes\r\n\r\nline one\r\n.leading dot\r\n\r\nlast line';
  const file = join(fx.root, 'message.eml');
  writeFileSync(file, data); // swaks dot-stuffs it and ends it with CRLF . CRLF
  const before = fx.queueFiles('l').length;
  const r = await swaks(fx, ['--from', 'sender@client.test', '--to', 'Joe+news@LocalHost', '--data', `@${file}`, '--ehlo', 'client.test']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const queued = /<-\s+250 2\.0\.0 Ok: queued as (\S+)/.exec(r.stdout);
  assert.ok(queued, r.stdout);
  const files = fx.queueFiles('l');
  assert.equal(files.length, before + 1);
  const path = files.find((f) => f.includes(queued[1]!));
  assert.ok(path, `${queued[1]} in ${files}`);
  const { envelope, body } = await fx.readQueued(path);
  assert.equal(envelope.channel, 'l');
  assert.equal(envelope.from, 'sender@client.test');
  assert.equal(envelope.sourceChannel, 'tcp_intranet');
  assert.equal(envelope.clientAddress, SERVER_IP);
  assert.equal(envelope.clientHelo, 'client.test');
  assert.equal(envelope.recipients.length, 1);
  assert.equal(envelope.recipients[0]!.address, 'Joe+news@localhost');
  assert.equal(envelope.recipients[0]!.original, 'Joe+news@LocalHost');
  const text = body.toString('latin1');
  assert.match(text, /^Received: from client\.test \(\[127\.0\.5\.1\]\)\r\n\tby mx\.tsubame\.test \(tsubame\) with ESMTP id \S+\r\n\tfor <Joe\+news@LocalHost>; .+\r\n/);
  // swaks dot-stuffed the leading dot; the server removed it again: the stored message is the data as written
  assert.equal(text.slice(text.indexOf('\r\nFrom: ') + 2), `${data}\r\n`);
  const e = fx.mailLog().find((rec) => rec.event === 'E' && rec.id === queued[1]);
  assert.ok(e, 'an E record in mail.log');
  assert.equal(e.source, 'tcp_intranet');
  assert.equal(e.destination, 'l');
  assert.equal(e.recipient, 'Joe+news@localhost');
  assert.equal(e.size, body.length);
});

test('smtp-source -s 5 -m 50: all 50 queued', async () => {
  const before = fx.queueFiles('l').length;
  const r = await runTool('/usr/sbin/smtp-source', ['-s', '5', '-m', '50', '-f', 'load@client.test', '-t', 'joe@localhost', `${SERVER_IP}:${fx.port}`], 30_000);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const files = await waitFor(() => (fx.queueFiles('l').length - before === 50 ? fx.queueFiles('l') : null), { timeoutMs: 5000, what: '50 queue files' });
  const { envelope } = await fx.readQueued(files[files.length - 1]!);
  assert.equal(envelope.from, 'load@client.test');
});

test('DSN and MAIL parameters are kept in the envelope; one file per destination channel', async () => {
  const p = await fx.probe();
  try {
    await p.hello();
    assert.equal((await p.command('MAIL FROM:<dsn@client.test> RET=HDRS ENVID=QQ314159 BODY=8BITMIME SIZE=120'))!.code, 250);
    assert.equal((await p.command('RCPT TO:<joe@localhost> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;joe@localhost'))!.code, 250);
    assert.equal((await p.command('RCPT TO:<friend@remote.example> NOTIFY=NEVER'))!.code, 250);
    assert.equal((await p.command('RCPT TO:<info@local.test>'))!.code, 250);
    assert.equal((await p.command('DATA'))!.code, 354);
    const done = await p.command('Subject: two channels\r\n\r\nhello\r\n.');
    assert.equal(done!.code, 250, done!.text);
    const ids = /queued as (.+)$/.exec(done!.text)![1]!.split(' ');
    assert.equal(ids.length, 2);
    const local = fx.queueFiles('l').find((f) => f.includes(ids[0]!));
    const remote = fx.queueFiles('tcp_local').find((f) => f.includes(ids[1]!));
    assert.ok(local && remote, `${ids} in l and tcp_local`);
    const l = (await fx.readQueued(local)).envelope;
    assert.deepEqual(l.mailParams, { size: 120, body: '8BITMIME', ret: 'HDRS', envid: 'QQ314159' });
    assert.deepEqual(l.recipients.map((r) => [r.address, r.notify, r.orcpt]), [
      ['joe@localhost', ['SUCCESS', 'FAILURE'], 'rfc822;joe@localhost'],
      ['info@local.test', null, null],
    ]);
    const t = (await fx.readQueued(remote)).envelope;
    assert.equal(t.channel, 'tcp_local');
    assert.deepEqual(t.recipients.map((r) => [r.address, r.notify]), [['friend@remote.example', ['NEVER']]]);
  } finally {
    p.close();
  }
});

test('local users: mailbox dirs and aliases, any case, subaddresses; postmaster always; others 550 5.1.1', async () => {
  const p = await fx.probe(EXTERNAL_IP);
  try {
    await p.hello();
    assert.equal((await p.command('MAIL FROM:<>'))!.code, 250);
    for (const ok of ['mary@localhost', 'MARY@local.test', 'joe+x@localhost', 'sales@localhost', 'postmaster@local.test', 'postmaster', 'PostMaster@localhost']) {
      const r = await p.command(`RCPT TO:<${ok}>`);
      assert.equal(r!.code, 250, `${ok}: ${r!.text}`);
    }
    for (const bad of ['nobody@localhost', 'jo@local.test', '..@localhost', 'mailbox@localhost']) {
      const r = await p.command(`RCPT TO:<${bad}>`);
      assert.match(r!.text, /^5\d\d 5\.1\.[13] /, `${bad}: ${r!.text}`);
    }
    const r = await p.command('RCPT TO:<nobody@localhost>');
    assert.equal(r!.text, '550 5.1.1 <nobody@localhost>: User unknown');
  } finally {
    p.close();
  }
  const j = fx.mailLog().filter((rec) => rec.event === 'J' && rec.recipient === 'nobody@localhost');
  assert.ok(j.length >= 1);
  assert.match(j[0]!.status, /^550 5\.1\.1/);
});

test('a mailbox created while running is known at once', async () => {
  const p = await fx.probe(EXTERNAL_IP);
  try {
    await p.hello();
    assert.equal((await mailTo(p, 'newbie@localhost'))!.code, 550);
    fx.inst.write('mailbox/newbie/new/.keep', '');
    assert.equal((await p.command('RCPT TO:<newbie@localhost>'))!.code, 250);
  } finally {
    p.close();
  }
});

test('unroutable recipient: 550 5.1.2 with the rule text', async () => {
  const p = await fx.probe();
  try {
    await p.hello();
    const r = await mailTo(p, 'user@blocked.test');
    assert.equal(r!.text, '550 5.1.2 Mail to blocked.test is not accepted');
  } finally {
    p.close();
  }
});

test('QUIT: 221, then the server closes its side at once, without waiting for the client to close', async () => {
  // A client that keeps its side open (allowHalfOpen): the library alone would hold the session
  // for its 5 s half-close deadline.
  const socket = net.connect({ host: SERVER_IP, port: fx.port, localAddress: SERVER_IP, allowHalfOpen: true });
  socket.setEncoding('latin1');
  let text = '';
  let ended = false;
  socket.on('data', (d: string) => (text += d));
  socket.on('end', () => (ended = true));
  try {
    await waitFor(() => /^220 /m.test(text), { timeoutMs: 5000, what: 'the greeting' });
    socket.write('EHLO client.test\r\n');
    await waitFor(() => /^250 /m.test(text), { timeoutMs: 5000, what: 'the EHLO reply' });
    const open = fx.service.openConnections();
    socket.write('QUIT\r\n');
    await waitFor(() => /^221 /m.test(text) && ended, { timeoutMs: 5000, what: '221 and the server FIN' });
    await waitFor(() => fx.service.openConnections() === open - 1, { timeoutMs: 2000, what: 'the session gone on the server' });
    assert.equal(socket.writableEnded, false, 'the client has not closed its side');
  } finally {
    socket.destroy();
  }
});
