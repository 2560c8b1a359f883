// The PROXY protocol parser (versions 1 and 2) fed the bytes HAProxy sends, split every way, and
// the malformed headers a hostile or broken peer sends; the TLV reader; and the service's
// decisions (who must send a header, which client address the session gets).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  admitConnection,
  crc32c,
  describeTlvs,
  parseProxyHeader,
  printableBytes,
  resolveSession,
  V2_SIGNATURE,
  type ProxyHeader,
  type ProxyParseResult,
} from '../../src/proxy-protocol/index.js';
import { parseCidr } from '../../src/common/cidr.js';
import type { ProxyProtocolConfig } from '../../src/config/types.js';

const SMTP = Buffer.from('EHLO client.example\r\n');

function header(result: ProxyParseResult): { header: ProxyHeader; rest: Buffer } {
  assert.equal(result.kind, 'header', result.kind === 'error' ? result.reason : 'need-more');
  return result;
}

function errorOf(result: ProxyParseResult): string {
  assert.equal(result.kind, 'error', `expected an error, got ${result.kind}`);
  return (result as { reason: string }).reason;
}

// ------------------------------------------------------------- version 2 encoder (test side)

interface V2 {
  versionCommand?: number; // default 0x21 (version 2, PROXY)
  familyByte?: number; // default 0x11 (TCP4)
  address?: Buffer; // the address block
  tlvs?: Array<{ type: number; value: Buffer }>;
  lengthOverride?: number;
  crc?: boolean; // append a correct CRC32C TLV
}

function tlv(type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(3);
  head[0] = type;
  head.writeUInt16BE(value.length, 1);
  return Buffer.concat([head, value]);
}

function v2(opts: V2 = {}): Buffer {
  const address = opts.address ?? inet4('192.0.2.10', 51234, '198.51.100.1', 25);
  const tlvBytes = (opts.tlvs ?? []).map((t) => tlv(t.type, t.value));
  if (opts.crc) tlvBytes.push(tlv(0x03, Buffer.alloc(4)));
  const body = Buffer.concat([address, ...tlvBytes]);
  const fixed = Buffer.alloc(16);
  V2_SIGNATURE.copy(fixed);
  fixed[12] = opts.versionCommand ?? 0x21;
  fixed[13] = opts.familyByte ?? 0x11;
  fixed.writeUInt16BE(opts.lengthOverride ?? body.length, 14);
  const whole = Buffer.concat([fixed, body]);
  if (opts.crc) whole.writeUInt32BE(crc32c(whole), whole.length - 4);
  return whole;
}

function inet4(src: string, sport: number, dst: string, dport: number): Buffer {
  const b = Buffer.alloc(12);
  src.split('.').forEach((o, i) => (b[i] = Number(o)));
  dst.split('.').forEach((o, i) => (b[4 + i] = Number(o)));
  b.writeUInt16BE(sport, 8);
  b.writeUInt16BE(dport, 10);
  return b;
}

function inet6(src: number[], sport: number, dst: number[], dport: number): Buffer {
  const b = Buffer.alloc(36);
  src.forEach((g, i) => b.writeUInt16BE(g, i * 2));
  dst.forEach((g, i) => b.writeUInt16BE(g, 16 + i * 2));
  b.writeUInt16BE(sport, 32);
  b.writeUInt16BE(dport, 34);
  return b;
}

function unix(src: string, dst: string): Buffer {
  const b = Buffer.alloc(216);
  b.write(src, 0);
  b.write(dst, 108);
  return b;
}

// ------------------------------------------------------------- version 1

test('v1 TCP4: the client and frontend endpoints, the header length, and the SMTP bytes after it kept', () => {
  const line = 'PROXY TCP4 192.0.2.10 198.51.100.1 51234 25\r\n';
  const { header: h, rest } = header(parseProxyHeader(Buffer.concat([Buffer.from(line), SMTP])));
  assert.deepEqual(h, {
    version: 1,
    command: 'PROXY',
    family: 'INET',
    transport: 'STREAM',
    source: { address: '192.0.2.10', port: 51234 },
    destination: { address: '198.51.100.1', port: 25 },
    tlvs: [],
    length: line.length,
  });
  assert.deepEqual(rest, SMTP);
});

