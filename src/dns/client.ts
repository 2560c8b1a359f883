// A small stub resolver on dns-packet: UDP queries with timeouts and retries over a server list,
// TCP when an answer comes back truncated. Unlike node's c-ares API it hands back the whole answer,
// so the MX lookup can use the additional section (SMTPfeed §3.6) and the TTLs.
import dgram from 'node:dgram';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import * as dnsPacket from 'dns-packet';
import type { Answer, RecordType } from 'dns-packet';

export interface DnsServer {
  host: string;
  port: number;
}

export interface DnsResponse {
  /** NOERROR, NXDOMAIN, SERVFAIL, REFUSED… */
  rcode: string;
  answers: Answer[];
  authorities: Answer[];
  additionals: Answer[];
  /** The server that answered, as host:port. */
  server: string;
  /**
   * The AD bit: the (validating) resolver says the answer is DNSSEC-authenticated. Only meaningful
   * for a question asked with `dnssec: true`; trusted as far as the path to DNS_SERVERS is.
   */
  authenticated: boolean;
}

export interface QueryOptions {
  /**
   * Ask for DNSSEC (EDNS0 DO bit and the AD bit in the query, RFC 6840 §5.7) so that a validating
   * resolver says whether the answer is authenticated. Off by default: answers stay small.
   */
  dnssec?: boolean;
}

export class DnsTimeoutError extends Error {
  constructor(name: string, type: string) {
    super(`no answer from the name servers for ${name} ${type}`);
    this.name = 'DnsTimeoutError';
  }
}

/** `ip`, `ip:port`, `[v6]:port` or a bare IPv6 address → server addresses (port 53 by default). */
export function parseDnsServers(list: string[]): DnsServer[] {
  const servers: DnsServer[] = [];
  for (const item of list.map((s) => s.trim()).filter(Boolean)) {
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(item);
    if (bracketed) servers.push({ host: bracketed[1]!, port: Number(bracketed[2] ?? 53) });
    else if (net.isIPv6(item)) servers.push({ host: item, port: 53 });
    else {
      const [host, port] = item.split(':');
      servers.push({ host: host!, port: Number(port ?? 53) });
    }
  }
  return servers;
}

/** The nameserver lines of /etc/resolv.conf (127.0.0.1 when there are none, as the resolver does). */
export function systemDnsServers(path = '/etc/resolv.conf'): DnsServer[] {
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    /* no resolv.conf: fall through */
  }
  const list = [...text.matchAll(/^\s*nameserver\s+(\S+)/gm)].map((m) => m[1]!);
  return list.length ? parseDnsServers(list) : [{ host: '127.0.0.1', port: 53 }];
}

export interface DnsClientOptions {
  timeoutMs: number;
  attempts: number;
  /** Questions in flight at once (a burst of hundreds overflows socket buffers and turns into timeouts). */
  maxInFlight?: number;
}

export interface DnsClientStats {
  /** Questions sent (each retry and each TCP fallback counts). */
  queries: number;
  tcpQueries: number;
  timeouts: number;
}

interface Pending {
  id: number;
  name: string;
  type: RecordType;
  server: DnsServer;
  resolve(packet: dnsPacket.DecodedPacket): void;
}

type DecodedWithRcode = dnsPacket.DecodedPacket & { rcode?: string };

const EDNS_PAYLOAD = 1232;

export class DnsClient {
  readonly stats: DnsClientStats = { queries: 0, tcpQueries: 0, timeouts: 0 };
  private readonly sockets = new Map<4 | 6, dgram.Socket>();
  private readonly pending = new Map<string, Pending>();
  private closed = false;

  constructor(
    readonly servers: DnsServer[],
    private readonly options: DnsClientOptions,
  ) {
    if (servers.length === 0) throw new Error('no DNS servers configured');
  }

  /** Asks the servers in turn, `attempts` rounds; SERVFAIL/REFUSED moves on to the next server. */
  async query(name: string, type: RecordType, options: QueryOptions = {}): Promise<DnsResponse> {
    await this.slot();
    try {
      return await this.queryServers(name, type, Boolean(options.dnssec));
    } finally {
      this.release();
    }
  }

  private inFlight = 0;
  private readonly waiting: Array<() => void> = [];

