// Slowloris: clients that send an octet a little more often than SMTP_TIMEOUT, so that the idle
// timeout never fires. SMTP_COMMAND_DEADLINE bounds each request instead (a command line, a TLS
// handshake, the DATA phase at SMTP_MIN_DATA_RATE), as Postfix's smtpd_per_request_deadline
// does; a client that is slow but keeps within the bounds is served. The service runs in this
// process on 127.0.17.20 (this suite's block is 127.0.17.0/24); 127.0.17.21 is an outside client.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../helpers/instance.js';
import { ReliabilityFixture, SmtpProbe, TEST_IMTA, assertReply, makeCertificate, type Reply } from './helpers.js';

const SERVER = '127.0.17.20';
const OUTSIDE = '127.0.17.21';
const TRICKLE_MS = 400;
const TIMEOUT_REPLY = /^421 4\.4\.2 mx\.tsubame\.test Error: timeout exceeded$/;

let fx: ReliabilityFixture;
let certDir: string;

before(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'tsubame-slowloris-'));
  fx = await ReliabilityFixture.start({
    serverIp: SERVER,
    imta: TEST_IMTA.replace('tcp_local smtp mx\n', 'tcp_local smtp mx maytlsserver\n'),
    options: `SMTP_TIMEOUT=1\nSMTP_COMMAND_DEADLINE=1\nMAX_CONNS_PER_IP=100\n${makeCertificate(certDir)}`,
    mailboxes: ['joe'],
  });
});
after(async () => {
  await fx?.stop();
  rmSync(certDir, { recursive: true, force: true });
});

/** Sends `text` one octet every TRICKLE_MS until the connection closes or the text runs out; resolves with when it started and how much went. */
function trickle(p: SmtpProbe, text: string | Buffer): { startedAt: number; sent: () => number; stop: () => void } {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text, 'latin1');
  let sent = 0;
  const send = () => {
    if (p.closed || sent >= bytes.length) return clearInterval(timer);
    p.socket.write(bytes.subarray(sent, sent + 1));
    sent++;
  };
  const startedAt = performance.now();
  const timer = setInterval(send, TRICKLE_MS);
  send();
  return { startedAt, sent: () => sent, stop: () => clearInterval(timer) };
}

