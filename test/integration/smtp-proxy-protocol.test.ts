// The PROXY protocol wired into the SMTP service's intake: an SMTP service with PROXY_PROTOCOL=1
// behind a real HAProxy (send-proxy-v2 and send-proxy) sees the real client for everything —
// relaying by INTERNAL_IP, PORT_ACCESS, MAX_CONNS_PER_IP, the Received line — and raw sockets
// that play a hostile balancer or a stranger (a header from an address that is not listed, no
// header, malformed v1 and v2, a header split over several packets) are refused without a
// greeting, logged, and nothing is queued; on a TLS_PORT the header comes before the TLS handshake.
// Loopback only; HAProxy is stopped by its pid.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { mkdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { makeInstance, freePort, waitFor, type TestInstance } from '../helpers/instance.js';
import { startHaproxy, type Haproxy } from '../helpers/haproxy.js';
import { createSmtpService, type SmtpService } from '../../src/smtp-server/service.js';
import { SmtpFixture, SmtpProbe, TEST_IMTA, listFiles, SERVER_IP as HARNESS_SERVER_IP } from './smtp-harness.js';
import { makeCertificate } from './smtp-auth-fixture.js';

const SERVER_IP = '127.0.5.1';
const BALANCER_SOURCE = '127.0.0.1'; // HAProxy's source toward the service: the listed balancer
const LB_HOST = '127.0.3.1'; // HAProxy's frontends
const INSIDE_CLIENT = '127.0.6.1'; // inside INTERNAL_IP: may relay
const OUTSIDE_CLIENT = '127.0.9.9'; // outside: may not relay
const BLOCKED_CLIENT = '127.0.9.13'; // refused by PORT_ACCESS
const STRANGER = '127.0.9.66'; // not a listed balancer

let inst: TestInstance;
let service: SmtpService;
let listener: net.Server;
let lb: Haproxy;
let port = 0;
let v2Port = 0;
let v1Port = 0;

before(async () => {
  port = await freePort(SERVER_IP);
  inst = makeInstance({
    files: {
      'etc/imta.cnf': TEST_IMTA,
      'etc/dispatcher.cnf': `[SERVICE=SMTP]\nPORT=${port}\nINTERFACE_ADDRESS=${SERVER_IP}\nPROXY_PROTOCOL=1\nPROXY_TRUSTED=${BALANCER_SOURCE}\nPROXY_TIMEOUT=1\n`,
      'etc/job_controller.cnf': '[POOL=DEFAULT]\nJOB_LIMIT=2\n',
      'etc/option.dat': `INTERNAL_IP=127.0.6.0/24\nLOCAL_HOST=mx.tsubame.test\nMAX_CONNS_PER_IP=2\n`,
      'etc/mappings': `PORT_ACCESS\n\n  TCP|*|*|${BLOCKED_CLIENT}|*   $NGo$ away\n  *   $Y\n`,
    },
  });
  mkdirSync(join(inst.root, 'mailbox', 'joe', 'new'), { recursive: true });
  service = await createSmtpService({ root: inst.root, service: 'SMTP' }); // logs to log/tcp_smtp_server.log
  listener = net.createServer({ pauseOnConnect: true }, (socket) => service.handle(socket));
  await new Promise<void>((resolve) => listener.listen(port, SERVER_IP, resolve));
  v2Port = await freePort(LB_HOST);
  v1Port = await freePort(LB_HOST);
  lb = await startHaproxy({
    sections: [
      'frontend fe_v2',
      `  bind ${LB_HOST}:${v2Port}`,
      '  default_backend be_v2',
      'backend be_v2',
      `  server n1 ${SERVER_IP}:${port} send-proxy-v2 source ${BALANCER_SOURCE}`,
      'frontend fe_v1',
      `  bind ${LB_HOST}:${v1Port}`,
      '  default_backend be_v1',
      'backend be_v1',
      `  server n1 ${SERVER_IP}:${port} send-proxy source ${BALANCER_SOURCE}`,
    ],
  });
});

after(async () => {
  await lb?.close();
  await new Promise<void>((r) => listener?.close(() => r()));
  await service?.close(200);
  inst?.remove();
});

function serviceLog(): string {
  const p = join(inst.root, 'log', 'tcp_smtp_server.log');
  return existsSync(p) ? readFileSync(p, 'utf8') : '';
}

function queued(): string[] {
  return listFiles(join(inst.root, 'queue')).filter((f) => !f.includes('/.'));
}

/** A relay attempt through the balancer's `frontPort` from `client`: the RCPT reply. */
async function relayThrough(frontPort: number, client: string, rcpt: string): Promise<{ probe: SmtpProbe; rcpt: number }> {
  const probe = await SmtpProbe.connect(LB_HOST, frontPort, client);
  await probe.hello('client.test');
  assert.equal((await probe.command('MAIL FROM:<sender@client.test>'))?.code, 250);
  const r = await probe.command(`RCPT TO:<${rcpt}>`);
  return { probe, rcpt: r!.code };
}

