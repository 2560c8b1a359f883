// The PROXY protocol header a load balancer puts before the client's bytes (HAProxy's
// `send-proxy` sends version 1, a text line; `send-proxy-v2` version 2, binary), parsed from the
// bytes received so far: a pure function, called again with more bytes while it answers
// `need-more`. It decides as early as the bytes allow (a wrong first octet is an error at once, a
// version 2 length above the limit is an error before its body arrives), so a peer that sends
// garbage is not waited for. Specification: haproxy/doc/proxy-protocol.txt.
import net from 'node:net';
import { crc32c } from './crc32c.js';

export type ProxyVersion = 1 | 2;
/** Which versions a service takes (PROXY_PROTOCOL=1 is 'any'). */
export type ProxyVersions = 'v1' | 'v2' | 'any';
/** LOCAL: the balancer's own connection (a health check): the real endpoints are the socket's. */
export type ProxyCommand = 'LOCAL' | 'PROXY';
/** v1 TCP4 is INET, TCP6 is INET6, UNKNOWN is UNSPEC. */
export type ProxyFamily = 'INET' | 'INET6' | 'UNIX' | 'UNSPEC';
export type ProxyTransport = 'STREAM' | 'DGRAM' | 'UNSPEC';

export interface ProxyEndpoint {
  /** An IP address as written by net (IPv4 dotted, IPv6 compressed lower-case), or a UNIX socket path. */
  address: string;
  /** 0 for a UNIX socket. */
  port: number;
}

/** A version 2 Type-Length-Value field (types: PP2_TYPE_* of the specification, see tlv.ts). */
export interface ProxyTlv {
  type: number;
  value: Buffer;
}

export interface ProxyHeader {
  version: ProxyVersion;
  command: ProxyCommand;
  family: ProxyFamily;
  transport: ProxyTransport;
  /** The client as the balancer saw it; null when the header carries none (LOCAL, UNSPEC). */
  source: ProxyEndpoint | null;
  /** The address the client connected to (the balancer's frontend); null as `source`. */
  destination: ProxyEndpoint | null;
  /** Version 2 only, in the order sent (empty for version 1 and for LOCAL, whose block is skipped). */
  tlvs: ProxyTlv[];
  /** Octets of the header: the bytes after it belong to the client's session. */
  length: number;
}

export type ProxyParseResult =
  | { kind: 'need-more' }
  | { kind: 'header'; header: ProxyHeader; rest: Buffer }
  | { kind: 'error'; reason: string };

export interface ProxyParseOptions {
  /** Default 'any'. */
  versions?: ProxyVersions;
  /** The longest version 2 header taken, in octets (default 1024); version 1 is at most 107 by definition. */
  maxBytes?: number;
}

const V1_MAX_LENGTH = 107;
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
export const DEFAULT_MAX_HEADER_BYTES = 1024;
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V2_FIXED_LENGTH = 16;
const PP2_TYPE_CRC32C = 0x03;

/** The address block's length per family (version 2). */
const ADDRESS_BLOCK: Record<ProxyFamily, number> = { UNSPEC: 0, INET: 12, INET6: 36, UNIX: 216 };
/** The family-and-transport octets the specification defines; anything else must be rejected. */
const FAMILY_BYTES = new Map<number, [ProxyFamily, ProxyTransport]>([
  [0x00, ['UNSPEC', 'UNSPEC']],
  [0x11, ['INET', 'STREAM']],
  [0x12, ['INET', 'DGRAM']],
  [0x21, ['INET6', 'STREAM']],
  [0x22, ['INET6', 'DGRAM']],
  [0x31, ['UNIX', 'STREAM']],
  [0x32, ['UNIX', 'DGRAM']],
]);

export function parseProxyHeader(input: Buffer, options: ProxyParseOptions = {}): ProxyParseResult {
  const versions = options.versions ?? 'any';
  if (input.length === 0) return { kind: 'need-more' };
  if (input[0] === V1_PREFIX[0]) {
    if (versions === 'v2') return error('a version 1 (text) header where only version 2 is accepted');
    return parseV1(input);
  }
  if (input[0] === V2_SIGNATURE[0]) {
    if (versions === 'v1') {
      // Still a v2 signature? Say so; else it is just not a header.
      const n = Math.min(input.length, V2_SIGNATURE.length);
      if (!input.subarray(0, n).equals(V2_SIGNATURE.subarray(0, n))) return error('not a PROXY protocol header');
      return n < V2_SIGNATURE.length ? { kind: 'need-more' } : error('a version 2 (binary) header where only version 1 is accepted');
    }
    return parseV2(input, options.maxBytes ?? DEFAULT_MAX_HEADER_BYTES);
  }
  return error('not a PROXY protocol header');
}

