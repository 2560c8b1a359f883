// The one module that touches mailauth (pinned in package.json): its SPF, DMARC and ARC checks,
// and its DKIM verifier with a cap on the DKIM-Signature fields it looks at. The cap needs the
// verifier's messageHeaders hook (internal API of the pinned version): the fields beyond the cap
// are hidden from the choice of signatures only, so a kept signature that covers them still sees
// the whole header block. Check this file again when upgrading mailauth.
import { createRequire } from 'node:module';
import type { Readable, Writable } from 'node:stream';
import type { NodeStyleResolver } from '../dns/node-resolver.js';

const require = createRequire(import.meta.url);

/** mailauth's status object (the result, a comment, the ptype.property values of the A-R row). */
export interface MailauthStatus {
  result: string;
  comment?: string;
  policy?: Record<string, string>;
  smtp?: Record<string, string>;
  header?: Record<string, string | false>;
  aligned?: string | false;
  underSized?: number;
}

export interface MailauthSpf {
  domain: string;
  'client-ip': string;
  helo?: string;
  'envelope-from'?: string;
  status: MailauthStatus;
  rr?: string;
  info: string;
  lookups?: { limit: number; count: number; void: number };
}

export interface MailauthDkimResult {
  signingDomain?: string;
  selector?: string;
  algo?: string;
  status: MailauthStatus;
  info: string;
}

export interface MailauthArc {
  status: MailauthStatus & { shouldSeal?: boolean };
  i?: number | false;
  info?: string;
  /** The chain (not enumerable in mailauth's result): ARC sets, oldest first. */
  chain?: Array<{ i: number; 'arc-seal'?: { parsed?: Record<string, { value: string }> } }> | false;
}

export interface MailauthDmarc {
  status: MailauthStatus;
  domain: string;
  policy?: string;
  p?: string;
  sp?: string;
  pct?: number;
  info: string;
  error?: string;
}

interface ArcData {
  chain: unknown;
  lastEntry?: unknown;
  error?: unknown;
}

interface SignatureHeader {
  type: string;
  maxBodyLength: number | string;
  parsed?: { b?: { value?: string } };
}

interface VerifierState extends Writable {
  results: Array<MailauthDkimResult & { signature?: string; canonBodyLength?: number; canonBodyLengthTotal?: number; canonBodyLengthLimited?: boolean; canonBodyLengthLimit?: number }>;
  headerFrom: string[];
  arc: ArcData;
  headers?: { parsed: Array<{ key: string | null }> };
  signatureHeaders: SignatureHeader[];
}

type VerifierClass = new (options: object) => VerifierState & { messageHeaders(headers: unknown): Promise<void>; finalChunk(): Promise<void> };

const { DkimVerifier } = require('mailauth/lib/dkim/dkim-verifier') as { DkimVerifier: VerifierClass };
const { writeToStream, formatAuthHeaderRow } = require('mailauth/lib/tools') as {
  writeToStream: (stream: Writable, input: Buffer | Readable) => Promise<void>;
  formatAuthHeaderRow: (method: string, status: MailauthStatus) => string;
};
const { spf } = require('mailauth/lib/spf') as { spf: (opts: object) => Promise<MailauthSpf> };
const { dmarc } = require('mailauth/lib/dmarc') as { dmarc: (opts: object) => Promise<MailauthDmarc | false> };
const { arc } = require('mailauth/lib/arc') as { arc: (data: ArcData, opts: object) => Promise<MailauthArc> };

/**
 * The DKIM verifier looking at no more than `cap` DKIM-Signature fields (the topmost, i.e. newest).
 * It also keeps mailauth 4.13.3 from printing a debug line on standard output for each signature
 * whose l= exceeds the body (a hostile sender's choice): the length limit is hidden from that check
 * and its bookkeeping (undersized signature) is done here after the verification.
 */
class CappedDkimVerifier extends DkimVerifier {
  ignoredSignatures = 0;
  private readonly lengthLimits = new Map<string, number>();

  constructor(
    options: object,
    private readonly cap: number,
  ) {
    super(options);
  }

  override async messageHeaders(headers: { parsed: Array<{ key: string | null }> }): Promise<void> {
    let seen = 0;
    const parsed = headers.parsed.filter((h) => h.key !== 'dkim-signature' || ++seen <= this.cap);
    this.ignoredSignatures = Math.max(0, seen - this.cap);
    await super.messageHeaders({ ...headers, parsed });
    this.headers = headers; // signed header lines are taken from the whole block
    // The body hashers already honour l=; the number is hidden from mailauth's debug print.
    for (const sig of this.signatureHeaders) {
      const b = sig.parsed?.b?.value;
      if (sig.type === 'DKIM' && typeof sig.maxBodyLength === 'number' && b) {
        this.lengthLimits.set(b, sig.maxBodyLength);
        sig.maxBodyLength = String(sig.maxBodyLength);
      }
    }
  }

  override async finalChunk(): Promise<void> {
    await super.finalChunk();
    for (const r of this.results) {
      const limit = r.signature ? this.lengthLimits.get(r.signature) : undefined;
      if (limit === undefined) continue;
      r.canonBodyLengthLimited = true;
      r.canonBodyLengthLimit = limit;
      if (typeof r.canonBodyLengthTotal === 'number' && typeof r.canonBodyLength === 'number' && r.canonBodyLengthTotal > r.canonBodyLength) {
        r.status.underSized = r.canonBodyLengthTotal - r.canonBodyLength;
        r.info = formatAuthHeaderRow('dkim', r.status);
      }
    }
  }
}

export interface DkimRun {
  results: MailauthDkimResult[];
  ignoredSignatures: number;
  headerFrom: string[];
  arcData: ArcData;
}

export async function runDkim(message: Buffer | Readable, opts: { resolver: NodeStyleResolver; minBitLength: number; sender: string; maxSignatures: number }): Promise<DkimRun> {
  const verifier = new CappedDkimVerifier({ resolver: opts.resolver, minBitLength: opts.minBitLength, sender: opts.sender || undefined }, opts.maxSignatures);
  await writeToStream(verifier, message);
  return { results: verifier.results, ignoredSignatures: verifier.ignoredSignatures, headerFrom: verifier.headerFrom, arcData: verifier.arc };
}

export function runSpf(opts: { resolver: NodeStyleResolver; ip: string; helo?: string; sender: string; mta: string; maxResolveCount: number; maxVoidCount: number }): Promise<MailauthSpf> {
  return spf({ ...opts });
}

export function runArc(data: ArcData, opts: { resolver: NodeStyleResolver; minBitLength: number }): Promise<MailauthArc> {
  return arc(data, opts);
}

export function runDmarc(opts: {
  resolver: NodeStyleResolver;
  headerFrom: string[];
  spfDomains: string[];
  dkimDomains: Array<{ domain: string; aligned?: string | false; underSized?: number }>;
  arcResult: MailauthArc;
}): Promise<MailauthDmarc | false> {
  return dmarc(opts);
}