test('v1 TCP6: addresses in the compressed lower-case form sockets report; IPv4-mapped kept for the decision', () => {
  const { header: h } = header(parseProxyHeader(Buffer.from('PROXY TCP6 2001:DB8:0:0:0:0:0:A ::ffff:198.51.100.1 65535 0\r\n')));
  assert.deepEqual([h.family, h.source, h.destination], ['INET6', { address: '2001:db8::a', port: 65535 }, { address: '::ffff:198.51.100.1', port: 0 }]);
});

test('v1 UNKNOWN (HAProxy health checks): no endpoints, and anything up to the CRLF ignored — up to the 107-octet maximum', () => {
  const bare = header(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\nQUIT\r\n')));
  assert.deepEqual([bare.header.family, bare.header.source, bare.header.destination, bare.rest.toString()], ['UNSPEC', null, null, 'QUIT\r\n']);
  // The specification's worst case is exactly 107 octets.
  const longest = 'PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n';
  assert.equal(longest.length, 107);
  assert.equal(header(parseProxyHeader(Buffer.from(longest))).header.length, 107);
  const tooLong = `${longest.slice(0, -2)}5\r\n`;
  assert.match(errorOf(parseProxyHeader(Buffer.from(tooLong))), /no CRLF within 107 octets/);
});

test('v1 split over packets, byte by byte: need-more until the LF, then the header; early garbage is refused at its first octet', () => {
  const bytes = Buffer.concat([Buffer.from('PROXY TCP4 192.0.2.10 198.51.100.1 51234 25\r\n'), SMTP]);
  const headerLength = bytes.indexOf('\n') + 1;
  for (let n = 0; n < headerLength; n++) assert.deepEqual(parseProxyHeader(bytes.subarray(0, n)), { kind: 'need-more' }, `after ${n} octets`);
  for (let n = headerLength; n <= bytes.length; n++) {
    const r = header(parseProxyHeader(bytes.subarray(0, n)));
    assert.deepEqual([r.header.length, r.rest.toString()], [headerLength, bytes.subarray(headerLength, n).toString()]);
  }
  // A client that talks SMTP at once, or a prefix that goes wrong, is refused without waiting for more.
  assert.equal(errorOf(parseProxyHeader(Buffer.from('E'))), 'not a PROXY protocol header');
  assert.equal(errorOf(parseProxyHeader(Buffer.from('PRX'))), 'not a PROXY protocol header');
  assert.equal(errorOf(parseProxyHeader(Buffer.from('proxy tcp4'))), 'not a PROXY protocol header');
});

test('malformed v1: every bad token, field count, terminator and length is an error naming what is wrong', () => {
  const cases: Array<[string, RegExp]> = [
    ['PROXY TCP5 192.0.2.10 198.51.100.1 1 2\r\n', /unknown protocol "TCP5"/],
    ['PROXY tcp4 192.0.2.10 198.51.100.1 1 2\r\n', /unknown protocol "tcp4"/],
    ['PROXY TCP4 192.0.2.10 198.51.100.1 1\r\n', /missing fields/],
    ['PROXY TCP4\r\n', /missing fields/],
    ['PROXY TCP4 192.0.2.10 198.51.100.1 1 2 3\r\n', /extra fields/],
    ['PROXY TCP4 192.0.2.10  198.51.100.1 1 2\r\n', /extra fields/],
    ['PROXY TCP4 192.0.2.10 198.51.100.1 1 2 \r\n', /extra fields/],
    ['PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n', /bad source address "2001:db8::1" for TCP4/],
    ['PROXY TCP6 192.0.2.10 2001:db8::1 1 2\r\n', /bad source address "192.0.2.10" for TCP6/],
    ['PROXY TCP4 192.0.2.10 198.51.100.256 1 2\r\n', /bad destination address/],
    ['PROXY TCP4 01.2.3.4 198.51.100.1 1 2\r\n', /bad source address "01.2.3.4"/],
    ['PROXY TCP4 client.example 198.51.100.1 1 2\r\n', /bad source address/],
    ['PROXY TCP6 fe80::1%eth0 2001:db8::1 1 2\r\n', /bad source address "fe80::1%eth0"/],
    ['PROXY TCP4 192.0.2.10 198.51.100.1 65536 25\r\n', /bad source port "65536"/],
    ['PROXY TCP4 192.0.2.10 198.51.100.1 0123 25\r\n', /bad source port "0123"/],
    ['PROXY TCP4 192.0.2.10 198.51.100.1 -1 25\r\n', /bad source port "-1"/],
    ['PROXY TCP4 192.0.2.10 198.51.100.1 1 x\r\n', /bad destination port "x"/],
    ['PROXY TCP4 192.0.2.10 198.51.100.1 1 2\n', /LF without CR/],
    ['PROXY TCP4 192.0.2.10 198.51.100.1 1 2\rX', /CR not followed by LF/],
    ['PROXY TCP4 192.0.2.10\t198.51.100.1 1 2\r\n', /control or non-ASCII octet \(0x09\)/],
    ['PROXY TCP4 192.0.2.10\x00198.51.100.1 1 2\r\n', /control or non-ASCII octet \(0x00\)/],
    [`PROXY UNKNOWN ${'x'.repeat(120)}`, /no CRLF within 107 octets/],
    ['PROXYTCP4 192.0.2.10 198.51.100.1 1 2\r\n', /not a PROXY protocol header/],
  ];
  for (const [line, reason] of cases) assert.match(errorOf(parseProxyHeader(Buffer.from(line, 'latin1'))), reason, JSON.stringify(line));
  // Non-ASCII is refused before the line ends.
  assert.match(errorOf(parseProxyHeader(Buffer.from([...Buffer.from('PROXY TCP4 '), 0xc3, 0xa9]))), /non-ASCII octet \(0xc3\)/);
  // The error text is safe to log.
  assert.equal(printableBytes(Buffer.from('PROXY \x00\xff\r\n\\', 'latin1')), 'PROXY \\x00\\xff\\r\\n\\x5c');
});

// ------------------------------------------------------------- version 2

test('v2 PROXY TCP4 and TCP6: endpoints from the address block, the header length, the SMTP bytes after it kept', () => {
  const four = v2();
  const r4 = header(parseProxyHeader(Buffer.concat([four, SMTP])));
  assert.deepEqual(r4.header, {
    version: 2,
    command: 'PROXY',
    family: 'INET',
    transport: 'STREAM',
    source: { address: '192.0.2.10', port: 51234 },
    destination: { address: '198.51.100.1', port: 25 },
    tlvs: [],
    length: 28,
  });
  assert.deepEqual(r4.rest, SMTP);

  const six = v2({ familyByte: 0x21, address: inet6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xa], 40000, [0, 0, 0, 0, 0, 0xffff, 0xc633, 0x6401], 587) });
  const r6 = header(parseProxyHeader(six));
  assert.deepEqual([r6.header.family, r6.header.source, r6.header.destination, r6.header.length], ['INET6', { address: '2001:db8::a', port: 40000 }, { address: '::ffff:198.51.100.1', port: 587 }, 52]);
});

