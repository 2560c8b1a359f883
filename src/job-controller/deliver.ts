// Handing a batch to its job (Postfix's qmgr_deliver.c): the envelopes gathered (kept from
// admission or read again; a corrupt or vanished file drops out), a message with nothing left to
// try (or past its last notices age) settled at once without a job, the rest run in the channel's
// pool, and every outcome settled. A job that fails defers its whole batch with the reason.
import type { Channel, InstanceConfig } from '../config/types.js';
import type { DeliveryItem, MessageOutcome } from '../channels/types.js';
import { everyPendingAs } from '../channels/outcomes.js';
import type { Logger } from '../common/logger.js';
import type { Envelope } from '../queue/index.js';
import { noticeDue } from '../notices/schedule.js';
import { outcomePolicy, poolFor } from './config.js';
import { channelProgram } from '../channels/index.js';
import type { DeliveryStatsBook } from './delivery-stats.js';
import type { Intake } from './intake.js';
import type { IndexedMessage } from './message-index.js';
import { forEachLimited } from './parallel.js';
import type { JobRunner } from './runner.js';
import type { Settler } from './settle.js';

/** Reads of envelopes at once for a batch. */
const READ_PARALLEL = 32;

/** A batch a job took (scheduler.ts). */
export interface Batch {
  channel: Channel;
  pool: string;
  messages: IndexedMessage[];
  /** MAX_LIFE_AGE: the batch's time limit. */
  timeoutMs: number;
}

export interface DeliveryParts {
  intake: Intake;
  settler: Settler;
  runner: JobRunner;
  deliveryStats: DeliveryStatsBook;
  config(): InstanceConfig;
  /** The configuration's generation (a reload) and the operator's flushes so far: jobs start afresh when they change (job-host.ts). */
  generations(): { config: number; flush: number };
  logger: Logger;
  now(): number;
  /** Messages were admitted: start their jobs. */
  kick?(): void;
}

/** Delivers a batch and settles its outcomes; resolves with the job's thread when a job ran. */
export async function deliverBatch(parts: DeliveryParts, { channel, pool, messages, timeoutMs }: Batch): Promise<number | null> {
  const { intake, settler, logger } = parts;
  const items: Array<{ entry: IndexedMessage; item: DeliveryItem }> = [];
  const policy = outcomePolicy(parts.config(), channel);
  await forEachLimited(messages, READ_PARALLEL, async (entry) => {
    const found = await intake.envelopeForAttempt(entry);
    if (!found) return;
    const envelope = withSize(found.envelope, found.size);
    const pending = envelope.recipients.some((r) => r.state === 'pending');
    const expired = noticeDue(policy.noticesMs, parts.now() - envelope.arrival.getTime(), Number.MAX_SAFE_INTEGER).kind === 'return';
    if (!pending || expired) {
      await settler.settle({ entry, envelope, outcomes: [] }, channel);
      return;
    }
    items.push({ entry, item: { ref: { id: entry.id, channel: entry.channel, path: entry.path }, envelope } });
  });
  if (items.length === 0) return null;

  let outcomes: MessageOutcome[];
  let thread: number | null = null;
  try {
    const { config, flush } = parts.generations();
    const result = await parts.runner.run(pool, { channel: channel.name, generation: config, flushGeneration: flush, config: parts.config(), items: items.map((i) => i.item) }, timeoutMs);
    thread = result.threadId;
    outcomes = result.outcomes;
    parts.deliveryStats.add(channel.name, result.delivery);
  } catch (err) {
    const reason = (err as Error).message ?? String(err);
    logger.error({ channel: channel.name, messages: items.length, error: reason }, 'delivery job failed; its messages will be retried');
    outcomes = everyPendingAs(
      items.map(({ item }) => item),
      'deferred',
      `451 4.3.0 delivery job failed: ${reason}`,
    );
  }
  const byId = new Map(outcomes.map((o) => [o.ref.id, o]));
  await settler.settleBatch(
    items.map(({ entry, item }) => ({ entry, envelope: item.envelope, outcomes: byId.get(entry.id)?.recipients ?? [] })),
    channel,
  );
  // Files the job queued (the local channel's list copies and notices): on disk already, tried now.
  const enqueued = outcomes.flatMap((o) => o.enqueued ?? []);
  if (enqueued.length > 0 && (await intake.admitEnqueued(enqueued)) > 0) queueMicrotask(() => parts.kick?.());
  return thread;
}

/**
 * Makes the SMTP channels' jobs in their threads ahead of their first batch (the configuration
 * copied in, the fan-out and its DNS client made): after a start or a reload, the first message
 * does not wait for that (about half a second on a busy 2-core machine).
 */
export function prepareChannels(parts: Pick<DeliveryParts, 'runner' | 'config' | 'generations' | 'logger'>): void {
  const { runner } = parts;
  if (!runner.prepare) return;
  const config = parts.config();
  const { config: generation, flush } = parts.generations();
  for (const channel of config.imta.channels) {
    if (channelProgram(channel) !== 'smtp') continue;
    void runner.prepare(poolFor(config, channel).name, { channel: channel.name, generation, flushGeneration: flush, config, items: [] }).catch((err: Error) =>
      parts.logger.warn({ channel: channel.name, error: err.message }, "could not prepare the channel's delivery job"),
    );
  }
}

/** The message size for mail.log, when the envelope does not carry it (SIZE= is optional). */
function withSize(envelope: Envelope, size: number): Envelope {
  return envelope.mailParams.size ? envelope : { ...envelope, mailParams: { ...envelope.mailParams, size } };
}
