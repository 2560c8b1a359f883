// The PROXY protocol against a real HAProxy (send-proxy, send-proxy-v2 with CRC32C and a unique
// id, its health checks, a backend without the header, a backend whose source address is not a
// listed balancer) in front of a small Node TCP server that does what an SMTP service with
// PROXY_PROTOCOL does before its session: admitConnection → readProxyHeader → resolveSession, then
// a greeting that names the client it got. Then hostile peers on raw sockets: a header from an
// address that is not listed, malformed v1 and v2, a header split over packets, a balancer that
// sends nothing, a slowloris header, a peer that leaves mid-header, and a TLS ClientHello that
// arrives in the same read as the header. Loopback only; HAProxy is stopped by its pid.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { setTimeout as delay } from 'node:timers/promises';
import { admitConnection, readProxyHeader, resolveSession, ProxyHeaderError, type ProxyHeader } from '../../src/proxy-protocol/index.js';
import { parseCidr } from '../../src/common/cidr.js';
import type { ProxyProtocolConfig } from '../../src/config/types.js';
import { freePort, waitFor } from '../helpers/instance.js';
import { startHaproxy, type Haproxy } from '../helpers/haproxy.js';
import { selfSignedCertificate } from '../helpers/sim-internet.js';

const SERVER_HOST = '127.0.0.1'; // the listed balancer address: HAProxy connects from it
const LB_HOST = '127.0.3.1'; // HAProxy's frontends
const CLIENT_HOST = '127.0.9.9'; // the "real" client behind the balancer
const STRANGER_HOST = '127.0.9.66'; // neither balancer nor allowed to speak PROXY
const UNLISTED_LB_SOURCE = '127.0.0.5'; // a balancer the service does not list
const HEADER_TIMEOUT_MS = 600;

interface SessionEvent {
  peer: string;
  peerPort: number;
  outcome: 'accepted' | 'refused';
  failure?: string;
  reason?: string;
  header?: ProxyHeader;
  client?: { address: string; port: number };
  proxied?: boolean;
  rest?: string;
  elapsedMs: number;
}

/** The service under test: PROXY_PROTOCOL=1, PROXY_TRUSTED=127.0.0.1, PROXY_TIMEOUT=0.6. */
class ProxyAwareServer {
  readonly events: SessionEvent[] = [];
  private readonly sockets = new Set<net.Socket>();
  private server!: net.Server;
  /** Hold off reading a new connection until this resolves (the TLS test fills the kernel buffer first). */
  gate: Promise<void> | null = null;
  port = 0;

  constructor(
    private readonly proxy: ProxyProtocolConfig,
    private readonly tlsOptions: { key: Buffer; cert: Buffer } | null = null,
  ) {}

  async listen(port: number): Promise<void> {
    this.port = port;
    // pauseOnConnect, as the dispatcher accepts: nothing is read until readProxyHeader asks.
    this.server = net.createServer({ pauseOnConnect: true }, (socket) => void this.handle(socket));
    await new Promise<void>((resolve) => this.server.listen(port, SERVER_HOST, resolve));
  }

