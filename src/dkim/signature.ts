// The DKIM-Signature field (RFC 6376, RFC 8463 for Ed25519): which fields are signed and
// over-signed, the field's layout, and the signature itself, always relaxed/relaxed. The layout
// depends only on the key, the signed field names and the lengths of t=, bh= and b= (all fixed
// for a key), so the field's length is known as soon as the header block is: the queue reserves
// exactly that room in front of a message it streams to disk, and fills it in at commit.
import { createHash, sign } from 'node:crypto';
import type { DkimKey } from '../config/types.js';
import { relaxedField, type HeaderField } from './header-block.js';

/** The key fields a signature needs (DkimKey without where it was configured). */
export type SigningKey = Pick<DkimKey, 'domain' | 'selector' | 'algorithm' | 'privateKey' | 'signatureBytes'>;

/**
 * Fields signed, every instance present (opendkim's and rspamd's usual set). Over-signing (below)
 * adds the name once more, so that a field of that name added after signing breaks the signature.
 */
const SIGNED_FIELDS: readonly string[] = [
  'from', 'sender', 'reply-to', 'subject', 'date', 'message-id', 'to', 'cc',
  'mime-version', 'content-type', 'content-transfer-encoding', 'content-id', 'content-description',
  'in-reply-to', 'references',
  'resent-date', 'resent-from', 'resent-sender', 'resent-to', 'resent-cc', 'resent-message-id',
  'list-id', 'list-help', 'list-unsubscribe', 'list-unsubscribe-post', 'list-subscribe', 'list-post', 'list-owner', 'list-archive',
];
/** Over-signed even when absent: nobody may add them (rspamd's `(o)`). */
const OVERSIGNED_ALWAYS: ReadonlySet<string> = new Set(['from', 'reply-to', 'subject', 'to', 'cc']);
/**
 * Over-signed when present (rspamd's `(x)`): a second one may not be added, but a hop that adds a
 * missing Date: or Message-ID: (as some do) does not break the signature.
 */
const OVERSIGNED_IF_PRESENT: ReadonlySet<string> = new Set([
  'sender', 'date', 'message-id', 'mime-version', 'content-type', 'content-transfer-encoding', 'in-reply-to', 'references', 'list-id', 'list-unsubscribe', 'list-unsubscribe-post',
]);

/** Field names as written in h= (the tag is case-blind; this is how people write them). */
const DISPLAY = new Map(SIGNED_FIELDS.map((n) => [n, n.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase()).replace(/^Message-Id$/, 'Message-ID').replace(/^Mime-Version$/, 'MIME-Version')]));

export interface SignedFields {
  /** The h= list, in order, names repeated per instance (and once more when over-signed). */
  names: string[];
  /** Relaxed canonical form of the instances the names select, in the same order (bottom-up per name). */
  canonical: string[];
}

/** Chooses the fields to sign (RFC 6376 §5.4.2: several instances are taken from the bottom up). */
export function signedFields(fields: HeaderField[]): SignedFields {
  const names: string[] = [];
  const canonical: string[] = [];
  for (const name of SIGNED_FIELDS) {
    const present = fields.filter((f) => f.name === name);
    for (let i = present.length - 1; i >= 0; i--) {
      names.push(DISPLAY.get(name)!);
      canonical.push(relaxedField(present[i]!.raw));
    }
    // A name with no instance left selects nothing: it adds nothing to the hash (§5.4).
    if (OVERSIGNED_ALWAYS.has(name) || (present.length > 0 && OVERSIGNED_IF_PRESENT.has(name))) names.push(DISPLAY.get(name)!);
  }
  return { names, canonical };
}

interface Tags {
  key: SigningKey;
  names: string[];
  /** Seconds since the epoch. */
  time: number;
  bodyHash: string;
  /** Base64 signature ('' for the form that is signed). */
  b: string;
}

const WIDTH = 76;

/** The whole field, folded, ending in CRLF (without the CRLF when `b` is empty: the form that is signed). */
function formatField(t: Tags): string {
  const lines = [`DKIM-Signature: v=1; a=${t.key.algorithm}; c=relaxed/relaxed; d=${t.key.domain};`, `\ts=${t.key.selector}; t=${t.time};`];
  // h=: names wrapped after a colon (FWS is allowed around the colons).
  let line = '\th=';
  t.names.forEach((name, i) => {
    const piece = name + (i < t.names.length - 1 ? ':' : ';');
    if (line.length + piece.length > WIDTH && line !== '\th=') {
      lines.push(line);
      line = '\t';
    }
    line += piece;
  });
  lines.push(line, `\tbh=${t.bodyHash};`);
  if (t.b === '') return [...lines, '\tb='].join('\r\n');
  const b: string[] = [`\tb=${t.b.slice(0, WIDTH - 3)}`];
  for (let i = WIDTH - 3; i < t.b.length; i += WIDTH - 1) b.push(`\t${t.b.slice(i, i + WIDTH - 1)}`);
  return [...lines, ...b].join('\r\n') + '\r\n';
}

/** Bytes of the finished field for this key and these names (the signing time has 10 digits until 2286). */
export function signatureLength(key: SigningKey, names: string[], time: number): number {
  const base64Length = 4 * Math.ceil(key.signatureBytes / 3);
  return Buffer.byteLength(formatField({ key, names, time, bodyHash: 'x'.repeat(44), b: 'x'.repeat(base64Length) }), 'latin1');
}

/**
 * Signs: `fields` is the header block's fields, `bodyHash` the base64 SHA-256 of the relaxed
 * body. Returns the DKIM-Signature field, folded, ending in CRLF.
 */
export function signatureField(key: SigningKey, fields: SignedFields, bodyHash: string, time: number): string {
  const unsigned = formatField({ key, names: fields.names, time, bodyHash, b: '' });
  const data = Buffer.from([...fields.canonical.map((c) => `${c}\r\n`), relaxedField(unsigned)].join(''), 'latin1');
  const signature =
    key.algorithm === 'rsa-sha256'
      ? sign('sha256', data, key.privateKey)
      : // RFC 8463 §3: Ed25519 signs the SHA-256 hash of the data (PureEdDSA over the digest).
        sign(null, createHash('sha256').update(data).digest(), key.privateKey);
  return formatField({ key, names: fields.names, time, bodyHash, b: signature.toString('base64') });
}