function assertTimeoutReply(reply: Reply | null, context: string): void {
  assert.ok(reply, `${context}: the connection closed without a reply`);
  assert.match(reply.text, TIMEOUT_REPLY, context);
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('SMTP_TIMEOUT=1, SMTP_COMMAND_DEADLINE=1, SMTP_MIN_DATA_RATE=500 (default)', () => {
  test('a command trickled at an octet every 0.4 s: 421 4.4.2 … Error: timeout exceeded about 1 s after its first octet, closed', async () => {
    const p = await fx.probe(OUTSIDE);
    try {
      assertReply(await p.reply(), '220 -');
      const line = 'EHLO slowloris.example\r\n';
      const t = trickle(p, line);
      const reply = await p.reply(5000);
      const elapsed = performance.now() - t.startedAt;
      t.stop();
      assertTimeoutReply(reply, 'trickled EHLO');
      assert.ok(await p.waitClosed(2000), 'closed after the 421');
      // the idle timeout (1 s) never fired: an octet came every 0.4 s
      assert.ok(elapsed >= 950 && elapsed < 1700, `cut ${elapsed.toFixed(0)} ms after the first octet`);
      assert.ok(t.sent() >= 3 && t.sent() < line.length, `${t.sent()} octets sent`);
    } finally {
      p.close();
    }
  });

  test('the message trickled at an octet every 0.4 s: cut about 1 s after 354, nothing queued, no temporary file', async () => {
    const q = fx.queueMark();
    const p = await fx.probe();
    try {
      await p.hello();
      assertReply(await p.command('MAIL FROM:<slow@client.test>'), '250 2.1.0');
      assertReply(await p.command('RCPT TO:<joe@localhost>'), '250 2.1.5');
      assertReply(await p.command('DATA'), '354 -');
      const t = trickle(p, `Subject: slow\r\n\r\n${'y'.repeat(200)}\r\n.\r\n`);
      const reply = await p.reply(6000);
      const elapsed = performance.now() - t.startedAt;
      t.stop();
      assertTimeoutReply(reply, 'trickled DATA');
      assert.ok(await p.waitClosed(2000));
      assert.ok(elapsed >= 950 && elapsed < 1700, `cut ${elapsed.toFixed(0)} ms after 354`);
    } finally {
      p.close();
    }
    await waitFor(() => fx.tmpFiles().length === 0, { timeoutMs: 5000, what: 'the temporary file to go' });
    q.expect(0);
  });

  test('DATA below the minimum rate (100 octets every 0.4 s = 250 octets/s) runs out of budget in about 2 s', async () => {
    const q = fx.queueMark();
    const p = await fx.probe();
    let timer: NodeJS.Timeout | undefined;
    try {
      await p.hello();
      assertReply(await p.command('MAIL FROM:<slow@client.test>'), '250 2.1.0');
      assertReply(await p.command('RCPT TO:<joe@localhost>'), '250 2.1.5');
      assertReply(await p.command('DATA'), '354 -');
      const startedAt = performance.now();
      const send = () => !p.closed && p.write(`${'z'.repeat(98)}\r\n`);
      send();
      timer = setInterval(send, TRICKLE_MS);
      const reply = await p.reply(8000);
      const elapsed = performance.now() - startedAt;
      assertTimeoutReply(reply, 'DATA at 250 octets/s');
      // budget 1 s, each 0.4 s costs 400 ms and gives back 200 ms: gone after about 2 s
      assert.ok(elapsed >= 1500 && elapsed < 3500, `cut ${elapsed.toFixed(0)} ms after 354`);
    } finally {
      clearInterval(timer);
      p.close();
    }
    await waitFor(() => fx.tmpFiles().length === 0, { timeoutMs: 5000, what: 'the temporary file to go' });
    q.expect(0);
  });

  test('a slow client within the bounds is served: each command in two halves 0.6 s apart, the message at 750 octets/s for 3 s', async () => {
    const q = fx.queueMark();
    const p = await fx.probe(OUTSIDE);
    const startedAt = performance.now();
    const slowCommand = async (line: string): Promise<Reply | null> => {
      const half = Math.ceil(line.length / 2);
      p.write(line.slice(0, half));
      await pause(600);
      p.write(`${line.slice(half)}\r\n`);
      return p.reply(5000);
    };
    try {
      assertReply(await p.reply(), '220 -');
      assertReply(await slowCommand('EHLO patient.example'), '250 -');
      assertReply(await slowCommand('MAIL FROM:<patient@client.test>'), '250 2.1.0');
      assertReply(await slowCommand('RCPT TO:<joe@localhost>'), '250 2.1.5');
      assertReply(await slowCommand('DATA'), '354 -');
      p.write('Subject: patient\r\n\r\n');
      for (let i = 0; i < 8; i++) {
        await pause(TRICKLE_MS);
        p.write(`${String(i).repeat(298)}\r\n`); // 300 octets every 0.4 s
      }
      const queued = assertReply(await p.command('.'), '250 2.0.0', 'end of data');
      assert.match(queued.text, /queued as/);
      assertReply(await slowCommand('NOOP'), '250 2.0.0');
      assertReply(await p.command('QUIT'), '221 2.0.0');
      const took = performance.now() - startedAt;
      assert.ok(took > 5000, `the session lasted ${took.toFixed(0)} ms, well past SMTP_TIMEOUT and the deadline`);
    } finally {
      p.close();
    }
    q.expect(1);
  });

  test('after STARTTLS the new parser is watched too: a command trickled inside TLS is cut about 1 s after its first octet', async () => {
    const plain = await fx.probe(OUTSIDE);
    let p: SmtpProbe | null = null;
    try {
      assertReply(await plain.reply(), '220 -');
      assertReply(await plain.command('EHLO tls.example'), '250 -');
      assertReply(await plain.command('STARTTLS'), '220 2.0.0');
      p = await plain.startTls();
      assert.ok(p.encrypted);
      const t = trickle(p, 'EHLO slowloris.example\r\n');
      const reply = await p.reply(5000);
      const elapsed = performance.now() - t.startedAt;
      t.stop();
      assertTimeoutReply(reply, 'trickled EHLO inside TLS');
      assert.ok(elapsed >= 950 && elapsed < 1700, `cut ${elapsed.toFixed(0)} ms after the first octet`);
    } finally {
      p?.close();
      plain.close();
    }
  });

  // The library's idle timer on the TLS socket does not see raw octets, so a trickled handshake
  // is cut after SMTP_TIMEOUT with the deadline off as well; the deadline bounds it when it is
  // shorter than SMTP_TIMEOUT.
  test('a TLS handshake trickled after STARTTLS is cut about 1 s after it began', async () => {
    const p = await fx.probe(OUTSIDE);
    try {
      assertReply(await p.reply(), '220 -');
      assertReply(await p.command('EHLO tls.example'), '250 -');
      assertReply(await p.command('STARTTLS'), '220 2.0.0');
      // the first octets of a TLS record header (handshake, TLS 1.0 record version), then a length that never comes in full
      const t = trickle(p, Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x00, 0x00, 0x00, 0x00]));
      const closed = await p.waitClosed(5000);
      const elapsed = performance.now() - t.startedAt;
      t.stop();
      assert.ok(closed, 'the connection was closed');
      assert.ok(elapsed >= 950 && elapsed < 1700, `closed ${elapsed.toFixed(0)} ms after STARTTLS`);
    } finally {
      p.close();
    }
  });

  test('the service goes on: a fast session right after gets its message queued', async () => {
    const q = fx.queueMark();
    const p = await fx.probe();
    try {
      await p.hello();
      assertReply(await p.command('MAIL FROM:<fast@client.test>'), '250 2.1.0');
      assertReply(await p.command('RCPT TO:<joe@localhost>'), '250 2.1.5');
      assertReply(await p.command('DATA'), '354 -');
      assertReply(await p.command('Subject: fast\r\n\r\nhello\r\n.'), '250 2.0.0');
    } finally {
      p.close();
    }
    q.expect(1);
  });
});

describe('SMTP_COMMAND_DEADLINE=0: SMTP_TIMEOUT alone, as before', () => {
  let off: ReliabilityFixture;
  before(async () => {
    off = await ReliabilityFixture.start({ serverIp: SERVER, options: 'SMTP_TIMEOUT=1\nSMTP_COMMAND_DEADLINE=0\n', mailboxes: ['joe'] });
  });
  after(async () => {
    await off?.stop();
  });

  test('the same trickle is not cut: after 2.4 s the command completes and is answered', async () => {
    const p = await off.probe(OUTSIDE);
    try {
      assertReply(await p.reply(), '220 -');
      const line = 'NOOP  \r\n';
      const t = trickle(p, line);
      const reply = await p.reply(6000);
      const elapsed = performance.now() - t.startedAt;
      assertReply(reply, '250 2.0.0', 'trickled NOOP with no deadline');
      assert.ok(elapsed > 2400, `answered after ${elapsed.toFixed(0)} ms`);
    } finally {
      p.close();
    }
  });
});
