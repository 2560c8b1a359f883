// Whether mail to a local address may be accepted (the SMTP server's RCPT check, imsimta submit):
// the directory's own expansion (expand.ts) read until its first deliverable item, so that a
// recipient accepted here is one the local channel delivers to something: a user's mailbox, a
// forwarding address, a list with at least one member it can reach. An unknown address, a user
// with no delivery option tsubame acts on, a list whose members all fail (every one unknown, or a
// group that only contains itself) are refused at RCPT rather than accepted and bounced to a
// sender who may be forged (backscatter). A directory that cannot answer is `unavailable`: a 4xx,
// never a refusal. The probe stops after a few failed members: a long list whose first members
// are broken is accepted, and its owner gets the failures when it is expanded.
import { expandRecipient, type FailureReason } from './expand.js';
import type { RecipientDirectory } from './types.js';

export type RecipientCheck =
  | { kind: 'accept' }
  /** Nothing to deliver to: unknown, or every member failed; `reason` of the first failure. */
  | { kind: 'unknown'; reason: FailureReason; why: string }
  | { kind: 'unavailable'; why: string };

export interface RecipientCheckOptions {
  /** Whether an address is this host's (Locality.isLocal). */
  isLocal: (address: string) => boolean;
  /** Failed members read before a list is accepted anyway (default 32). */
  probeLimit?: number;
}

export async function checkRecipient(directory: RecipientDirectory, address: string, opts: RecipientCheckOptions): Promise<RecipientCheck> {
  const limit = opts.probeLimit ?? 32;
  let first: { reason: FailureReason; why: string } | null = null;
  let failures = 0;
  // A small lookahead: the first member usually decides.
  for await (const item of expandRecipient(directory, address, { isLocal: opts.isLocal, lookahead: 4 })) {
    switch (item.kind) {
      case 'mailbox':
      case 'route':
      case 'discard':
        return { kind: 'accept' };
      case 'unavailable':
        return { kind: 'unavailable', why: item.why };
      case 'failed':
        first ??= { reason: item.reason, why: item.why };
        if (++failures >= limit) return { kind: 'accept' };
    }
  }
  return { kind: 'unknown', ...(first ?? { reason: 'unknown', why: `no such user: ${address}` }) };
}