test('send-proxy-v2: the client behind HAProxy is the session’s — INTERNAL_IP decides relaying, Received names it', async () => {
  const inside = await relayThrough(v2Port, INSIDE_CLIENT, 'someone@remote.example');
  assert.equal(inside.rcpt, 250, 'a client inside INTERNAL_IP relays, though the balancer is outside it');
  assert.equal((await inside.probe.command('DATA'))?.code, 354);
  const done = await inside.probe.command('Subject: through the balancer\r\n\r\nhello\r\n.');
  assert.equal(done?.code, 250);
  await inside.probe.command('QUIT');
  const file = await waitFor(() => queued().find((f) => f.includes('/tcp_local/')), { what: 'the queued message' });
  const text = readFileSync(file, 'latin1');
  assert.match(text, new RegExp(`Received: from client\\.test \\(\\[${INSIDE_CLIENT.replace(/\./g, '\\.')}\\]\\)`));
  assert.doesNotMatch(text, /\[127\.0\.0\.1\]/);

  const outside = await relayThrough(v2Port, OUTSIDE_CLIENT, 'someone@remote.example');
  assert.equal(outside.rcpt, 550, 'a client outside INTERNAL_IP may not relay');
  outside.probe.close();
});

test('send-proxy (v1): the same, the client is the one the text header names', async () => {
  const outside = await relayThrough(v1Port, OUTSIDE_CLIENT, 'someone@remote.example');
  assert.equal(outside.rcpt, 550);
  outside.probe.close();
  const inside = await relayThrough(v1Port, INSIDE_CLIENT, 'someone@remote.example');
  assert.equal(inside.rcpt, 250);
  inside.probe.close();
});

test('PORT_ACCESS and MAX_CONNS_PER_IP see the real client, not the balancer', async () => {
  const blocked = await SmtpProbe.connect(LB_HOST, v2Port, BLOCKED_CLIENT);
  assert.equal((await blocked.reply())?.text, '554 5.7.1 Go away');
  blocked.close();

  // MAX_CONNS_PER_IP=2: a third session from one client is refused; another client still gets in.
  const held: SmtpProbe[] = [];
  for (let i = 0; i < 2; i++) {
    const p = await SmtpProbe.connect(LB_HOST, v2Port, OUTSIDE_CLIENT);
    assert.equal((await p.reply())?.code, 220);
    held.push(p);
  }
  const third = await SmtpProbe.connect(LB_HOST, v2Port, OUTSIDE_CLIENT);
  assert.match((await third.reply())?.text ?? '', /^421 4\.7\.0 Too many connections/);
  third.close();
  const other = await SmtpProbe.connect(LB_HOST, v2Port, INSIDE_CLIENT);
  assert.equal((await other.reply())?.code, 220, 'another client behind the same balancer is not counted with the first');
  other.close();
  for (const p of held) p.close();
});

/** A raw connection to the service itself from `from`; resolves with what it received before the close (or after 3 s). */
function rawExchange(from: string, chunks: Buffer[], gapMs = 30): Promise<{ received: string; closed: boolean }> {
  return new Promise((resolve) => {
    let received = '';
    const s = net.connect({ host: SERVER_IP, port, localAddress: from });
    s.on('data', (d) => (received += d.toString('latin1')));
    s.on('error', () => {});
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ received, closed: false });
    }, 3000);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ received, closed: true });
    });
    s.once('connect', () => {
      let i = 0;
      const next = () => {
        if (i >= chunks.length || s.destroyed) return;
        s.write(chunks[i++]!);
        setTimeout(next, gapMs);
      };
      next();
    });
  });
}

const v1 = (src: string) => Buffer.from(`PROXY TCP4 ${src} ${LB_HOST} 40000 25\r\n`);
const RELAY = Buffer.from('EHLO evil.test\r\nMAIL FROM:<a@evil.test>\r\nRCPT TO:<victim@remote.example>\r\nDATA\r\n');

function v2(src: string, opts: { version?: number; length?: number } = {}): Buffer {
  const sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  const body = Buffer.alloc(12);
  src.split('.').forEach((o, i) => body.writeUInt8(Number(o), i));
  LB_HOST.split('.').forEach((o, i) => body.writeUInt8(Number(o), 4 + i));
  body.writeUInt16BE(40001, 8);
  body.writeUInt16BE(25, 10);
  const head = Buffer.from([((opts.version ?? 2) << 4) | 1, 0x11, 0, 0]);
  head.writeUInt16BE(opts.length ?? body.length, 2);
  return Buffer.concat([sig, head, body]);
}

