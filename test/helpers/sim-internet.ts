// The simulated internet for delivery tests and benchmarks: a DNS server on loopback serving MX,
// A and AAAA records from a table (with failure knobs and query counting), and SMTP/LMTP peers on
// distinct 127.x.y.z addresses that record every connection and transaction.
//
//   const dns = await startDnsServer({ host: '127.0.6.53', records: { 'a.test': { mx: [{ exchange: 'mx1.isp.test', preference: 10 }] }, 'mx1.isp.test': { a: ['127.6.1.1'] } } });
//   const peer = await startSmtpPeer({ host: '127.6.1.1', port });
//   … option.dat DNS_SERVERS=127.0.6.53:<dns.port>, channel `port <port>` …
//   peer.transactions → [{ from, to, data, messageId, connection, secure }]
import dgram from 'node:dgram';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as dnsPacket from 'dns-packet';
import type { Answer } from 'dns-packet';
import { SMTPServer, type SMTPServerSession, type SMTPServerAddress } from 'smtp-server';

// ------------------------------------------------------------------------------------------ DNS

export type DnsBehaviour = 'nxdomain' | 'servfail' | 'timeout' | 'truncate' | 'refused';

export interface DnsRecord {
  /** MX records; `'null'` publishes the RFC 7505 null MX (`0 .`). */
  mx?: Array<{ exchange: string; preference: number }> | 'null';
  a?: string[];
  aaaa?: string[];
  /** TXT records, one string each (split into 255-octet strings on the wire); answers too big for UDP come back truncated. */
  txt?: string[];
  /** The name is an alias: answers carry the CNAME and the target's records. */
  cname?: string;
  /** A failure for every query of this name (truncate: UDP answers have TC set, TCP answers are whole). */
  behaviour?: DnsBehaviour;
  ttl?: number;
}

export type DnsTable = Record<string, DnsRecord>;

export interface DnsQueryLog {
  name: string;
  type: string;
  transport: 'udp' | 'tcp';
  /** The query asked for DNSSEC: the EDNS0 DO bit was set. */
  dnssecOk: boolean;
  /** The query had the AD bit set (RFC 6840 §5.7). */
  adBit: boolean;
}

export interface SimDns {
  host: string;
  port: number;
  /** `host:port`, as DNS_SERVERS takes it. */
  server: string;
  queries: DnsQueryLog[];
  /** Queries so far, optionally only for a name and/or type. */
  count(name?: string, type?: string): number;
  /** The table (mutable: change records between steps of a test). */
  records: DnsTable;
  /** Whether MX answers carry the MX hosts' addresses in the additional section. */
  glue: boolean;
  close(): Promise<void>;
}

