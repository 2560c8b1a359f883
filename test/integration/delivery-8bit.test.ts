// 8-bit content and SMTPUTF8 envelopes against real peers: Postfix's smtp-sink started with -8
// (it offers neither 8BITMIME nor SMTPUTF8; every transaction is dumped to a file) and an
// smtp-server peer that offers both. Nothing goes raw where it was not offered: 8-bit bodies are
// converted to 7 bits (and decode to the original), what cannot be converted is returned with
// 5.6.3, and an envelope that needs SMTPUTF8 with 5.6.7.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { createSmtpJobWith } from '../../src/channels/smtp.js';
import { DnsCache } from '../../src/dns/cache.js';
import { ReachabilityCache } from '../../src/delivery/reachability.js';
import type { MailParams } from '../../src/queue/types.js';
import { startSmtpPeer, type SmtpPeer } from '../helpers/sim-internet.js';
import { freePort, waitFor } from '../helpers/instance.js';
import { makeChannel, makeConfig, Spool } from './delivery-fixtures.js';

const SINK_HOST = '127.0.9.61';
const PEER_HOST = '127.0.9.62';
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

let sink: { port: number; dumps(): Map<string, string> };
let peer: SmtpPeer;
const spool = new Spool();
cleanups.push(() => spool.remove());

/** smtp-sink -8 on SINK_HOST, each transaction dumped to a file of its own. */
async function startSink(): Promise<{ port: number; dumps(): Map<string, string> }> {
  const dir = mkdtempSync(join(tmpdir(), 'tsubame-sink-'));
  chmodSync(dir, 0o777); // smtp-sink writes as nobody when started by root
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort(SINK_HOST);
  const asRoot = process.getuid?.() === 0 ? ['-u', 'nobody'] : [];
  const child: ChildProcess = spawn('/usr/sbin/smtp-sink', [...asRoot, '-8', '-d', `${dir}/%M.`, `${SINK_HOST}:${port}`, '10'], { stdio: 'ignore' });
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  );
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const s = net.connect({ host: SINK_HOST, port }, () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      }),
    { timeoutMs: 5000, what: 'smtp-sink to listen' },
  );
  return { port, dumps: () => new Map(readdirSync(dir).map((n) => [n, readFileSync(join(dir, n), 'latin1')])) };
}

before(async () => {
  sink = await startSink();
  peer = await startSmtpPeer({ host: PEER_HOST });
  cleanups.push(() => peer.close());
});

function job(host: string, port: number) {
  const channel = makeChannel({ daemon: [host], port });
  const config = makeConfig(spool.root, { raw: { SMTP_IDLE_TIMEOUT: '1', SMTP_GREETING_TIMEOUT: '3' }, channels: [channel] });
  const j = createSmtpJobWith(spool.context(config, channel), { dnsCache: new DnsCache(), reachability: new ReachabilityCache() });
  cleanups.push(() => j.close());
  return j;
}

async function deliverOne(host: string, port: number, from: string, to: string, body: Buffer, mailParams: MailParams) {
  const item = spool.message(from, [to], { body: body.toString('latin1'), envelope: { mailParams } });
  // Spool writes the body as a JS string; write the exact bytes instead.
  const { writeFileSync } = await import('node:fs');
  writeFileSync(item.ref.path, body);
  const [outcome] = await job(host, port).deliver([item]);
  return outcome!.recipients[0]!;
}

/** The dump file that is not in `before`, once complete (smtp-sink ends each with an empty line when it closes it). */
function newDump(before: Map<string, string>): Promise<string> {
  return waitFor(
    () => {
      const added = [...sink.dumps()].filter(([name]) => !before.has(name));
      return added.length === 1 && added[0]![1].endsWith('\n\n') ? added[0]![1] : null;
    },
    { what: 'the sink to dump the message' },
  );
}

/** The message part of an smtp-sink dump: after its own Received: header (three lines), before the empty line it ends with. */
function sinkMessage(dump: string): { mailArgs: string; message: Buffer } {
  const mailArgs = /^X-Mail-Args: (.*)$/m.exec(dump)?.[1] ?? '';
  const lines = dump.replace(/\n\n$/, '\n').split('\n');
  const received = lines.findIndex((l) => l.startsWith('Received: '));
  return { mailArgs, message: Buffer.from(lines.slice(received + 3).join('\r\n'), 'latin1') };
}

const crlf = (s: string) => s.replace(/\r?\n/g, '\r\n');

const mixed = Buffer.concat([
  Buffer.from(
    crlf(
      'From: a@sim.test\nTo: b@sink.test\nSubject: 8bit\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nGrüße, naïve café.\n.a line with a leading dot\n--b\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\n',
    ),
    'utf8',
  ),
  Buffer.from('caf\u00e9 en latin-1\r\n', 'latin1'),
  Buffer.from(crlf('--b--\n'), 'utf8'),
]);

