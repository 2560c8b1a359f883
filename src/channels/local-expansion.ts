// The local channel's expansion of one recipient that is a list, an alias or a user with
// forwarding addresses (directory/expand.ts), files and LDAP alike, in the way Postfix's local(8)
// expands aliases and hands what is not a local mailbox back to the queue:
//   - the directory's items are streamed: each member is planned (expansion-plan.ts) and copies
//     for other channels are gathered per (channel, envelope sender) into queue files of at most
//     the channel's file size (`single`, `addrsperfile`, else COPIES_PER_FILE recipients), each
//     written as soon as it is full, so a 100,000-member list holds one file's recipients in
//     memory at a time, never the list;
//   - those files are written held (`.HELD`: never scheduled) and released only when the whole
//     expansion has succeeded; a directory that stops answering part way removes them and defers
//     the recipient (4.4.3), so a retry never sends the first members a second copy;
//   - local mailboxes are delivered by this job (up to DIRECT_LIMIT of them; beyond, they are
//     queued back to channel l marked with their mailbox, delivered there without a lookup);
//   - members that get nothing are told to the list's owner (else the sender) in one DSN per
//     owner (the first MAX_REPORTED of them listed), with an R record each in mail.log: never a
//     silent drop.
// Each copy carries a Delivered-To: line naming the expanded recipient, as Postfix's forwarding
// does, so a copy that comes back here is caught as a forwarding loop.
import type { Logger } from '../common/logger.js';
import type { MailLog, MailLogRecord } from '../common/mail-log.js';
import { expandRecipient } from '../directory/expand.js';
import type { RecipientDirectory } from '../directory/types.js';
import type { NoticeSender } from '../notices/send.js';
import type { DsnRecipient } from '../notices/dsn.js';
import type { EnvelopeDraft, MailParams, QueuedRecipient, QueueRef, QueueStore } from '../queue/index.js';
import type { DeliveryItem } from './types.js';
import { planCopy, type CopyRecipient, type PlanContext } from './expansion-plan.js';

/** Recipients per copy file on a channel without `single` or `addrsperfile`. */
const COPIES_PER_FILE = 1000;
/** Local mailboxes one expansion delivers itself; the others are queued back to channel l. */
const DIRECT_LIMIT = 100;
/** Failed members listed in the owners' notices (and mail.log); the rest are counted. */
const MAX_REPORTED = 1000;

export interface ExpansionDeps {
  directory: RecipientDirectory;
  isLocal: (address: string) => boolean;
  route: PlanContext['route'];
  /** The envelope sender of a copy of a message that came in on `sourceChannel` (SRS). */
  senderFor(sourceChannel: string, from: string, channel: string): string;
  /** Recipients per queue file on a channel (0: COPIES_PER_FILE). */
  filesize(channel: string): number;
  /** The local channel's name as configured. */
  localChannel: string;
  store: QueueStore;
  notices: NoticeSender;
  mailLog: MailLog;
  logger: Logger;
  now(): number;
  directLimit?: number;
  maxReported?: number;
}

export interface ExpansionRequest {
  item: DeliveryItem;
  recipient: QueuedRecipient;
  /** The queued message's bytes (after the envelope), again for each copy file. */
  body: () => Promise<Buffer | NodeJS.ReadableStream>;
}

export interface DirectMailbox {
  mailbox: string;
  /** The user's address as the directory knows it. */
  address: string;
  /** Return-Path: the list's owner, else the message's sender. */
  from: string;
}

export interface ExpansionSummary {
  /** Recipients in copy files. */
  queued: number;
  discarded: boolean;
  failed: number;
  /** The first few failed members, for the status text. */
  failedMembers: string[];
  /** Who the failures are reported to. */
  reportedTo: string[];
}

export type ExpansionOutcome =
  /** The directory could not answer: nothing was kept; defer the recipient. */
  | { kind: 'unavailable'; why: string }
  /** Nothing to deliver to: fail the recipient with this status (its own DSN tells the sender). */
  | { kind: 'nothing'; status: string }
  | { kind: 'expanded'; direct: DirectMailbox[]; summary: ExpansionSummary; copies: PendingCopies };

/** The copies and notices of a finished expansion, not yet let go. */
export interface PendingCopies {
  /** Queues the owners' notices, then releases the copy files; the files now on their way. */
  commit(): Promise<QueueRef[]>;
  /** Removes the copy files (a mailbox could not be written: the recipient is tried again). */
  abort(): Promise<void>;
}

interface Failure {
  member: string;
  status: string;
}