export async function startDnsServer(opts: { host?: string; port?: number; records: DnsTable; glue?: boolean; ttl?: number }): Promise<SimDns> {
  const host = opts.host ?? '127.0.6.53';
  const records: DnsTable = {};
  for (const [k, v] of Object.entries(opts.records)) records[k.toLowerCase()] = v;
  const queries: DnsQueryLog[] = [];
  const defaultTtl = opts.ttl ?? 300;
  const state = { glue: opts.glue ?? true };

  const answer = (query: dnsPacket.DecodedPacket, transport: 'udp' | 'tcp'): Buffer | null => {
    const q = query.questions?.[0];
    if (!q) return null;
    const name = q.name.toLowerCase().replace(/\.$/, '');
    const opt = (query.additionals ?? []).find((a) => a.type === 'OPT') as { flag_do?: boolean } | undefined;
    queries.push({ name, type: q.type, transport, dnssecOk: Boolean(opt?.flag_do), adBit: Boolean((query as { flag_ad?: boolean }).flag_ad) });
    const base = { type: 'response' as const, id: query.id, questions: [q] };
    const flags = dnsPacket.RECURSION_AVAILABLE | dnsPacket.RECURSION_DESIRED | dnsPacket.AUTHORITATIVE_ANSWER;
    const soa = { type: 'SOA', name: name.split('.').slice(-1)[0] ?? '.', ttl: 60, data: { mname: 'ns.sim.test', rname: 'hostmaster.sim.test', serial: 1, refresh: 60, retry: 60, expire: 600, minimum: 60 } } as Answer;
    let rec = records[name];
    if (rec?.behaviour === 'timeout') return null;
    if (rec?.behaviour === 'servfail') return dnsPacket.encode({ ...base, flags: flags | 2 });
    if (rec?.behaviour === 'refused') return dnsPacket.encode({ ...base, flags: flags | 5 });
    if (!rec || rec.behaviour === 'nxdomain') return dnsPacket.encode({ ...base, flags: flags | 3, authorities: [soa] });
    if (rec.behaviour === 'truncate' && transport === 'udp') return dnsPacket.encode({ ...base, flags: flags | dnsPacket.TRUNCATED_RESPONSE });
    const answers: Answer[] = [];
    let owner = name;
    for (let hops = 0; rec?.cname && hops < 8; hops++) {
      answers.push({ type: 'CNAME', name: owner, ttl: rec.ttl ?? defaultTtl, data: rec.cname });
      owner = rec.cname.toLowerCase();
      rec = records[owner];
    }
    if (!rec) return dnsPacket.encode({ ...base, flags: flags | 3, answers, authorities: [soa] });
    const ttl = rec.ttl ?? defaultTtl;
    const additionals: Answer[] = [];
    const mxList = rec.mx;
    if (q.type === 'MX' && mxList === 'null') answers.push({ type: 'MX', name: owner, ttl, data: { preference: 0, exchange: '.' } });
    else if (q.type === 'MX' && Array.isArray(mxList)) {
      for (const mx of mxList) {
        answers.push({ type: 'MX', name: owner, ttl, data: { preference: mx.preference, exchange: mx.exchange } });
        const target = records[mx.exchange.toLowerCase()];
        if (state.glue && target && !target.behaviour) {
          for (const a of target.a ?? []) additionals.push({ type: 'A', name: mx.exchange, ttl: target.ttl ?? defaultTtl, data: a });
          for (const a of target.aaaa ?? []) additionals.push({ type: 'AAAA', name: mx.exchange, ttl: target.ttl ?? defaultTtl, data: a });
        }
      }
    } else if (q.type === 'A') for (const a of rec.a ?? []) answers.push({ type: 'A', name: owner, ttl, data: a });
    else if (q.type === 'AAAA') for (const a of rec.aaaa ?? []) answers.push({ type: 'AAAA', name: owner, ttl, data: a });
    else if (q.type === 'TXT') for (const t of rec.txt ?? []) answers.push({ type: 'TXT', name: owner, ttl, data: (t.match(/[\s\S]{1,255}/g) ?? ['']).map((p) => Buffer.from(p)) });
    const nodata = !answers.some((a) => a.type === (q.type));
    const whole = dnsPacket.encode({ ...base, flags, answers, additionals, authorities: nodata ? [soa] : [] });
    // As a server does for an answer larger than the EDNS payload size: truncated over UDP, whole over TCP.
    if (transport === 'udp' && whole.length > 1232) return dnsPacket.encode({ ...base, flags: flags | dnsPacket.TRUNCATED_RESPONSE });
    return whole;
  };

  const udp = dgram.createSocket('udp4');
  udp.on('message', (msg, rinfo) => {
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return;
    }
    const reply = answer(query, 'udp');
    if (reply) udp.send(reply, rinfo.port, rinfo.address);
  });
  const port = await new Promise<number>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(opts.port ?? 0, host, () => resolve(udp.address().port));
  });
  // The same port over TCP, for answers that were truncated over UDP.
  const tcp = net.createServer((socket) => {
    let buf = Buffer.alloc(0);
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= buf.readUInt16BE(0) + 2) {
        const len = buf.readUInt16BE(0);
        const msg = buf.subarray(2, len + 2);
        buf = buf.subarray(len + 2);
        try {
          const reply = answer(dnsPacket.decode(msg), 'tcp');
          if (reply) {
            const framed = Buffer.alloc(reply.length + 2);
            framed.writeUInt16BE(reply.length, 0);
            reply.copy(framed, 2);
            socket.write(framed);
          }
        } catch {
          socket.destroy();
        }
      }
    });
  });
  await new Promise<void>((resolve) => {
    tcp.once('error', () => resolve()); // TCP is best effort: the port may be taken over TCP
    tcp.listen(port, host, () => resolve());
  });

  let closed = false;
  return {
    host,
    port,
    server: `${host}:${port}`,
    queries,
    records,
    get glue() {
      return state.glue;
    },
    set glue(v: boolean) {
      state.glue = v;
    },
    count(name?: string, type?: string) {
      return queries.filter((q) => (!name || q.name === name.toLowerCase()) && (!type || q.type === type)).length;
    },
    async close() {
      if (closed) return;
      closed = true;
      await new Promise<void>((r) => udp.close(() => r()));
      await new Promise<void>((r) => tcp.close(() => r()));
    },
  };
}