test('v2 UNIX and UNSPEC: the socket paths; no endpoints for UNSPEC; UDP is reported as DGRAM', () => {
  const u = header(parseProxyHeader(v2({ familyByte: 0x31, address: unix('/run/client.sock', '/run/haproxy/smtp.sock') })));
  assert.deepEqual([u.header.family, u.header.transport, u.header.source, u.header.destination], ['UNIX', 'STREAM', { address: '/run/client.sock', port: 0 }, { address: '/run/haproxy/smtp.sock', port: 0 }]);
  const unspec = header(parseProxyHeader(v2({ familyByte: 0x00, address: Buffer.alloc(0) })));
  assert.deepEqual([unspec.header.command, unspec.header.family, unspec.header.source, unspec.header.length], ['PROXY', 'UNSPEC', null, 16]);
  const udp = header(parseProxyHeader(v2({ familyByte: 0x12 })));
  assert.deepEqual([udp.header.family, udp.header.transport], ['INET', 'DGRAM']);
});

test('v2 LOCAL (health checks): the block is skipped whatever it holds, the bytes after it kept', () => {
  const bare = header(parseProxyHeader(Buffer.concat([v2({ versionCommand: 0x20, familyByte: 0x00, address: Buffer.alloc(0) }), Buffer.from('QUIT\r\n')])));
  assert.deepEqual([bare.header.command, bare.header.source, bare.header.tlvs, bare.header.length, bare.rest.toString()], ['LOCAL', null, [], 16, 'QUIT\r\n']);
  // A LOCAL header with an address block and TLVs: all discarded, as the specification says.
  const full = header(parseProxyHeader(v2({ versionCommand: 0x20, tlvs: [{ type: 0x04, value: Buffer.alloc(5) }] })));
  assert.deepEqual([full.header.command, full.header.family, full.header.source, full.header.tlvs, full.header.length], ['LOCAL', 'INET', null, [], 36]);
});