export async function expandForDelivery(deps: ExpansionDeps, req: ExpansionRequest): Promise<ExpansionOutcome> {
  const { envelope } = req.item;
  const directLimit = deps.directLimit ?? DIRECT_LIMIT;
  const maxReported = deps.maxReported ?? MAX_REPORTED;
  const ctx: PlanContext = {
    recipient: req.recipient,
    from: envelope.from,
    mailParams: envelope.mailParams,
    route: deps.route,
    senderFor: (from, channel) => deps.senderFor(envelope.sourceChannel, from, channel),
  };
  const writer = new CopyWriter(deps, req, Buffer.from(`Delivered-To: ${req.recipient.address}\r\n`, 'utf8'));
  const direct: DirectMailbox[] = [];
  const failures = new Map<string | null, Failure[]>();
  const summary: ExpansionSummary = { queued: 0, discarded: false, failed: 0, failedMembers: [], reportedTo: [] };
  let reported = 0;
  let firstFailure: string | null = null;
  try {
    for await (const item of expandRecipient(deps.directory, req.recipient.address, { isLocal: deps.isLocal })) {
      const plan = planCopy(item, ctx);
      switch (plan.kind) {
        case 'unavailable':
          await writer.discard();
          return { kind: 'unavailable', why: plan.why };
        case 'discard':
          summary.discarded = true;
          break;
        case 'mailbox':
          if (direct.length < directLimit) direct.push({ mailbox: plan.mailbox, address: plan.address, from: plan.from });
          else await writer.add(deps.localChannel, plan.from, plan.mailParams, plan.recipient);
          break;
        case 'queue':
          await writer.add(plan.channel, plan.from, plan.mailParams, plan.recipient);
          break;
        case 'failed': {
          firstFailure ??= plan.status;
          summary.failed++;
          if (summary.failedMembers.length < 5) summary.failedMembers.push(plan.member);
          if (reported < maxReported) {
            reported++;
            const list = failures.get(plan.reportTo) ?? [];
            list.push({ member: plan.member, status: plan.status });
            failures.set(plan.reportTo, list);
          }
          break;
        }
      }
    }
    await writer.finish();
  } catch (err) {
    await writer.discard();
    throw err;
  }
  summary.queued = writer.queued;
  if (direct.length === 0 && writer.queued === 0 && !summary.discarded) {
    await writer.discard();
    return { kind: 'nothing', status: firstFailure ?? `550 5.1.1 <${req.recipient.address}>: user unknown` };
  }
  summary.reportedTo = [...failures.keys()].filter((k): k is string => k !== null);
  if (summary.failed > reported) deps.logger.warn({ id: envelope.id, rcpt: req.recipient.address, failed: summary.failed, reported }, 'more failed list members than one notice lists');
  const commit = async (): Promise<QueueRef[]> => {
    const refs = await reportFailures(deps, req, failures);
    return [...refs, ...(await writer.release())];
  };
  return { kind: 'expanded', direct, summary, copies: { commit, abort: () => writer.discard() } };
}

/** One DSN per owner (or sender) for its failed members, and their R records. */
async function reportFailures(deps: ExpansionDeps, req: ExpansionRequest, failures: Map<string | null, Failure[]>): Promise<QueueRef[]> {
  const { envelope } = req.item;
  const refs: QueueRef[] = [];
  const now = new Date(deps.now());
  const records: MailLogRecord[] = [];
  for (const [to, list] of failures) {
    let note = 'nobody told (null sender or NOTIFY)';
    if (to !== null) {
      const recipients: DsnRecipient[] = list.map((f) => ({ address: f.member, orcpt: null, action: 'failed', status: f.status, remoteHost: null }));
      // To a list's owner: a notice of the list's, without the sender's ENVID.
      const { envid: _envid, ...ownerParams } = envelope.mailParams;
      const mailParams = to === envelope.from ? envelope.mailParams : ownerParams;
      try {
        const result = await deps.notices.send({ envelope: { ...envelope, from: to, mailParams }, path: req.item.ref.path, recipients, now, willRetryUntil: null });
        if (result.sent) {
          refs.push(result.ref);
          note = `reported to <${to}>`;
        } else note = `not reported: ${result.reason}`;
      } catch (err) {
        // The copies still go (the members that can be reached get the mail); mail.log keeps the failures.
        deps.logger.error({ err, id: envelope.id, to }, 'cannot queue the notice of failed list members');
        note = `the notice to <${to}> could not be queued: ${(err as Error).message}`;
      }
    }
    for (const f of list) {
      records.push({ event: 'R', id: envelope.id, source: envelope.sourceChannel, destination: envelope.channel, size: envelope.mailParams.size ?? 0, from: to ?? envelope.from, recipient: f.member, status: `${f.status} (member of ${req.recipient.address}; ${note})` });
    }
  }
  writeLog(deps, records);
  return refs;
}