  private async handle(socket: net.Socket): Promise<void> {
    const started = Date.now();
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    if (!socket.remoteAddress) return void socket.destroy(); // gone before we looked (as the SMTP service does)
    const base = { peer: socket.remoteAddress, peerPort: socket.remotePort! };
    const refuse = (failure: string, reason: string) => {
      this.events.push({ ...base, outcome: 'refused', failure, reason, elapsedMs: Date.now() - started });
      socket.destroy(); // no greeting: the peer sees the connection close
    };
    const admission = admitConnection(this.proxy, socket.remoteAddress);
    if (admission.action === 'refuse') return refuse('not-listed', admission.reason);
    if (admission.action !== 'read-header') throw new Error('the test service always takes PROXY');
    if (this.gate) await this.gate;
    let read;
    try {
      read = await readProxyHeader(socket, admission);
    } catch (err) {
      if (!(err instanceof ProxyHeaderError)) throw err;
      return refuse(err.failure, `${err.reason} [${err.received}]`);
    }
    const session = resolveSession({ address: socket.remoteAddress, port: socket.remotePort! }, read.header);
    if (session.action === 'refuse') return refuse('resolution', session.reason);
    this.events.push({ ...base, outcome: 'accepted', header: read.header, client: session.client, proxied: session.proxied, rest: read.rest.toString('latin1'), elapsedMs: Date.now() - started });
    const stream: net.Socket = this.tlsOptions ? new tls.TLSSocket(socket, { isServer: true, ...this.tlsOptions }) : socket;
    stream.on('error', () => {});
    stream.write(`220 ${session.client.address} ${session.client.port} ${session.proxied ? 'proxied' : 'balancer'} v${read.header.version}\r\n`);
    let pending = '';
    stream.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1');
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl).replace(/\r$/, '');
        pending = pending.slice(nl + 1);
        if (line.toUpperCase() === 'QUIT') stream.end('221 bye\r\n');
        else stream.write(`250 ${line}\r\n`);
      }
    });
  }

  /** The first event for a connection whose peer port (the balancer's or the client's) is `port`, or matching `pick`. */
  async event(pick: (e: SessionEvent) => boolean, what: string): Promise<SessionEvent> {
    return waitFor(() => this.events.find(pick), { timeoutMs: 10_000, what });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

interface Conversation {
  /** Everything the server sent until it closed (or until `untilLines` lines came). */
  received: string;
  closed: boolean;
  ms: number;
}

/** Connects, writes `send` (each string as its own write, `gapMs` apart), and reads until close or `untilLines` lines. */
async function converse(opts: { host: string; port: number; localAddress?: string; send?: Array<string | Buffer>; gapMs?: number; untilLines?: number; timeoutMs?: number }): Promise<Conversation & { localPort: number }> {
  const started = Date.now();
  const socket = net.connect({ host: opts.host, port: opts.port, localAddress: opts.localAddress });
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const localPort = socket.localPort!;
  let received = '';
  let closed = false;
  socket.on('data', (c: Buffer) => (received += c.toString('latin1')));
  socket.on('error', () => {});
  const ended = new Promise<void>((resolve) => socket.once('close', () => ((closed = true), resolve())));
  for (const piece of opts.send ?? []) {
    if (closed) break;
    socket.write(piece);
    if (opts.gapMs) await delay(opts.gapMs);
  }
  const deadline = Date.now() + (opts.timeoutMs ?? 5_000);
  while (!closed && Date.now() < deadline) {
    if (opts.untilLines !== undefined && received.split('\n').length - 1 >= opts.untilLines) break;
    await Promise.race([ended, delay(20)]);
  }
  socket.destroy();
  return { received, closed, ms: Date.now() - started, localPort };
}

const proxyConfig: ProxyProtocolConfig = { versions: 'any', trusted: [parseCidr(SERVER_HOST)!], timeoutMs: HEADER_TIMEOUT_MS, maxBytes: 1024 };
let service: ProxyAwareServer;
let lb: Haproxy;
const ports = { v1: 0, v2: 0, v2tlv: 0, plain: 0, unlisted: 0 };

before(async () => {
  service = new ProxyAwareServer(proxyConfig);
  await service.listen(await freePort(SERVER_HOST));
  for (const key of Object.keys(ports) as Array<keyof typeof ports>) ports[key] = await freePort(LB_HOST);
  const backend = `${SERVER_HOST}:${service.port}`;
  lb = await startHaproxy({
    sections: [
      'frontend fe_v1',
      `  bind ${LB_HOST}:${ports.v1}`,
      '  default_backend be_v1',
      'backend be_v1',
      // SMTP health checks (greeting, HELO, QUIT) over the same PROXY header as the traffic.
      '  option smtpchk',
      `  server s1 ${backend} send-proxy check inter 200ms`,
      'frontend fe_v2',
      `  bind ${LB_HOST}:${ports.v2}`,
      '  default_backend be_v2',
      'backend be_v2',
      '  option smtpchk',
      `  server s1 ${backend} send-proxy-v2 check inter 200ms`,
      'frontend fe_v2tlv',
      `  bind ${LB_HOST}:${ports.v2tlv}`,
      '  unique-id-format tsubame-%ci-%cp',
      '  default_backend be_v2tlv',
      'backend be_v2tlv',
      `  server s1 ${backend} send-proxy-v2 proxy-v2-options crc32c,unique-id`,
      'frontend fe_plain',
      `  bind ${LB_HOST}:${ports.plain}`,
      '  default_backend be_plain',
      'backend be_plain',
      `  server s1 ${backend}`,
      'frontend fe_unlisted',
      `  bind ${LB_HOST}:${ports.unlisted}`,
      '  default_backend be_unlisted',
      'backend be_unlisted',
      `  server s1 ${backend} send-proxy-v2 source ${UNLISTED_LB_SOURCE}`,
    ],
  });
});

after(async () => {
  await lb?.close();
  await service?.close();
});

const sessionOf = (clientPort: number) => (e: SessionEvent) => e.client?.port === clientPort;

test('through HAProxy send-proxy (v1): the real client address and port reach the service, the frontend as destination', async () => {
  const c = await converse({ host: LB_HOST, port: ports.v1, localAddress: CLIENT_HOST, send: ['QUIT\r\n'] });
  assert.match(c.received, new RegExp(`^220 ${CLIENT_HOST.replace(/\./g, '\\.')} ${c.localPort} proxied v1\r\n221 bye\r\n$`));
  const e = await service.event(sessionOf(c.localPort), 'the v1 session');
  assert.equal(e.peer, SERVER_HOST); // the socket's peer is HAProxy
  assert.deepEqual([e.header!.version, e.header!.family, e.header!.destination], [1, 'INET', { address: LB_HOST, port: ports.v1 }]);
});

test('through HAProxy send-proxy-v2: the real client address and port; the client bytes sent at once are kept after the header', async () => {
  // The client talks before the greeting: its line travels behind the header and must not be lost.
  const c = await converse({ host: LB_HOST, port: ports.v2, localAddress: CLIENT_HOST, send: ['EHLO early.example\r\n', 'QUIT\r\n'], untilLines: 3 });
  assert.equal(c.received, `220 ${CLIENT_HOST} ${c.localPort} proxied v2\r\n250 EHLO early.example\r\n221 bye\r\n`);
  const e = await service.event(sessionOf(c.localPort), 'the v2 session');
  assert.deepEqual([e.header!.version, e.header!.command, e.header!.family, e.header!.destination], [2, 'PROXY', 'INET', { address: LB_HOST, port: ports.v2 }]);
});

test('send-proxy-v2 with proxy-v2-options crc32c,unique-id: the checksum verifies and the unique id arrives as a TLV', async () => {
  const c = await converse({ host: LB_HOST, port: ports.v2tlv, localAddress: CLIENT_HOST, send: ['QUIT\r\n'] });
  assert.match(c.received, /^220 127\.0\.9\.9 \d+ proxied v2\r\n/);
  const e = await service.event(sessionOf(c.localPort), 'the v2 session with TLVs');
  const types = e.header!.tlvs.map((t) => t.type);
  assert.ok(types.includes(0x03), `a CRC32C TLV (types: ${types})`);
  const unique = e.header!.tlvs.find((t) => t.type === 0x05);
  assert.equal(unique?.value.toString(), `tsubame-${CLIENT_HOST}-${c.localPort}`);
});

test("HAProxy's SMTP health checks carry the header too: v2 sends LOCAL (the balancer's own connection), v1 the check's own endpoints", async () => {
  const v2Check = await service.event((e) => e.outcome === 'accepted' && e.header?.version === 2 && e.header.command === 'LOCAL', 'a v2 LOCAL health check');
  assert.deepEqual([v2Check.proxied, v2Check.client], [false, { address: SERVER_HOST, port: v2Check.peerPort }]);
  // HAProxy's v1 check says "PROXY TCP4 <its address> <server> <its port> <server port>": the balancer itself.
  const v1Check = await service.event((e) => e.outcome === 'accepted' && e.header?.version === 1 && e.client?.port === e.peerPort, 'a v1 health check');
  assert.deepEqual([v1Check.header!.family, v1Check.client!.address, v1Check.header!.destination], ['INET', SERVER_HOST, { address: SERVER_HOST, port: service.port }]);
  // The checks pass (greeting, HELO answered): HAProxy never marks the servers down.
  await delay(500);
  assert.doesNotMatch(lb.output(), /is DOWN/, lb.output());
});

test('a listed balancer that sends no header (a backend without send-proxy): closed without a greeting after PROXY_TIMEOUT', async () => {
  const c = await converse({ host: LB_HOST, port: ports.plain, localAddress: CLIENT_HOST });
  assert.deepEqual([c.received, c.closed], ['', true]);
  const e = await service.event((x) => x.outcome === 'refused' && x.failure === 'timeout', 'the header timeout');
  assert.match(e.reason!, /no complete PROXY header within 600 ms \[\]/);
  assert.ok(e.elapsedMs >= HEADER_TIMEOUT_MS - 20 && e.elapsedMs < HEADER_TIMEOUT_MS + 2_000, `refused after ${e.elapsedMs} ms`);
});

test('a header from a balancer that is not listed (HAProxy with another source address): refused, nothing relayed', async () => {
  const c = await converse({ host: LB_HOST, port: ports.unlisted, localAddress: CLIENT_HOST, send: ['QUIT\r\n'] });
  assert.deepEqual([c.received, c.closed], ['', true]);
  const e = await service.event((x) => x.peer === UNLISTED_LB_SOURCE, 'the unlisted balancer');
  assert.deepEqual([e.outcome, e.failure], ['refused', 'not-listed']);
  assert.match(e.reason!, /127\.0\.0\.5 is not a listed balancer/);
});

// ----------------------------------------------------------------- hostile peers, raw sockets

test('a well-formed header straight from an address that is not listed: closed before any byte', async () => {
  const c = await converse({ host: SERVER_HOST, port: service.port, localAddress: STRANGER_HOST, send: ['PROXY TCP4 203.0.113.5 198.51.100.1 5555 25\r\nEHLO x\r\n'] });
  assert.deepEqual([c.received, c.closed], ['', true]);
  const e = await service.event((x) => x.peer === STRANGER_HOST, 'the stranger');
  assert.deepEqual([e.outcome, e.failure], ['refused', 'not-listed']);
});

test('malformed v1 and v2 headers from the balancer: closed without a greeting, the reason and the bytes logged safely', async () => {
  const cases: Array<[string | Buffer, RegExp]> = [
    ['PROXY TCP4 203.0.113.5 198.51.100.1 99999 25\r\nEHLO x\r\n', /bad source port "99999" \[PROXY TCP4 203\.0\.113\.5 198\.51\.100\.1 99999 25\\r\\nEHLO x\\r\\n\]/],
    ['PROXY TCP4 203.0.113.5 198.51.100.1 1 25\nEHLO x\r\n', /LF without CR/],
    [`PROXY UNKNOWN ${'A'.repeat(200)}`, /no CRLF within 107 octets/],
    ['EHLO client.example\r\n', /not a PROXY protocol header \[EHLO client\.example\\r\\n\]/],
    [Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x58]), /version 2: bad signature \[\\r\\n\\r\\n\\x00\\r\\nQUIX\]/],
    [Buffer.concat([Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'latin1'), Buffer.from([0x21, 0x11, 0xff, 0xff])]), /header of 65551 octets is longer than the 1024 taken/],
    [Buffer.concat([Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'latin1'), Buffer.from([0x21, 0x11, 0x00, 0x04, 1, 2, 3, 4])]), /fewer than the 12 of the INET address block/],
  ];
  for (const [bytes, reason] of cases) {
    const c = await converse({ host: SERVER_HOST, port: service.port, send: [bytes] });
    assert.deepEqual([c.received, c.closed], ['', true], String(bytes));
    const e = await service.event((x) => x.peerPort === c.localPort, `the refusal of ${JSON.stringify(String(bytes)).slice(0, 40)}`);
    assert.equal(e.failure, 'malformed');
    assert.match(e.reason!, reason);
    assert.ok(e.elapsedMs < HEADER_TIMEOUT_MS, `refused at once, not at the timeout (${e.elapsedMs} ms)`);
  }
});