test('hostile PROXY cases on raw sockets: refused without a greeting, logged, nothing queued', async () => {
  const before = queued().length;
  const cases: Array<{ name: string; from: string; chunks: Buffer[]; reason: RegExp }> = [
    { name: 'a valid header from an address that is not a listed balancer', from: STRANGER, chunks: [Buffer.concat([v1(INSIDE_CLIENT), RELAY])], reason: /not a listed balancer/ },
    { name: 'the balancer without a header', from: BALANCER_SOURCE, chunks: [RELAY], reason: /./ },
    { name: 'a malformed v1 header (two spaces)', from: BALANCER_SOURCE, chunks: [Buffer.from(`PROXY TCP4  ${INSIDE_CLIENT} ${LB_HOST} 40000 25\r\n`), RELAY], reason: /./ },
    { name: 'a v1 header with a bad address', from: BALANCER_SOURCE, chunks: [Buffer.from(`PROXY TCP4 127.0.6.300 ${LB_HOST} 40000 25\r\n`), RELAY], reason: /./ },
    { name: 'a v2 header of version 3', from: BALANCER_SOURCE, chunks: [Buffer.concat([v2(INSIDE_CLIENT, { version: 3 }), RELAY])], reason: /./ },
    { name: 'a v2 header whose length is too short for its addresses', from: BALANCER_SOURCE, chunks: [Buffer.concat([v2(INSIDE_CLIENT, { length: 4 }), RELAY])], reason: /./ },
    { name: 'a v2 header that never completes', from: BALANCER_SOURCE, chunks: [v2(INSIDE_CLIENT).subarray(0, 20)], reason: /within 1000 ms|no complete PROXY header/ },
  ];
  for (const c of cases) {
    const r = await rawExchange(c.from, c.chunks);
    assert.equal(r.received, '', `${c.name}: no greeting, nothing answered`);
    assert.ok(r.closed, `${c.name}: closed`);
  }
  await waitFor(() => (serviceLog().match(/PROXY protocol: connection refused/g) ?? []).length >= cases.length, { what: 'one log line per refused connection' });
  const lines = serviceLog().split('\n').filter((l) => l.includes('PROXY protocol: connection refused'));
  assert.ok(lines.some((l) => l.includes(STRANGER) && /not a listed balancer/.test(l)));
  assert.equal(queued().length, before, 'nothing queued');
});

test('a header split over several packets (v1 and v2) is read whole; the session is the real client’s', async () => {
  for (const header of [v1(INSIDE_CLIENT), v2(INSIDE_CLIENT)]) {
    const chunks = [header.subarray(0, 3), header.subarray(3, 9), header.subarray(9, header.length - 1), header.subarray(header.length - 1)];
    const s = net.connect({ host: SERVER_IP, port, localAddress: BALANCER_SOURCE });
    await new Promise((r) => s.once('connect', r));
    for (const c of chunks) {
      s.write(c);
      await new Promise((r) => setTimeout(r, 40)); // separate packets (the test's own pacing, not a synchronisation)
    }
    let got = '';
    s.on('data', (d) => (got += d.toString('latin1')));
    await waitFor(() => /^220 /m.test(got), { what: 'the greeting after a split header' });
    s.write('EHLO client.test\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<someone@remote.example>\r\n');
    const finalReplies = () => got.split('\r\n').filter((l) => /^\d{3} /.test(l));
    await waitFor(() => finalReplies().length >= 4, { what: 'the replies to EHLO, MAIL and RCPT' });
    assert.deepEqual(finalReplies().map((l) => l.slice(0, 3)), ['220', '250', '250', '250'], 'the header’s client (inside INTERNAL_IP) may relay');
    s.destroy();
  }
});

test('a TLS_PORT behind the balancer: the header, then TLS at once, and the session is the header’s client', async () => {
  const cert = makeCertificate();
  // Internal: the header's client (INTERNAL_IP is the fixture's server address); the balancer is 127.0.0.1.
  const fx = await SmtpFixture.start({ options: `TLS_KEY=${cert.key}\nTLS_CERT=${cert.cert}\n`, tlsPort: true, service: 'PROXY_PROTOCOL=1\nPROXY_TRUSTED=127.0.0.1' });
  try {
    const raw = net.connect({ host: HARNESS_SERVER_IP, port: fx.tlsPort!, localAddress: BALANCER_SOURCE });
    await new Promise((r) => raw.once('connect', r));
    raw.write(v1(HARNESS_SERVER_IP)); // the header in clear, then the TLS handshake at once
    const secure = tls.connect({ socket: raw, rejectUnauthorized: false, servername: 'mx.tsubame.test' });
    let got = '';
    secure.on('data', (d: Buffer) => (got += d.toString('latin1')));
    secure.on('error', () => {});
    await waitFor(() => /^220 /m.test(got), { what: 'the greeting over TLS' });
    secure.write('EHLO client.test\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<someone@remote.example>\r\n');
    const finalReplies = () => got.split('\r\n').filter((l) => /^\d{3} /.test(l));
    await waitFor(() => finalReplies().length >= 4, { what: 'the replies to EHLO, MAIL and RCPT' });
    assert.deepEqual(finalReplies().map((l) => l.slice(0, 3)), ['220', '250', '250', '250'], 'the header’s client (inside INTERNAL_IP) relays over implicit TLS');
    secure.destroy();
  } finally {
    await fx.stop();
    cert.remove();
  }
});

