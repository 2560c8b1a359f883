// The version 2 TLVs the specification names, read into plain fields for the log and for policy
// (which TLS the client spoke to the balancer, HAProxy's unique id of the connection). Unknown and
// custom types (0xE0–0xEF) stay in `other`; a malformed SSL TLV leaves `ssl` null.
import type { ProxyTlv } from './parse.js';

const PP2_TYPE = {
  ALPN: 0x01,
  AUTHORITY: 0x02,
  CRC32C: 0x03,
  NOOP: 0x04,
  UNIQUE_ID: 0x05,
  SSL: 0x20,
  NETNS: 0x30,
} as const;

const PP2_SUBTYPE_SSL = { VERSION: 0x21, CN: 0x22, CIPHER: 0x23, SIG_ALG: 0x24, KEY_ALG: 0x25 } as const;
const PP2_CLIENT_SSL = 0x01;

export interface ProxySslInfo {
  /** The client connected to the balancer over TLS. */
  tls: boolean;
  /** The client presented a certificate (on this connection or in the TLS session). */
  clientCertificate: boolean;
  /** The balancer verified that certificate (the field is 0 when it did). */
  verified: boolean;
  version: string | null;
  commonName: string | null;
  cipher: string | null;
  signatureAlgorithm: string | null;
  keyAlgorithm: string | null;
}

export interface ProxyTlvInfo {
  alpn: string | null;
  /** The host name the client asked for (TLS SNI or HTTP Host). */
  authority: string | null;
  uniqueId: Buffer | null;
  netns: string | null;
  ssl: ProxySslInfo | null;
  other: ProxyTlv[];
}

export function describeTlvs(tlvs: readonly ProxyTlv[]): ProxyTlvInfo {
  const info: ProxyTlvInfo = { alpn: null, authority: null, uniqueId: null, netns: null, ssl: null, other: [] };
  for (const t of tlvs) {
    switch (t.type) {
      case PP2_TYPE.ALPN:
        info.alpn = t.value.toString('latin1');
        break;
      case PP2_TYPE.AUTHORITY:
        info.authority = t.value.toString('utf8');
        break;
      case PP2_TYPE.UNIQUE_ID:
        info.uniqueId = t.value;
        break;
      case PP2_TYPE.NETNS:
        info.netns = t.value.toString('latin1');
        break;
      case PP2_TYPE.SSL:
        info.ssl = sslInfo(t.value);
        break;
      case PP2_TYPE.CRC32C: // checked by the parser
      case PP2_TYPE.NOOP:
        break;
      default:
        info.other.push(t);
    }
  }
  return info;
}

function sslInfo(value: Buffer): ProxySslInfo | null {
  if (value.length < 5) return null;
  const client = value[0]!;
  const out: ProxySslInfo = {
    tls: (client & PP2_CLIENT_SSL) !== 0,
    clientCertificate: (client & 0x06) !== 0,
    verified: value.readUInt32BE(1) === 0,
    version: null,
    commonName: null,
    cipher: null,
    signatureAlgorithm: null,
    keyAlgorithm: null,
  };
  let at = 5;
  while (at < value.length) {
    if (value.length - at < 3) return null;
    const type = value[at]!;
    const len = value.readUInt16BE(at + 1);
    if (at + 3 + len > value.length) return null;
    const text = value.toString('utf8', at + 3, at + 3 + len);
    if (type === PP2_SUBTYPE_SSL.VERSION) out.version = text;
    else if (type === PP2_SUBTYPE_SSL.CN) out.commonName = text;
    else if (type === PP2_SUBTYPE_SSL.CIPHER) out.cipher = text;
    else if (type === PP2_SUBTYPE_SSL.SIG_ALG) out.signatureAlgorithm = text;
    else if (type === PP2_SUBTYPE_SSL.KEY_ALG) out.keyAlgorithm = text;
    at += 3 + len;
  }
  return out;
}