test('a header split over packets, octet by octet (v1 and v2): accepted with the header client, the SMTP line after it kept', async () => {
  const v1 = [...'PROXY TCP4 198.51.100.44 192.0.2.1 4444 25\r\n'].map((ch) => Buffer.from(ch, 'latin1'));
  const c1 = await converse({ host: SERVER_HOST, port: service.port, send: [...v1, 'NOOP\r\n'], gapMs: 5, untilLines: 2 });
  assert.equal(c1.received, '220 198.51.100.44 4444 proxied v1\r\n250 NOOP\r\n');
  const v2 = Buffer.concat([Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'latin1'), Buffer.from([0x21, 0x11, 0x00, 0x0c, 198, 51, 100, 45, 192, 0, 2, 1, 0x11, 0x5c, 0x00, 0x19])]);
  const c2 = await converse({ host: SERVER_HOST, port: service.port, send: [...v2].map((b) => Buffer.from([b])).concat(Buffer.from('NOOP\r\n')), gapMs: 5, untilLines: 2 });
  assert.equal(c2.received, '220 198.51.100.45 4444 proxied v2\r\n250 NOOP\r\n');
});

test('slowloris: a header trickled an octet every 100 ms is cut off at PROXY_TIMEOUT, however far it got', async () => {
  const slow = [...'PROXY TCP4 198.51.100.46 192.0.2.1 4444 25\r\n'].map((ch) => Buffer.from(ch, 'latin1'));
  const c = await converse({ host: SERVER_HOST, port: service.port, send: slow, gapMs: 100, timeoutMs: 6_000 });
  assert.deepEqual([c.received, c.closed], ['', true]);
  assert.ok(c.ms < HEADER_TIMEOUT_MS + 1_000, `closed after ${c.ms} ms`);
  const e = await service.event((x) => x.peerPort === c.localPort, 'the slowloris refusal');
  assert.equal(e.failure, 'timeout');
  assert.match(e.reason!, /\[PROXY [^\]]*\]$/); // what had arrived is in the log line
});