/** A v2 PROXY TCP6 header with TLVs (ALPN, authority, NOOP padding), as send-proxy-v2 with proxy-v2-options sends it. */
function v2Tcp6(src: Buffer, dst: Buffer): Buffer {
  const sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(40002, 0);
  ports.writeUInt16BE(25, 2);
  const tlv = (type: number, value: Buffer) => Buffer.concat([Buffer.from([type, value.length >> 8, value.length & 0xff]), value]);
  const body = Buffer.concat([src, dst, ports, tlv(0x01, Buffer.from('smtp')), tlv(0x02, Buffer.from('mx.example')), tlv(0x04, Buffer.alloc(5))]);
  const head = Buffer.from([0x21, 0x21, 0, 0]);
  head.writeUInt16BE(body.length, 2);
  return Buffer.concat([sig, head, body]);
}

function ipv6Bytes(text: string): Buffer {
  const [left, right = ''] = text.split('::');
  const l = left ? left.split(':') : [];
  const r = right ? right.split(':') : [];
  const groups = [...l, ...Array(8 - l.length - r.length).fill('0'), ...r];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

/** Through a raw balancer socket: the header, then EHLO/MAIL/RCPT; the final replies' codes. */
async function sessionAfter(header: Buffer, rcpt: string): Promise<{ codes: string[]; socket: net.Socket; got: () => string }> {
  const s = net.connect({ host: SERVER_IP, port, localAddress: BALANCER_SOURCE });
  let got = '';
  s.on('data', (d) => (got += d.toString('latin1')));
  await new Promise((r) => s.once('connect', r));
  s.write(header);
  await waitFor(() => /^220 /m.test(got), { what: 'the greeting after an IPv6 header' });
  s.write(`EHLO client.test\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<${rcpt}>\r\n`);
  const finalReplies = () => got.split('\r\n').filter((l) => /^\d{3} /.test(l));
  await waitFor(() => finalReplies().length >= 4, { what: 'the replies to EHLO, MAIL and RCPT' });
  return { codes: finalReplies().map((l) => l.slice(0, 3)), socket: s, got: () => got };
}

test('IPv6 clients in the header (v1 TCP6, v2 TCP6 with TLVs): the session is theirs; an IPv4-mapped one is its IPv4 address for INTERNAL_IP', async () => {
  const v1six = await sessionAfter(Buffer.from('PROXY TCP6 2001:db8::5 2001:db8::25 40000 25\r\n'), 'someone@remote.example');
  assert.deepEqual(v1six.codes, ['220', '250', '250', '550'], 'an IPv6 client outside INTERNAL_IP may not relay');
  v1six.socket.destroy();

  const mapped = await sessionAfter(v2Tcp6(ipv6Bytes('::ffff:7f00:607'), ipv6Bytes('2001:db8::25')), 'joe@mx.tsubame.test');
  assert.equal(mapped.codes[3], '250');
  mapped.socket.write('RSET\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<someone@remote.example>\r\n');
  const replies = () => mapped.got().split('\r\n').filter((l) => /^\d{3} /.test(l));
  await waitFor(() => replies().length >= 7, { what: 'the replies to RSET, MAIL and RCPT' });
  assert.equal(replies()[6]!.slice(0, 3), '250', '::ffff:127.0.6.7 is inside INTERNAL_IP=127.0.6.0/24: it relays');
  mapped.socket.destroy();

  const v2six = await sessionAfter(v2Tcp6(ipv6Bytes('2001:db8::7'), ipv6Bytes('2001:db8::25')), 'joe@mx.tsubame.test');
  assert.equal(v2six.codes[3], '250');
  v2six.socket.write('DATA\r\n');
  await waitFor(() => /^354 /m.test(v2six.got()), { what: 'the 354' });
  const before = queued().length;
  v2six.socket.write('Subject: over IPv6\r\n\r\nhello\r\n.\r\nQUIT\r\n');
  const file = await waitFor(() => (queued().length > before ? queued().find((f) => readFileSync(f, 'latin1').includes('over IPv6')) : undefined), { what: 'the message from the IPv6 client' });
  assert.match(readFileSync(file, 'latin1'), /Received: from client\.test \(\[IPv6:2001:db8::7\]\)/);
  v2six.socket.destroy();
});