test('v2 TLVs: ALPN, authority, unique id, SSL with its sub-fields, NOOP, custom types; a correct CRC32C is checked and kept', () => {
  const ssl = Buffer.concat([Buffer.from([0x07, 0, 0, 0, 0]), tlv(0x21, Buffer.from('TLSv1.3')), tlv(0x22, Buffer.from('client.example')), tlv(0x23, Buffer.from('TLS_AES_256_GCM_SHA384')), tlv(0x25, Buffer.from('RSA2048'))]);
  const bytes = v2({
    tlvs: [
      { type: 0x01, value: Buffer.from('smtp') },
      { type: 0x02, value: Buffer.from('mx.example.org') },
      { type: 0x05, value: Buffer.from('0123456789abcdef') },
      { type: 0x20, value: ssl },
      { type: 0x04, value: Buffer.alloc(3) },
      { type: 0xe1, value: Buffer.from('site') },
    ],
    crc: true,
  });
  const { header: h, rest } = header(parseProxyHeader(Buffer.concat([bytes, SMTP])));
  assert.deepEqual(h.tlvs.map((t) => t.type), [0x01, 0x02, 0x05, 0x20, 0x04, 0xe1, 0x03]);
  assert.deepEqual(rest, SMTP);
  const info = describeTlvs(h.tlvs);
  assert.deepEqual(
    { ...info, uniqueId: info.uniqueId?.toString(), other: info.other.map((t) => [t.type, t.value.toString()]) },
    {
      alpn: 'smtp',
      authority: 'mx.example.org',
      uniqueId: '0123456789abcdef',
      netns: null,
      ssl: { tls: true, clientCertificate: true, verified: true, version: 'TLSv1.3', commonName: 'client.example', cipher: 'TLS_AES_256_GCM_SHA384', signatureAlgorithm: null, keyAlgorithm: 'RSA2048' },
      other: [[0xe1, 'site']],
    },
  );
  // One flipped bit anywhere (here in the source port) and the checksum does not match.
  const tampered = Buffer.from(bytes);
  tampered[16 + 9]! ^= 0x01;
  assert.match(errorOf(parseProxyHeader(tampered)), /CRC32C checksum does not match/);
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283); // the standard check value
});

