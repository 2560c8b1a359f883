// Signs one message while it streams: the header block is kept (it is small and must be whole to
// choose the key and the fields), the body only hashed (mailauth's relaxed body canonicalization),
// so a 50 MB message is signed without being held in memory. As soon as the header block has
// ended, the length of the DKIM-Signature field(s) is known (`length`): the queue reserves that
// room in front of the message and asks for the fields with finish() once the last byte is in.
// One signature per key configured for the From: domain (e.g. an RSA and an Ed25519 one).
import { createRequire } from 'node:module';
import type { DkimConfig } from '../config/types.js';
import { emptyLineEnd, fromDomain, headerFields } from './header-block.js';
import { signingKeysFor } from './keys.js';
import { signatureField, signatureLength, signedFields, type SignedFields, type SigningKey } from './signature.js';

/** A header block longer than this is not signed (Postfix's header_size_limit is 100 KiB). */
export const MAX_HEADER_BYTES = 256 * 1024;

interface BodyHasher {
  update(chunk: Buffer): void;
  digest(encoding: 'base64'): string;
}

// mailauth is CommonJS; its body hasher is loaded on first use (and is light: no DNS, no parsers).
const requireCjs = createRequire(import.meta.url);
function relaxedBodyHasher(): BodyHasher {
  const { dkimBody } = requireCjs('mailauth/lib/dkim/body/index.js') as { dkimBody: (canon: string, hash: string, maxLength: false) => BodyHasher };
  return dkimBody('relaxed', 'sha256', false);
}

type State =
  /** `tail`: the last two bytes seen (at first a LF standing for the line end before the message). */
  | { kind: 'header'; chunks: Buffer[]; bytes: number; tail: Buffer }
  | { kind: 'signing'; keys: SigningKey[]; fields: SignedFields; hasher: BodyHasher; length: number }
  | { kind: 'none'; reason: string };

export interface MessageSignerOptions {
  /** The signing time (t=); default now. */
  now?: () => Date;
}

/** The queue's MessagePrefix (src/queue/types.ts): DKIM is a layer below the queue, so the type is checked where the queue is given a signer. */
export class MessageSigner {
  private state: State = { kind: 'header', chunks: [], bytes: 0, tail: Buffer.from('\n') };
  private finished = false;

  constructor(
    private readonly dkim: DkimConfig,
    private readonly opts: MessageSignerOptions = {},
  ) {}

  update(chunk: Buffer): void {
    if (this.finished) throw new Error('dkim: update() after finish()');
    const s = this.state;
    if (s.kind === 'signing') s.hasher.update(chunk);
    if (s.kind !== 'header') return;
    // Each chunk is searched once, behind the two bytes before it (a message trickled in byte by
    // byte costs no more than one sent whole).
    const probe = Buffer.concat([s.tail, chunk]);
    const end = emptyLineEnd(probe);
    const start = end < 0 ? -1 : s.bytes - s.tail.length + end;
    if ((start < 0 && s.bytes + chunk.length > MAX_HEADER_BYTES) || start > MAX_HEADER_BYTES) {
      this.state = { kind: 'none', reason: `header block over ${MAX_HEADER_BYTES} bytes` };
    } else if (start >= 0) {
      const data = Buffer.concat([...s.chunks, chunk]);
      this.headerEnded(data.subarray(0, start), data.subarray(start));
    } else {
      s.chunks.push(chunk);
      s.bytes += chunk.length;
      s.tail = Buffer.from(probe.subarray(-2));
    }
  }

  /** Bytes of the fields finish() gives: null until the header block has ended, 0 when the message is not signed. */
  get length(): number | null {
    const s = this.state;
    return s.kind === 'header' ? null : s.kind === 'signing' ? s.length : 0;
  }

  /** Why the message gets no signature (null while it still may, or when it does). */
  get unsignedReason(): string | null {
    return this.state.kind === 'none' ? this.state.reason : null;
  }

  /** The caller cannot wait for the end of the header block: no signature. */
  giveUp(): void {
    if (this.state.kind === 'header') this.state = { kind: 'none', reason: 'the header block did not end in time' };
  }

  /** The DKIM-Signature field(s), exactly `length` bytes; call after the last update(). */
  finish(): Buffer {
    if (this.finished) throw new Error('dkim: finish() called twice');
    this.finished = true;
    // A message that ended inside its header block (no empty line, no body) is all header.
    if (this.state.kind === 'header') this.headerEnded(Buffer.concat(this.state.chunks), Buffer.alloc(0));
    const s = this.state;
    if (s.kind !== 'signing') return Buffer.alloc(0);
    const bodyHash = s.hasher.digest('base64');
    const time = Math.floor((this.opts.now?.() ?? new Date()).getTime() / 1000);
    const out = Buffer.from(s.keys.map((k) => signatureField(k, s.fields, bodyHash, time)).join(''), 'latin1');
    if (out.length !== s.length) throw new Error(`dkim: the signature takes ${out.length} bytes, ${s.length} were reserved`);
    return out;
  }

  private headerEnded(header: Buffer, bodyStart: Buffer): void {
    const fields = headerFields(header.toString('latin1'));
    const domain = fromDomain(fields);
    if (domain === null) {
      this.state = { kind: 'none', reason: 'no From: domain' };
      return;
    }
    const keys = signingKeysFor(domain, this.dkim);
    if (keys.length === 0) {
      this.state = { kind: 'none', reason: `no key for ${domain}` };
      return;
    }
    const signed = signedFields(fields);
    // t= has ten digits from 2001 to 2286: its value does not change the length.
    const length = keys.reduce((n, k) => n + signatureLength(k, signed.names, 1_000_000_000), 0);
    const hasher = relaxedBodyHasher();
    if (bodyStart.length > 0) hasher.update(bodyStart);
    this.state = { kind: 'signing', keys, fields: signed, hasher, length };
  }
}

/** Signs a whole message in memory (tests, tools): the DKIM-Signature field(s), or '' when no key applies. */
export function signMessage(message: Buffer, dkim: DkimConfig, opts: MessageSignerOptions = {}): string {
  const signer = new MessageSigner(dkim, opts);
  signer.update(message);
  return signer.finish().toString('latin1');
}
