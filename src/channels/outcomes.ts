// One answer for every recipient still pending in a batch: a job that failed as a whole, or a
// channel that settles everything the same way (bitbucket).
import type { DeliveryItem, MessageOutcome, RecipientResult } from './types.js';

export function everyPendingAs(items: readonly DeliveryItem[], result: RecipientResult, status: string): MessageOutcome[] {
  return items.map((item) => ({
    ref: item.ref,
    recipients: item.envelope.recipients.filter((r) => r.state === 'pending').map((r) => ({ address: r.address, result, status, remoteHost: null })),
  }));
}