test('v2 split over packets, byte by byte: need-more through the signature, the fixed part and the body', () => {
  const bytes = Buffer.concat([v2({ tlvs: [{ type: 0x05, value: Buffer.from('id') }] }), SMTP]);
  const length = 16 + 12 + 5;
  for (let n = 0; n < length; n++) assert.deepEqual(parseProxyHeader(bytes.subarray(0, n)), { kind: 'need-more' }, `after ${n} octets`);
  for (let n = length; n <= bytes.length; n++) {
    const r = header(parseProxyHeader(bytes.subarray(0, n)));
    assert.deepEqual([r.header.length, r.rest.length], [length, n - length]);
  }
});

test('malformed v2: signature, version, command, family, lengths and TLVs are errors; an oversized length is refused before its body', () => {
  const good = v2();
  const badSignature = Buffer.from(good);
  badSignature[7] = 0x52;
  assert.match(errorOf(parseProxyHeader(badSignature.subarray(0, 8))), /bad signature/); // refused at the first wrong octet
  assert.match(errorOf(parseProxyHeader(Buffer.from('\r\nQUIT\r\n'))), /bad signature/);
  assert.match(errorOf(parseProxyHeader(v2({ versionCommand: 0x11 }))), /unsupported version 1/);
  assert.match(errorOf(parseProxyHeader(v2({ versionCommand: 0x22 }))), /unknown command 2/);
  assert.match(errorOf(parseProxyHeader(v2({ familyByte: 0x13 }))), /undefined family\/transport octet 0x13/);
  assert.match(errorOf(parseProxyHeader(v2({ familyByte: 0x41 }))), /undefined family\/transport octet 0x41/);
  assert.match(errorOf(parseProxyHeader(v2({ familyByte: 0x01, address: Buffer.alloc(0) }))), /undefined family\/transport octet 0x01/);
  assert.match(errorOf(parseProxyHeader(v2({ address: Buffer.alloc(8) }))), /8 octets after the fixed part, fewer than the 12 of the INET address block/);
  assert.match(errorOf(parseProxyHeader(v2({ familyByte: 0x21, address: Buffer.alloc(12) }))), /fewer than the 36 of the INET6 address block/);
  // The length field is checked against the limit from the fixed part alone.
  const huge = v2({ lengthOverride: 60000 }).subarray(0, 16);
  assert.match(errorOf(parseProxyHeader(huge)), /header of 60016 octets is longer than the 1024 taken/);
  assert.match(errorOf(parseProxyHeader(v2({ tlvs: [{ type: 0x05, value: Buffer.alloc(100) }] }), { maxBytes: 64 })), /longer than the 64 taken/);
  // A truncated header waits for the rest (the reader's timeout or the peer's close ends it).
  assert.deepEqual(parseProxyHeader(good.subarray(0, 20)), { kind: 'need-more' });
  // TLVs that do not fill the block exactly.
  const withTlv = v2({ tlvs: [{ type: 0x02, value: Buffer.from('mx.example') }] });
  const overlong = Buffer.from(withTlv);
  overlong.writeUInt16BE(200, 16 + 12 + 1);
  assert.match(errorOf(parseProxyHeader(overlong)), /TLV of type 0x02 is longer \(200\)/);
  const trailing = v2({ address: Buffer.concat([inet4('192.0.2.10', 1, '198.51.100.1', 25), Buffer.from([0x04, 0x00])]) });
  assert.match(errorOf(parseProxyHeader(trailing)), /truncated TLV at offset 0/);
  const shortCrc = v2({ tlvs: [{ type: 0x03, value: Buffer.alloc(2) }] });
  assert.match(errorOf(parseProxyHeader(shortCrc)), /CRC32C field of a length other than 4/);
});

