// The SMTP/LMTP delivery engine of a channel job: for a batch of messages it takes the pending
// recipients (recipients.ts), looks up every destination at once (destinations.ts), then runs the
// hosts in parallel with one connection each and fails over down the MX lists (host-run.ts),
// each transaction's replies turned into per-recipient outcomes by the error policy
// (transaction.ts, reply-policy.ts). Before each transaction the message is checked for a loop
// (too many hops) and fitted to what the server offered, 8BITMIME and SMTPUTF8 (message-prep.ts),
// and its recipients passed by the outbound TLS policy over the session (tls-gate.ts: musttls,
// MTA-STS, DANE); a `verp` channel sends each recipient alone with its own sender (verp.ts).
import { abortedResolution, Destinations, type Resolution } from './destinations.js';
import type { EngineContext } from './engine-context.js';
import { HostRun } from './host-run.js';
import { RecipientBook, type RunRecipient } from './recipients.js';
import type { DeliveryItem, MessageOutcome } from './types.js';

export { newEngineStats, type EngineStats } from './engine-context.js';

export async function deliverWithEngine(items: DeliveryItem[], ctx: EngineContext): Promise<MessageOutcome[]> {
  const book = new RecipientBook(items);

  // Destinations, all looked up at once (SMTPfeed §3.5); each recipient waits for its own.
  const destinations = new Destinations(ctx);
  const lookups = book.distinct().map((r): [RunRecipient, Promise<Resolution>] => [r, destinations.lookup(r.rcptTo)]);
  const active: RunRecipient[] = [];
  const abandoned = abortedResolution(ctx.signal);
  for (const [r, lookup] of lookups) {
    const res = abandoned ? await Promise.race([lookup, abandoned]) : await lookup;
    if (!res.ok) {
      book.decide(r, res.result, res.status, null);
      continue;
    }
    r.targets = typeof res.targets === 'function' ? res.targets(r.message) : res.targets;
    r.sts = res.sts ?? null;
    active.push(r);
  }

  // Plan, run hosts in parallel, re-plan after host failures.
  if (active.length) await new HostRun(active, book, items, ctx).run();

  // Outcomes, per message, in envelope order.
  return book.outcomes(items);
}
