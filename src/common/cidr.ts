// CIDR networks (INTERNAL_IP, ETRN_ALLOW, mapping patterns' `$(…)`) and the membership test the
// SMTP server asks for each client.
import net from 'node:net';

export interface Cidr {
  text: string; // as written
  family: 4 | 6;
  bytes: Uint8Array; // network address
  prefix: number;
}

/** `10.0.0.0/8`, `::1`, `192.0.2.7` (a host); null when the text is not an address or network. */
export function parseCidr(text: string): Cidr | null {
  const trimmed = text.trim();
  const slash = trimmed.indexOf('/');
  const address = slash < 0 ? trimmed : trimmed.slice(0, slash);
  const family = net.isIP(address);
  if (family === 0) return null;
  const bits = family === 4 ? 32 : 128;
  let prefix = bits;
  if (slash >= 0) {
    const p = trimmed.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > bits) return null;
    prefix = Number(p);
  }
  // An IPv4-mapped network (`::ffff:10.0.0.0/104`) is the IPv4 network, as client addresses are compared.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped && prefix >= 96) return { text: trimmed, family: 4, bytes: maskBytes(addressBytes(mapped[1]!), prefix - 96), prefix: prefix - 96 };
  return { text: trimmed, family: family as 4 | 6, bytes: maskBytes(addressBytes(address), prefix), prefix };
}

/** Whether `ip` (IPv4, IPv6 or IPv4-mapped IPv6 as sockets report it) is in one of the networks. */
export function ipInCidrs(ip: string, cidrs: readonly Cidr[]): boolean {
  let address = ip;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) address = mapped[1]!;
  const family = net.isIP(address);
  if (family === 0) return false;
  const bytes = addressBytes(address);
  return cidrs.some((c) => c.family === family && sameNetwork(maskBytes(bytes, c.prefix), c.bytes));
}

function sameNetwork(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function maskBytes(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = bytes[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  return out;
}

/** The 4 or 16 bytes of an IPv4 or IPv6 address (already checked with net.isIP). */
export function addressBytes(address: string): Uint8Array {
  if (net.isIPv4(address)) return Uint8Array.from(address.split('.').map(Number));
  // Expand `::` and a trailing dotted quad into 16 bytes.
  let text = address;
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (quad) {
    const [a, b, c, d] = quad[1]!.split('.').map(Number) as [number, number, number, number];
    text = text.slice(0, -quad[1]!.length) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') as [string, string] : [text, null];
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const zeros = tail === null ? [] : new Array<string>(8 - headGroups.length - tailGroups.length).fill('0');
  const groups = [...headGroups, ...zeros, ...tailGroups];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}