test('8-bit sent raw to a server without 8BITMIME: converted to 7 bits, BODY=8BITMIME not given, decodes to the original', async () => {
  const before = sink.dumps();
  const r = await deliverOne(SINK_HOST, sink.port, 'a@sim.test', 'b@sink.test', mixed, { body: '8BITMIME' });
  assert.equal(r.result, 'delivered', r.status);
  const dump = await newDump(before);
  const { mailArgs, message } = sinkMessage(dump);
  assert.doesNotMatch(mailArgs, /BODY=8BITMIME/i);
  assert.ok(!message.some((b) => b >= 0x80), 'only 7-bit octets reached the server');
  assert.match(message.toString('latin1'), /Content-Transfer-Encoding: quoted-printable/);
  const [sent, original] = await Promise.all([simpleParser(message), simpleParser(mixed)]);
  assert.equal(sent.text, original.text);
  assert.match(sent.text ?? '', /Grüße, naïve café\.\n\.a line with a leading dot/);
  assert.match(sent.text ?? '', /café en latin-1/);
});

test('8-bit in the header to a server without 8BITMIME: returned with 5.6.3, nothing sent', async () => {
  const before = sink.dumps();
  const message = Buffer.from(crlf('From: a@sim.test\nTo: b@sink.test\nSubject: Grüße\n\nbody\n'), 'utf8');
  const r = await deliverOne(SINK_HOST, sink.port, 'a@sim.test', 'b@sink.test', message, { body: '8BITMIME' });
  assert.equal(r.result, 'failed');
  assert.match(r.status, /^550 5\.6\.3 .*does not offer 8BITMIME.*8-bit characters in a message header/);
  assert.equal(sink.dumps().size, before.size, 'the sink got no transaction');
});

test('SMTPUTF8 envelope sent raw to a server without SMTPUTF8: returned with 5.6.7, nothing sent', async () => {
  const before = sink.dumps();
  const message = Buffer.from(crlf('From: a@sim.test\nTo:用户@例子.test\nSubject: utf8\n\nbody\n'), 'utf8');
  const r = await deliverOne(SINK_HOST, sink.port, 'a@sim.test', '用户@例子.test', message, { smtputf8: true });
  assert.equal(r.result, 'failed');
  assert.match(r.status, /^550 5\.6\.7 SMTPUTF8 is required, but was not offered by host /);
  const headerOnly = await deliverOne(SINK_HOST, sink.port, 'a@sim.test', 'b@sink.test', Buffer.from(crlf('From: a@sim.test\nSubject: Grüße\n\nbody\n'), 'utf8'), { smtputf8: true, body: '8BITMIME' });
  assert.equal(headerOnly.result, 'failed', 'SMTPUTF8 given and a UTF-8 header: 5.6.7 too');
  assert.match(headerOnly.status, /^550 5\.6\.7 /);
  assert.equal(sink.dumps().size, before.size, 'the sink got no transaction');
});

test('SMTPUTF8 given but nothing needs it: sent to a server without SMTPUTF8, body converted, no SMTPUTF8 parameter', async () => {
  const before = sink.dumps();
  const message = Buffer.from(crlf('From: a@sim.test\nSubject: ascii header\n\nunicode body: ü\n'), 'utf8');
  const r = await deliverOne(SINK_HOST, sink.port, 'a@sim.test', 'b@sink.test', message, { smtputf8: true, body: '8BITMIME' });
  assert.equal(r.result, 'delivered', r.status);
  const dump = await newDump(before);
  const { mailArgs, message: got } = sinkMessage(dump);
  assert.doesNotMatch(mailArgs, /SMTPUTF8|BODY=/i);
  assert.ok(!got.some((b) => b >= 0x80));
  assert.equal((await simpleParser(got)).text, 'unicode body: ü\n');
});

test('SMTPUTF8 given at MAIL goes on to a server that offers it, with BODY=8BITMIME; a UTF-8 recipient too', async () => {
  const message = Buffer.from(crlf('From: a@sim.test\nSubject: Grüße\n\nbody ü\n'), 'utf8');
  const ascii = await deliverOne(PEER_HOST, peer.port, 'a@sim.test', 'b@peer.test', message, { smtputf8: true, body: '8BITMIME' });
  assert.equal(ascii.result, 'delivered', ascii.status);
  const t1 = peer.transactions[peer.transactions.length - 1]!;
  assert.equal(t1.mailArgs.SMTPUTF8, true, 'the SMTPUTF8 parameter, though every address is ASCII');
  assert.equal(t1.mailArgs.BODY, '8BITMIME');
  assert.deepEqual(t1.data, message, 'sent as it is');
  const utf8 = await deliverOne(PEER_HOST, peer.port, 'a@sim.test', '用户@例子.test', message, { smtputf8: true, body: '8BITMIME' });
  assert.equal(utf8.result, 'delivered', utf8.status);
  const t2 = peer.transactions[peer.transactions.length - 1]!;
  assert.equal(t2.mailArgs.SMTPUTF8, true);
  assert.deepEqual(t2.to, ['用户@例子.test']);
  const plain = await deliverOne(PEER_HOST, peer.port, 'a@sim.test', 'b@peer.test', Buffer.from(crlf('Subject: x\n\nascii\n')), {});
  assert.equal(plain.result, 'delivered');
  const t3 = peer.transactions[peer.transactions.length - 1]!;
  assert.equal(t3.mailArgs.SMTPUTF8, undefined, 'no SMTPUTF8 when the message did not come with it');
  assert.equal(t3.mailArgs.BODY, undefined);
});