function error(reason: string): ProxyParseResult {
  return { kind: 'error', reason };
}

// ---------------------------------------------------------------- version 1

function parseV1(input: Buffer): ProxyParseResult {
  const prefix = Math.min(input.length, V1_PREFIX.length);
  if (!input.subarray(0, prefix).equals(V1_PREFIX.subarray(0, prefix))) return error('not a PROXY protocol header');
  const limit = Math.min(input.length, V1_MAX_LENGTH);
  let end = -1;
  for (let i = 0; i < limit; i++) {
    const c = input[i]!;
    if (c === 0x0a) return error('version 1: the line ends with LF without CR');
    if (c === 0x0d) {
      if (i + 2 > V1_MAX_LENGTH) return error(`version 1: no CRLF within ${V1_MAX_LENGTH} octets`);
      if (i + 1 >= input.length) return { kind: 'need-more' };
      if (input[i + 1] !== 0x0a) return error('version 1: CR not followed by LF');
      end = i;
      break;
    }
    if (c < 0x20 || c > 0x7e) return error(`version 1: a control or non-ASCII octet (0x${c.toString(16).padStart(2, '0')}) in the line`);
  }
  if (end < 0) {
    if (input.length >= V1_MAX_LENGTH) return error(`version 1: no CRLF within ${V1_MAX_LENGTH} octets`);
    return { kind: 'need-more' };
  }
  const line = input.toString('latin1', 0, end);
  const length = end + 2;
  const fields = line.split(' ');
  const protocol = fields[1] ?? '';
  const done = (header: Omit<ProxyHeader, 'version' | 'tlvs' | 'length'>): ProxyParseResult => ({
    kind: 'header',
    header: { version: 1, ...header, tlvs: [], length },
    rest: input.subarray(length),
  });
  if (protocol === 'UNKNOWN') {
    // "the receiver must ignore anything presented before the CRLF" and use the socket's endpoints.
    return done({ command: 'PROXY', family: 'UNSPEC', transport: 'UNSPEC', source: null, destination: null });
  }
  if (protocol !== 'TCP4' && protocol !== 'TCP6') return error(`version 1: unknown protocol "${printable(protocol)}" (TCP4, TCP6 or UNKNOWN)`);
  if (fields.length !== 6) return error(`version 1: ${fields.length - 2 < 4 ? 'missing fields' : 'extra fields'} (expected PROXY ${protocol} source destination sport dport, single spaces)`);
  const family: ProxyFamily = protocol === 'TCP4' ? 'INET' : 'INET6';
  const [, , src, dst, sport, dport] = fields as [string, string, string, string, string, string];
  const source = v1Address(src, family);
  if (source === null) return error(`version 1: bad source address "${printable(src)}" for ${protocol}`);
  const destination = v1Address(dst, family);
  if (destination === null) return error(`version 1: bad destination address "${printable(dst)}" for ${protocol}`);
  const sourcePort = v1Port(sport);
  if (sourcePort === null) return error(`version 1: bad source port "${printable(sport)}"`);
  const destinationPort = v1Port(dport);
  if (destinationPort === null) return error(`version 1: bad destination port "${printable(dport)}"`);
  return done({ command: 'PROXY', family, transport: 'STREAM', source: { address: source, port: sourcePort }, destination: { address: destination, port: destinationPort } });
}

/** Node's checks are strict (no leading zeros in IPv4); a zone index (`%eth0`) is no client address. */
function v1Address(text: string, family: ProxyFamily): string | null {
  if (family === 'INET') return net.isIPv4(text) ? text : null;
  if (text.includes('%') || !net.isIPv6(text)) return null;
  return canonicalIPv6(text);
}

/** Decimal 0–65535 without leading zeros, as the specification writes them. */
function v1Port(text: string): number | null {
  if (!/^(0|[1-9]\d{0,4})$/.test(text)) return null;
  const n = Number(text);
  return n <= 65535 ? n : null;
}

/** The compressed lower-case form net's sockets report (`2001:db8::1`). */
function canonicalIPv6(text: string): string {
  const socketAddress = new net.SocketAddress({ address: text, family: 'ipv6' });
  return socketAddress.address;
}

// ---------------------------------------------------------------- version 2