function writeLog(deps: ExpansionDeps, records: MailLogRecord[]): void {
  try {
    deps.mailLog.write(records);
  } catch (err) {
    deps.logger.warn({ err }, 'cannot write mail.log');
  }
}

interface Batch {
  channel: string;
  from: string;
  mailParams: MailParams;
  recipients: QueuedRecipient[];
  seen: Set<string>;
}

/** The copy files of one expansion: gathered per (channel, sender), written held when full. */
class CopyWriter {
  private readonly batches = new Map<string, Batch>();
  private readonly held: QueueRef[] = [];
  queued = 0;

  constructor(
    private readonly deps: ExpansionDeps,
    private readonly req: ExpansionRequest,
    private readonly prefix: Buffer,
  ) {}

  async add(channel: string, from: string, mailParams: MailParams, recipient: CopyRecipient): Promise<void> {
    const key = `${channel.toLowerCase()}\0${from}\0${mailParams.ret ?? ''}\0${mailParams.envid ?? ''}`;
    let batch = this.batches.get(key);
    if (!batch) {
      batch = { channel, from, mailParams, recipients: [], seen: new Set() };
      this.batches.set(key, batch);
    }
    const seen = `${recipient.address.toLowerCase()}\0${recipient.mailbox ?? ''}`;
    if (batch.seen.has(seen)) return;
    batch.seen.add(seen);
    batch.recipients.push({ ...recipient, state: 'pending', status: null });
    this.queued++;
    const size = this.deps.filesize(channel) || COPIES_PER_FILE;
    if (batch.recipients.length >= size) {
      this.batches.delete(key);
      await this.write(batch);
    }
  }

  async finish(): Promise<void> {
    const batches = [...this.batches.values()];
    this.batches.clear();
    for (const b of batches) await this.write(b);
  }

  /** Lets the files go to their channels; the E records of mail.log from each file's envelope. */
  async release(): Promise<QueueRef[]> {
    const released: QueueRef[] = [];
    const { store, logger } = this.deps;
    for (const ref of this.held.splice(0)) {
      let out: QueueRef;
      try {
        out = await store.release(ref);
      } catch (err) {
        // Not lost: it stays held, for the operator (imsimta qm release).
        logger.error({ err, id: ref.id, path: ref.path }, 'cannot release a list copy; it stays held');
        continue;
      }
      released.push(out);
      const envelope = await store.readEnvelope(out.path).catch(() => null);
      if (!envelope) continue;
      const original = this.req.item.envelope;
      writeLog(
        this.deps,
        envelope.recipients.map((r) => ({ event: 'E', id: envelope.id, source: original.channel, destination: envelope.channel, size: original.mailParams.size ?? 0, from: envelope.from, recipient: r.address, status: `expanded from ${this.req.recipient.address} (${original.id})` })),
      );
    }
    return released;
  }

  /** Removes the files written so far. */
  async discard(): Promise<void> {
    this.batches.clear();
    for (const ref of this.held.splice(0)) {
      await this.deps.store.remove(ref).catch((err: Error) => this.deps.logger.error({ err, id: ref.id }, 'cannot remove an abandoned list copy; it stays held'));
    }
  }

  private async write(batch: Batch): Promise<void> {
    if (batch.recipients.length === 0) return;
    const original = this.req.item.envelope;
    const draft: EnvelopeDraft = {
      channel: batch.channel,
      from: batch.from,
      mailParams: batch.mailParams,
      sourceChannel: original.sourceChannel,
      clientAddress: original.clientAddress,
      clientHelo: original.clientHelo,
      arrival: new Date(this.deps.now()),
      recipients: batch.recipients,
      held: true,
    };
    const tx = this.deps.store.begin([draft]);
    try {
      await tx.write(this.prefix);
      const body = await this.req.body();
      if (Buffer.isBuffer(body)) await tx.write(body);
      else for await (const chunk of body as AsyncIterable<Buffer | string>) await tx.write(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, 'latin1'));
      const [file] = await tx.commit();
      // Only where it is: the commit's envelope (a file's worth of recipients) is not kept alive.
      this.held.push({ id: file!.id, channel: file!.channel, path: file!.path });
    } catch (err) {
      await tx.abort().catch(() => {});
      throw err;
    }
  }
}