test('versions: a V1 service refuses a v2 header (once its signature is whole), a V2 service a v1 header at its first octet', () => {
  const two = v2();
  assert.deepEqual(parseProxyHeader(two.subarray(0, 5), { versions: 'v1' }), { kind: 'need-more' });
  assert.match(errorOf(parseProxyHeader(two, { versions: 'v1' })), /version 2 \(binary\) header where only version 1/);
  assert.equal(errorOf(parseProxyHeader(Buffer.from('\r\nX'), { versions: 'v1' })), 'not a PROXY protocol header');
  assert.match(errorOf(parseProxyHeader(Buffer.from('P'), { versions: 'v2' })), /version 1 \(text\) header where only version 2/);
  assert.equal(header(parseProxyHeader(two, { versions: 'v2' })).header.version, 2);
  assert.equal(header(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'), { versions: 'v1' })).header.version, 1);
});

// ------------------------------------------------------------- decisions

const service = (trusted: string[], extra: Partial<ProxyProtocolConfig> = {}): ProxyProtocolConfig => ({
  versions: 'any',
  trusted: trusted.map((t) => parseCidr(t)!),
  timeoutMs: 5000,
  maxBytes: 1024,
  ...extra,
});

test('admission: no PROXY on the service → direct; a listed balancer must send a header; anyone else is refused', () => {
  assert.deepEqual(admitConnection(null, '192.0.2.10'), { action: 'direct' });
  assert.deepEqual(admitConnection(undefined, '192.0.2.10'), { action: 'direct' });
  const cfg = service(['127.0.0.1', '10.0.0.0/8', '2001:db8:1::/48'], { versions: 'v2', timeoutMs: 3000 });
  assert.deepEqual(admitConnection(cfg, '10.1.2.3'), { action: 'read-header', timeoutMs: 3000, maxBytes: 1024, versions: 'v2' });
  assert.equal(admitConnection(cfg, '::ffff:10.1.2.3').action, 'read-header'); // a dual-stack listener's IPv4 peer
  assert.equal(admitConnection(cfg, '2001:db8:1::5').action, 'read-header');
  const refused = admitConnection(cfg, '192.0.2.10');
  assert.deepEqual(refused, { action: 'refuse', reason: '192.0.2.10 is not a listed balancer (PROXY_TRUSTED) of a service that takes the PROXY protocol only' });
  assert.equal(admitConnection(cfg, '127.0.0.2').action, 'refuse');
});

test('the session client: the header source for PROXY; the balancer itself for LOCAL and UNKNOWN; UNIX, UDP and 0.0.0.0 refused', () => {
  const peer = { address: '10.0.0.5', port: 40001 };
  const parsed = (bytes: Buffer) => header(parseProxyHeader(bytes)).header;
  assert.deepEqual(resolveSession(peer, parsed(v2())), {
    action: 'accept',
    client: { address: '192.0.2.10', port: 51234 },
    server: { address: '198.51.100.1', port: 25 },
    proxied: true,
  });
  const mapped = parsed(Buffer.from('PROXY TCP6 ::ffff:192.0.2.10 ::ffff:198.51.100.1 1000 25\r\n'));
  assert.deepEqual(resolveSession(peer, mapped), { action: 'accept', client: { address: '192.0.2.10', port: 1000 }, server: { address: '198.51.100.1', port: 25 }, proxied: true });
  assert.deepEqual(resolveSession(peer, parsed(v2({ versionCommand: 0x20 }))), { action: 'accept', client: peer, server: null, proxied: false });
  assert.deepEqual(resolveSession(peer, parsed(Buffer.from('PROXY UNKNOWN\r\n'))), { action: 'accept', client: peer, server: null, proxied: false });
  assert.deepEqual(resolveSession(peer, parsed(v2({ familyByte: 0x00, address: Buffer.alloc(0) }))), { action: 'accept', client: peer, server: null, proxied: false });
  assert.match((resolveSession(peer, parsed(v2({ familyByte: 0x31, address: unix('/a', '/b') }))) as { reason: string }).reason, /UNIX socket/);
  assert.match((resolveSession(peer, parsed(v2({ familyByte: 0x12 }))) as { reason: string }).reason, /DGRAM/);
  assert.match((resolveSession(peer, parsed(Buffer.from('PROXY TCP4 0.0.0.0 198.51.100.1 1 25\r\n'))) as { reason: string }).reason, /unspecified address 0\.0\.0\.0/);
});