// ----------------------------------------------------------------------------------------- SMTP

export interface Reply {
  code: number;
  message: string;
}

export interface PeerOptions {
  host: string;
  /** Port to listen on (0 / absent: any free port). */
  port?: number;
  /**
   * normal: an SMTP (or LMTP) server; refuse: nothing listens (connections get ECONNREFUSED);
   * blackhole: connections are accepted and never answered (greeting timeouts); hangup:
   * connections are accepted and closed at once (a host that is down, whose attempts are counted).
   */
  mode?: 'normal' | 'refuse' | 'blackhole' | 'hangup';
  /** Extra delay before the 220 greeting (smtp-server always waits 100 ms). */
  greetingDelayMs?: number;
  /** Reply to the greeting instead of 220 (e.g. 421 busy, 554 no service). */
  greetingReply?: Reply;
  /** Replies for given recipients (lower-case address) instead of 250. */
  rcptReplies?: Record<string, Reply>;
  /** Reply to MAIL FROM instead of 250. */
  mailReply?: Reply;
  /** Reply to the final dot instead of 250 (SMTP). */
  dataReply?: Reply;
  /** LMTP: per-recipient replies after DATA (lower-case address) instead of 250. */
  lmtpReplies?: Record<string, Reply>;
  /** Advertise PIPELINING (default true). */
  pipelining?: boolean;
  /** Offer STARTTLS with a self-signed certificate (default false). */
  starttls?: boolean;
  /** Offer STARTTLS with this key and certificate chain (PEM) instead (test/helpers/test-ca.ts). */
  tlsCertificate?: { key: Buffer; cert: Buffer };
  lmtp?: boolean;
  /** Greeting/EHLO name. */
  name?: string;
  /** smtp-server maxRecipients (extra RCPTs get 452). */
  maxRecipients?: number;
  /** Advertise 8BITMIME (default true). */
  eightBitMime?: boolean;
  /** Advertise SMTPUTF8 (default true). */
  smtpUtf8?: boolean;
  /**
   * A receiver that limits messages per connection: MAIL FROM after this many transactions on a
   * connection gets `421 4.7.0 Too many messages on this connection` and the connection is closed.
   */
  messagesPerConnection?: number;
  /** A receiver that allows this many simultaneous connections: one more is greeted with 421 and closed (smtp-server's maxClients). */
  maxConnections?: number;
  /** Keep each transaction's data (default true); benchmarks with many transactions turn it off. */
  keepData?: boolean;
  /** A slow receiver: the reply to the final dot comes this long after it. */
  dataDelayMs?: number;
}

export interface PeerConnection {
  id: number;
  remoteAddress: string;
  /** Command batches that carried more than one command (a pipelining client). */
  pipelinedBatches: number;
  secure: boolean;
  /** When the TCP connection was accepted, the greeting (or the refusal) sent, and the connection closed (Date.now()). */
  openedAt: number;
  greetedAt: number | null;
  closedAt: number | null;
  /** Transactions begun (MAIL FROM accepted) on it. */
  mails: number;
}

export interface PeerTransaction {
  connection: number;
  from: string;
  /** Recipients the peer accepted at RCPT. */
  to: string[];
  data: Buffer;
  messageId: string | null;
  secure: boolean;
  /** When the end of the data arrived (Date.now()), just before the reply. */
  receivedAt: number;
  /** The MAIL FROM parameters (`BODY`, `SMTPUTF8`, …) as the peer parsed them. */
  mailArgs: Record<string, string | boolean>;
}