function parseV2(input: Buffer, maxBytes: number): ProxyParseResult {
  const n = Math.min(input.length, V2_SIGNATURE.length);
  if (!input.subarray(0, n).equals(V2_SIGNATURE.subarray(0, n))) return error('version 2: bad signature');
  if (input.length < V2_FIXED_LENGTH) return { kind: 'need-more' };
  const versionCommand = input[12]!;
  if (versionCommand >> 4 !== 2) return error(`version 2: unsupported version ${versionCommand >> 4} in the version/command octet`);
  const commandBits = versionCommand & 0x0f;
  if (commandBits > 1) return error(`version 2: unknown command ${commandBits} (0 LOCAL, 1 PROXY)`);
  const command: ProxyCommand = commandBits === 0 ? 'LOCAL' : 'PROXY';
  const familyByte = input[13]!;
  const kinds = FAMILY_BYTES.get(familyByte);
  if (!kinds) return error(`version 2: undefined family/transport octet 0x${familyByte.toString(16).padStart(2, '0')}`);
  const bodyLength = input.readUInt16BE(14);
  const length = V2_FIXED_LENGTH + bodyLength;
  if (length > maxBytes) return error(`version 2: header of ${length} octets is longer than the ${maxBytes} taken`);
  if (input.length < length) return { kind: 'need-more' };
  const rest = input.subarray(length);
  const [family, transport] = kinds;
  if (command === 'LOCAL') {
    // "the receiver must accept this connection as valid and must use the real connection
    // endpoints and discard the protocol block including the family".
    return { kind: 'header', header: { version: 2, command, family, transport, source: null, destination: null, tlvs: [], length }, rest };
  }
  const blockLength = ADDRESS_BLOCK[family];
  if (bodyLength < blockLength) return error(`version 2: ${bodyLength} octets after the fixed part, fewer than the ${blockLength} of the ${family} address block`);
  const body = input.subarray(V2_FIXED_LENGTH, length);
  let source: ProxyEndpoint | null = null;
  let destination: ProxyEndpoint | null = null;
  if (family === 'INET') {
    source = { address: ipv4(body.subarray(0, 4)), port: body.readUInt16BE(8) };
    destination = { address: ipv4(body.subarray(4, 8)), port: body.readUInt16BE(10) };
  } else if (family === 'INET6') {
    source = { address: ipv6(body.subarray(0, 16)), port: body.readUInt16BE(32) };
    destination = { address: ipv6(body.subarray(16, 32)), port: body.readUInt16BE(34) };
  } else if (family === 'UNIX') {
    source = { address: unixPath(body.subarray(0, 108)), port: 0 };
    destination = { address: unixPath(body.subarray(108, 216)), port: 0 };
  }
  const tlvs = parseTlvs(body.subarray(blockLength));
  if (typeof tlvs === 'string') return error(`version 2: ${tlvs}`);
  const crc = tlvs.find((t) => t.type === PP2_TYPE_CRC32C);
  if (crc) {
    if (crc.value.length !== 4) return error('version 2: CRC32C field of a length other than 4');
    // The checksum covers the whole header with the checksum's own value zeroed.
    const copy = Buffer.from(input.subarray(0, length));
    const at = crc.value.byteOffset - input.byteOffset;
    copy.fill(0, at, at + 4);
    if (crc32c(copy) !== crc.value.readUInt32BE(0)) return error('version 2: CRC32C checksum does not match the header');
  }
  return { kind: 'header', header: { version: 2, command, family, transport, source, destination, tlvs, length }, rest };
}

/** The TLV vectors after the address block; a string says what is wrong. */
function parseTlvs(block: Buffer): ProxyTlv[] | string {
  const out: ProxyTlv[] = [];
  let at = 0;
  while (at < block.length) {
    if (block.length - at < 3) return `a truncated TLV at offset ${at} of the TLV block`;
    const type = block[at]!;
    const len = block.readUInt16BE(at + 1);
    if (at + 3 + len > block.length) return `the TLV of type 0x${type.toString(16).padStart(2, '0')} is longer (${len}) than the header leaves`;
    out.push({ type, value: block.subarray(at + 3, at + 3 + len) });
    at += 3 + len;
  }
  return out;
}

function ipv4(b: Buffer): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

function ipv6(b: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  return canonicalIPv6(groups.join(':'));
}

function unixPath(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.toString('utf8', 0, nul < 0 ? b.length : nul);
}

/** Received octets as one log-safe line: printable ASCII kept, the rest as \xNN, cut at `max` octets. */
export function printableBytes(bytes: Buffer, max = 120): string {
  let out = '';
  for (const c of bytes.subarray(0, max)) {
    if (c === 0x0d) out += '\\r';
    else if (c === 0x0a) out += '\\n';
    else if (c >= 0x20 && c <= 0x7e && c !== 0x5c) out += String.fromCharCode(c);
    else out += `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return bytes.length > max ? `${out}…` : out;
}

function printable(text: string): string {
  return printableBytes(Buffer.from(text, 'latin1'), 60);
}