  private slot(): Promise<void> {
    if (this.inFlight < (this.options.maxInFlight ?? 64)) {
      this.inFlight++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.inFlight--;
  }

  private async queryServers(name: string, type: RecordType, dnssec: boolean): Promise<DnsResponse> {
    let lastFailure: DnsResponse | null = null;
    for (let round = 0; round < this.options.attempts; round++) {
      for (const server of this.servers) {
        if (this.closed) throw new Error('DNS client closed');
        const packet = await this.udpQuery(server, name, type, dnssec);
        if (!packet) continue;
        let answer = packet;
        if (packet.flag_tc) {
          const viaTcp = await this.tcpQuery(server, name, type, dnssec).catch(() => null);
          if (!viaTcp) continue;
          answer = viaTcp;
        }
        const response = toResponse(answer, server);
        if (response.rcode === 'SERVFAIL' || response.rcode === 'REFUSED' || response.rcode === 'FORMERR' || response.rcode === 'NOTIMP') {
          lastFailure = response;
          continue;
        }
        return response;
      }
    }
    if (lastFailure) return lastFailure;
    throw new DnsTimeoutError(name, type);
  }

  close(): void {
    this.closed = true;
    for (const s of this.sockets.values()) s.close();
    this.sockets.clear();
    for (const p of this.pending.values()) p.resolve(null as unknown as dnsPacket.DecodedPacket);
    this.pending.clear();
  }

  private socket(family: 4 | 6): dgram.Socket {
    let s = this.sockets.get(family);
    if (!s) {
      s = dgram.createSocket(family === 4 ? 'udp4' : 'udp6');
      s.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
      s.on('error', () => {
        /* a send error surfaces as a timeout of that query */
      });
      s.unref();
      this.sockets.set(family, s);
    }
    return s;
  }

  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    let packet: DecodedWithRcode;
    try {
      packet = dnsPacket.decode(msg);
    } catch {
      return; // garbage: ignore, the query times out
    }
    const key = pendingKey(rinfo.address, rinfo.port, packet.id ?? -1);
    const p = this.pending.get(key);
    if (!p) return;
    const q = packet.questions?.[0];
    // The answer must be about what we asked (guards against stray or forged packets).
    if (q?.name.toLowerCase() !== p.name.toLowerCase() || q.type !== p.type) return;
    this.pending.delete(key);
    p.resolve(packet);
  }

  private udpQuery(server: DnsServer, name: string, type: RecordType, dnssec: boolean): Promise<DnsResponsePacket | null> {
    return new Promise((resolve) => {
      const family = net.isIPv6(server.host) ? 6 : 4;
      let id = randomInt(0, 65536);
      while (this.pending.has(pendingKey(server.host, server.port, id))) id = randomInt(0, 65536);
      const key = pendingKey(server.host, server.port, id);
      const buf = dnsPacket.encode(queryPacket(id, name, type, dnssec));
      const timer = setTimeout(() => {
        this.pending.delete(key);
        this.stats.timeouts++;
        resolve(null);
      }, this.options.timeoutMs);
      this.pending.set(key, {
        id,
        name,
        type,
        server,
        resolve: (packet) => {
          clearTimeout(timer);
          resolve(packet);
        },
      });
      this.stats.queries++;
      this.socket(family).send(buf, server.port, server.host);
    });
  }

  private tcpQuery(server: DnsServer, name: string, type: RecordType, dnssec: boolean): Promise<DnsResponsePacket> {
    return new Promise((resolve, reject) => {
      const id = randomInt(0, 65536);
      const socket = net.connect({ host: server.host, port: server.port });
      let buffered = Buffer.alloc(0);
      const timer = setTimeout(() => {
        socket.destroy();
        this.stats.timeouts++;
        reject(new DnsTimeoutError(name, type));
      }, this.options.timeoutMs);
      const fail = (err: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      socket.on('error', fail);
      socket.on('connect', () => {
        this.stats.queries++;
        this.stats.tcpQueries++;
        // Without EDNS0 over TCP as before, unless DNSSEC is asked for (the DO bit lives in the OPT record).
        socket.write(dnsPacket.streamEncode(dnssec ? queryPacket(id, name, type, true) : { type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] }));
      });
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        if (buffered.length < 2) return;
        const length = buffered.readUInt16BE(0);
        if (buffered.length < length + 2) return;
        clearTimeout(timer);
        socket.destroy();
        try {
          const packet = dnsPacket.decode(buffered.subarray(2, length + 2)) as DecodedWithRcode;
          if (packet.id !== id) return reject(new Error('DNS over TCP: answer id mismatch'));
          resolve(packet);
        } catch (err) {
          reject(err);
        }
      });
      socket.on('end', () => fail(new Error('DNS over TCP: connection closed before the answer')));
    });
  }
}

type DnsResponsePacket = DecodedWithRcode;

/** A recursive query with EDNS0; with `dnssec`, the DO bit (RFC 3225) and the AD bit (RFC 6840 §5.7). */
function queryPacket(id: number, name: string, type: RecordType, dnssec: boolean): dnsPacket.Packet {
  return {
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED | (dnssec ? dnsPacket.AUTHENTIC_DATA : 0),
    questions: [{ type, name, class: 'IN' }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: EDNS_PAYLOAD, ...(dnssec ? { flags: dnsPacket.DNSSEC_OK } : {}) } as unknown as Answer],
  };
}

function pendingKey(host: string, port: number, id: number): string {
  return `${host}|${port}|${id}`;
}

function toResponse(packet: DecodedWithRcode, server: DnsServer): DnsResponse {
  return {
    rcode: packet.rcode ?? 'NOERROR',
    answers: packet.answers ?? [],
    authorities: packet.authorities ?? [],
    additionals: (packet.additionals ?? []).filter((a) => a.type !== 'OPT'),
    server: `${server.host}:${server.port}`,
    authenticated: Boolean(packet.flag_ad),
  };
}