test('a peer that leaves in the middle of a header (truncated v2): refused as closed, not left waiting', async () => {
  const truncated = Buffer.concat([Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'latin1'), Buffer.from([0x21, 0x11, 0x00, 0x0c, 198, 51])]);
  const socket = net.connect({ host: SERVER_HOST, port: service.port });
  await new Promise((r) => socket.once('connect', r));
  const localPort = socket.localPort!;
  socket.end(truncated);
  const e = await service.event((x) => x.peerPort === localPort, 'the truncated header');
  assert.deepEqual([e.outcome, e.failure], ['refused', 'closed']);
  assert.match(e.reason!, /closed in the middle of the PROXY header/);
  assert.ok(e.elapsedMs < HEADER_TIMEOUT_MS, `${e.elapsedMs} ms`);
  socket.destroy();
});

test('implicit TLS behind the balancer: a ClientHello that arrives in the same read as the header is not lost', async () => {
  const tlsService = new ProxyAwareServer(proxyConfig, selfSignedCertificate());
  await tlsService.listen(await freePort(SERVER_HOST));
  let open!: () => void;
  tlsService.gate = new Promise<void>((r) => (open = r));
  try {
    const raw = net.connect({ host: SERVER_HOST, port: tlsService.port });
    await new Promise((r) => raw.once('connect', r));
    raw.write('PROXY TCP4 198.51.100.47 192.0.2.1 4465 465\r\n');
    const secure = tls.connect({ socket: raw, rejectUnauthorized: false });
    secure.on('error', () => {});
    // The header and the ClientHello sit in the kernel buffer before the service reads anything.
    await waitFor(() => (raw.bytesWritten > 100 ? true : null), { timeoutMs: 5_000, what: 'the ClientHello to be sent' });
    open();
    const greeting = await new Promise<string>((resolve, reject) => {
      secure.once('data', (c: Buffer) => resolve(c.toString()));
      secure.once('close', () => reject(new Error('closed before the greeting')));
    });
    assert.equal(greeting, '220 198.51.100.47 4465 proxied v1\r\n');
    const e = await tlsService.event((x) => x.outcome === 'accepted', 'the TLS session');
    assert.ok(e.rest!.length > 0 && e.rest!.charCodeAt(0) === 0x16, 'the ClientHello (a TLS handshake record) came with the header and was put back');
    secure.destroy();
  } finally {
    await tlsService.close();
  }
});
