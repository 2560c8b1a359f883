// The end of DATA for a message the checks must read before it is stored (a session with milters
// or whose mail is verified): the data is spooled as it arrives (in memory, a large message in a
// temporary file of queue/.tmp), the end-of-DATA checks read it there (verification on the
// message as received, then the milters), and only then is the message written into the queue,
// once, by an enqueue transaction with its final recipients, header section and body: our
// Authentication-Results and Received: on top, the filters' changes carried out. So the queue
// files are never rewritten, a refused or discarded message never touches a channel queue, and
// the DKIM signer of a `dkimsign` channel (which sees what the transaction writes) signs the
// header the filters left. The 250 still waits for the transaction's fsync; whatever fails, the
// spool is removed and the client keeps the message (4xx).
import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import type { EnqueueTransaction } from '../queue/index.js';
import type { CommittedFile, EnvelopeDraft } from '../queue/types.js';
import { routeRecipient } from '../rewrite/index.js';
import { DATA_CHECKS, type MessageCommand } from './data-checks.js';
import type { DataLimits } from './data-guard.js';
import { planDrafts, senderPerChannel, type AcceptedRecipient, type MessageFacts } from './envelope-plan.js';
import type { InboundSession } from './inbound-session.js';
import { readData, violationReply, type EnqueueStore } from './message-receiver.js';
import { finalMessage, readHeaderSection } from './message-edits.js';
import { fromMilter } from './milter-checks.js';
import { ownFields } from './milter-message.js';
import { REPLIES, messageTooBig, type SmtpReply } from './replies.js';
import { refusalStatus, runChecks, type StageServices, type Verdict } from './stages.js';
import { QueueWriteError } from '../queue/errors.js';

/** A header section longer than this is refused (552 5.3.4): the checks hold it in memory. */
const MAX_HEADER_SECTION = 1024 * 1024;

export interface InspectRequest {
  stream: SMTPServerDataStream;
  smtp: SMTPServerSession;
  session: InboundSession;
  services: StageServices;
  store: EnqueueStore;
  limits: DataLimits;
  messageId: string;
  /** Our Received: field (ending in CRLF). */
  received: string;
  facts: MessageFacts;
  recipients: readonly AcceptedRecipient[];
}

/** What became of the message (the data stage logs it and answers). */
export type Stored =
  /** `drafts`: what was written (final recipients, sender, held); `bytes`: octets stored per file. */
  | { kind: 'queued'; refs: CommittedFile[]; drafts: EnvelopeDraft[]; size: number; bytes: number; storeMs: number }
  /** Accepted and not queued: a filter's or an access table's discard, or no recipient left. */
  | { kind: 'discarded'; reason: string; size: number }
  | { kind: 'refused'; reply: SmtpReply; violation: string; size: number }
  | { kind: 'rejected'; reply: SmtpReply; status: string; size: number }
  | { kind: 'failed'; reply: SmtpReply; error: Error; size: number }
  | { kind: 'aborted'; size: number };