export interface SmtpPeer {
  host: string;
  port: number;
  /** Every TCP connection accepted, in order. */
  connections: PeerConnection[];
  /** Every transaction that reached the end of DATA (whatever the reply). */
  transactions: PeerTransaction[];
  /** Every RCPT command seen (accepted or not), lower-case. */
  rcptCommands: string[];
  /** Most connections open at once. */
  maxConcurrent: number;
  /** Messages delivered (accepted at the end of DATA), recipient count included. */
  deliveredRecipients(): string[];
  close(): Promise<void>;
}

const replyError = (r: Reply) => Object.assign(new Error(r.message), { responseCode: r.code });

let certPromise: { key: Buffer; cert: Buffer } | null = null;

/** A self-signed certificate made once per process with openssl. */
export function selfSignedCertificate(): { key: Buffer; cert: Buffer } {
  if (certPromise) return certPromise;
  const dir = mkdtempSync(join(tmpdir(), 'tsubame-cert-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2', '-subj', '/CN=mx.sim.test'], { stdio: 'ignore' });
    certPromise = { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
    return certPromise;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function startSmtpPeer(opts: PeerOptions): Promise<SmtpPeer> {
  const mode = opts.mode ?? 'normal';
  const connections: PeerConnection[] = [];
  const transactions: PeerTransaction[] = [];
  const rcptCommands: string[] = [];
  const delivered: string[] = [];
  let open = 0;
  let maxConcurrent = 0;
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket): PeerConnection => {
    const c: PeerConnection = { id: connections.length + 1, remoteAddress: socket.remoteAddress ?? '', pipelinedBatches: 0, secure: false, openedAt: Date.now(), greetedAt: null, closedAt: null, mails: 0 };
    connections.push(c);
    sockets.add(socket);
    open++;
    maxConcurrent = Math.max(maxConcurrent, open);
    socket.once('close', () => {
      open--;
      c.closedAt = Date.now();
      sockets.delete(socket);
    });
    let inData = false;
    socket.on('data', (chunk: Buffer) => {
      const text = chunk.toString('latin1');
      if (/^(MAIL FROM|RCPT TO|DATA)\b/im.test(text) && !inData) {
        const commands = text.split('\r\n').filter((l) => /^(MAIL FROM|RCPT TO|DATA|RSET)\b/i.test(l));
        if (commands.length > 1) c.pipelinedBatches++;
      }
      if (/^DATA\r\n/im.test(text)) inData = true;
      if (/\r\n\.\r\n/.test(text)) inData = false;
    });
    return c;
  };

  /** The peer as tests see it: what it counted, live. */
  const peer = (port: number, deliveredRecipients: () => string[], close: () => Promise<void>): SmtpPeer => ({
    host: opts.host,
    port,
    connections,
    transactions,
    rcptCommands,
    get maxConcurrent() {
      return maxConcurrent;
    },
    deliveredRecipients,
    close,
  });

  if (mode === 'refuse') {
    // Take a port number nobody listens on at this address: connections are refused.
    const port = opts.port ?? (await listenOnce(opts.host));
    return peer(port, () => [], async () => {});
  }

  if (mode === 'blackhole' || mode === 'hangup') {
    const server = net.createServer((socket) => {
      track(socket);
      socket.on('error', () => {});
      if (mode === 'hangup') socket.destroy();
    });
    const port = await listen(server, opts.host, opts.port ?? 0);
    return peer(port, () => [], () => closeServer(server, sockets));
  }

  const byConnection = new Map<string, PeerConnection>();
  const tls = opts.tlsCertificate ?? (opts.starttls ? selfSignedCertificate() : null);
  const server = new SMTPServer({
    name: opts.name ?? `mx.${opts.host}`,
    lmtp: opts.lmtp ?? false,
    logger: false,
    disableReverseLookup: true,
    authOptional: true,
    disabledCommands: tls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    hidePIPELINING: opts.pipelining === false,
    hide8BITMIME: opts.eightBitMime === false,
    hideSMTPUTF8: opts.smtpUtf8 === false,
    maxRecipients: opts.maxRecipients,
    ...(opts.maxConnections ? { maxClients: opts.maxConnections } : {}),
    socketTimeout: 30_000,
    closeTimeout: 1000,
    ...(tls ? { key: tls.key, cert: tls.cert } : {}),
    onConnect(session: SMTPServerSession, cb: (err?: Error | null) => void) {
      const c = byConnection.get(`${session.remoteAddress}:${session.remotePort}`);
      if (c) byConnection.set(session.id, c);
      const finish = () => {
        if (c) c.greetedAt = Date.now();
        return opts.greetingReply ? cb(replyError(opts.greetingReply)) : cb();
      };
      if (opts.greetingDelayMs) setTimeout(finish, opts.greetingDelayMs);
      else finish();
    },
    onSecure(_socket: unknown, session: SMTPServerSession, cb: (err?: Error | null) => void) {
      const c = byConnection.get(session.id);
      if (c) c.secure = true;
      cb();
    },
    onMailFrom(_address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void) {
      const c = byConnection.get(session.id);
      if (opts.messagesPerConnection !== undefined && c && c.mails >= opts.messagesPerConnection) {
        return cb(replyError({ code: 421, message: '4.7.0 Too many messages on this connection, try again later' }));
      }
      if (opts.mailReply) return cb(replyError(opts.mailReply));
      if (c) c.mails++;
      cb(null);
    },
    onRcptTo(address: SMTPServerAddress, _session: SMTPServerSession, cb: (err?: Error | null) => void) {
      const a = address.address.toLowerCase();
      rcptCommands.push(a);
      const r = opts.rcptReplies?.[a];
      cb(r ? replyError(r) : null);
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (d: Buffer) => chunks.push(d));
      stream.on('end', () => {
        const data = Buffer.concat(chunks);
        const headerEnd = data.indexOf('\r\n\r\n');
        const headers = data.subarray(0, headerEnd < 0 ? data.length : headerEnd).toString('latin1');
        const mid = /^Message-ID:\s*(.+)$/im.exec(headers);
        const to = session.envelope.rcptTo.map((r) => r.address.toLowerCase());
        transactions.push({
          connection: byConnection.get(session.id)?.id ?? 0,
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to,
          data: opts.keepData === false ? Buffer.alloc(0) : data,
          messageId: mid ? mid[1]!.trim() : null,
          secure: Boolean(session.secure),
          receivedAt: Date.now(),
          mailArgs: { ...((session.envelope.mailFrom && session.envelope.mailFrom.args) || {}) },
        });
        if (opts.lmtp) {
          const replies = to.map((a) => {
            const r = opts.lmtpReplies?.[a];
            if (r) return replyError(r);
            delivered.push(a);
            return 'OK delivered';
          });
          return cb(null, replies);
        }
        const answer = () => {
          if (opts.dataReply && opts.dataReply.code >= 300) return cb(replyError(opts.dataReply));
          delivered.push(...to);
          cb(null, opts.dataReply?.message ?? 'OK queued');
        };
        if (opts.dataDelayMs) setTimeout(answer, opts.dataDelayMs);
        else answer();
      });
    },
  });
  server.on('error', () => {});
  // Count connections at the TCP level (before the greeting), and map smtp-server sessions to them.
  const inner = (server as unknown as { server: net.Server }).server;
  inner.prependListener('connection', (socket: net.Socket) => {
    const c = track(socket);
    byConnection.set(`${socket.remoteAddress}:${socket.remotePort}`, c);
  });
  const port = await new Promise<number>((resolve, reject) => {
    inner.once('error', reject);
    server.listen(opts.port ?? 0, opts.host, () => resolve((inner.address() as net.AddressInfo).port));
  });
  return peer(
    port,
    () => [...delivered],
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
}

/**
 * Peers on several addresses sharing one port (MX records carry no port: the channel's `port`
 * applies to all). Retries with another port when one is taken on some address.
 */
export async function startSmtpPeers(list: Array<Omit<PeerOptions, 'port'>>): Promise<{ port: number; peers: SmtpPeer[] }> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const port = await listenOnce(list[0]?.host ?? '127.6.0.1');
    const peers: SmtpPeer[] = [];
    try {
      for (const p of list) peers.push(await startSmtpPeer({ ...p, port }));
      return { port, peers };
    } catch (err) {
      await Promise.all(peers.map((p) => p.close()));
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    }
  }
  throw new Error('no common free port for the simulated peers');
}

function listen(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve((server.address() as net.AddressInfo).port));
  });
}

/** A port that was free on `host` a moment ago. */
async function listenOnce(host: string): Promise<number> {
  const srv = net.createServer();
  const port = await listen(srv, host, 0);
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function closeServer(server: net.Server, sockets: Set<net.Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}