export async function receiveInspected(req: InspectRequest): Promise<Stored> {
  const { smtp, session, services, store, messageId } = req;
  const spool = store.spool(messageId);
  const milter = session.policy.milter;
  // The filters hear DATA while the data already arrives (smtp-server has answered 354).
  const dataVerdict = milter ? milter.data(messageId) : null;
  let size = 0;
  try {
    const read = await readData(req.stream, req.limits, spool);
    size = read.size;
    if (!read.complete) return { kind: 'aborted', size };
    if (read.violation) return { kind: 'refused', reply: violationReply(read.violation, req.limits), violation: read.violation, size };
    if (read.storeError) return failed(read.storeError, size);
    await spool.finish();
    if (dataVerdict) {
      const v = fromMilter(await dataVerdict, session);
      if (v.kind === 'refuse') return { kind: 'rejected', reply: v.reply, status: refusalStatus(v), size };
    }
    const section = readHeaderSection(await spool.head(MAX_HEADER_SECTION + 1), spool.size);
    if (!section) {
      const reply = { ...messageTooBig(MAX_HEADER_SECTION), text: `Message header section exceeds ${MAX_HEADER_SECTION} octets` };
      return { kind: 'rejected', reply, status: refusalStatus({ kind: 'refuse', reply }), size };
    }
    const received = { name: 'received', raw: Buffer.from(req.received, 'utf8').toString('latin1') };
    const cmd: MessageCommand = {
      smtp,
      session,
      services,
      from: req.facts.from,
      recipients: req.recipients,
      messageId,
      size,
      received,
      content: { spool, fields: section.fields, bodyOffset: section.bodyOffset },
      edits: { authResults: null, modifications: [] },
    };
    const verdict = await new Promise<Verdict>((resolve, reject) => runChecks(DATA_CHECKS, cmd, resolve, reject));
    if (verdict.kind === 'refuse') return { kind: 'rejected', reply: verdict.reply, status: refusalStatus(verdict), size };
    if (verdict.kind === 'error') return { kind: 'rejected', reply: verdict.reply, status: refusalStatus({ kind: 'refuse', reply: verdict.reply }), size };
    const tx = session.policy.tx;
    if (tx.discard) return { kind: 'discarded', reason: tx.discard, size };

    const final = finalMessage({
      own: ownFields(cmd),
      fields: cmd.content!.fields,
      modifications: cmd.edits.modifications,
      recipients: req.recipients,
      from: req.facts.from,
      route: (address) => routeAdded(address, session, services),
    });
    if (final.unroutable.length) services.logger.warn({ id: messageId, addresses: final.unroutable }, 'a filter added recipients the rewrite rules cannot route; left out');
    const kept = final.recipients.filter((r) => !r.discard);
    if (kept.length === 0) return { kind: 'discarded', reason: final.removed.length ? 'every recipient removed by a filter' : (req.recipients[0]?.discard ?? 'no recipient'), size };
    const finalFacts = { ...req.facts, from: final.from };
    const channels = services.config.imta.channelByName;
    const drafts = planDrafts(finalFacts, kept, channels, senderPerChannel(channels, services.rewriter, services.srs, finalFacts)).map((d) => (tx.hold ? { ...d, held: true } : d));
    return await write(store, drafts, messageId, final.header, final.body ?? spool.read(section.bodyOffset), size);
  } catch (err) {
    return failed(err as Error, size);
  } finally {
    // A transaction the checks did not finish (refused, client gone): the filters forget it.
    if (milter) void milter.abort();
    await spool.dispose();
  }
}

/** The final message into a new enqueue transaction, committed (fsynced) before the answer. */
async function write(store: EnqueueStore, drafts: EnvelopeDraft[], messageId: string, header: Buffer, body: Buffer | AsyncIterable<Buffer>, size: number): Promise<Stored> {
  const began = performance.now();
  let q: EnqueueTransaction | null = null;
  try {
    q = store.begin(drafts, messageId);
    await q.write(header);
    if (Buffer.isBuffer(body)) await q.write(body);
    else for await (const chunk of body) await q.write(chunk);
    const bytes = q.bytes;
    const refs = await q.commit();
    return { kind: 'queued', refs, drafts, size, bytes, storeMs: performance.now() - began };
  } catch (err) {
    await q?.abort().catch(() => {});
    return failed(err as Error, size);
  }
}

/** A recipient a filter added, routed as RCPT routes one (no relay or user check: the filter is the operator's). */
function routeAdded(address: string, session: InboundSession, services: StageServices): AcceptedRecipient | null {
  const rewrite = services.rewriter.rewrite(address, { sourceChannel: session.sourceChannel, direction: 'to' });
  const route = routeRecipient(rewrite, services.config.imta.channelByName);
  if (!route.ok) return null;
  return { channel: route.channel.name, address: route.address, original: address, orcpt: null, notify: null };
}

function failed(error: Error, size: number): Stored {
  return { kind: 'failed', reply: error instanceof QueueWriteError ? REPLIES.storageFull : REPLIES.localError, error, size };
}
