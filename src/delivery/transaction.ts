// One transaction on an open session: the TLS policy's word on its recipients (tls-gate.ts), the
// message made ready for this server (message-prep.ts), MAIL (the channel's envelope sender, or
// with `verp` or the message's XVERP the recipient's own, verp.ts), RCPT and DATA sent, and the replies turned into
// recipient outcomes by the error policy (reply-policy.ts) and recorded (recipients.ts).
import type { EngineContext } from './engine-context.js';
import { prepareMessage } from './message-prep.js';
import type { PlannedTransaction } from './planner.js';
import type { RecipientBook } from './recipients.js';
import { judgeTransaction } from './reply-policy.js';
import type { SendOutcome, SmtpSession } from './smtp-client.js';
import { describeHost } from './status.js';
import type { GateVerdict } from './tls-gate.js';
import type { DeliveryItem } from './types.js';
import { transactionSender, verpDelimitersOf } from './verp.js';

interface TransactionResult {
  /** The status when the connection broke (its recipients, `brokenIds`, are undecided and try their next MX). */
  broken: string | null;
  brokenIds?: number[];
  /** Recipients the server refused only because the transaction had too many: for the next one. */
  overflow: number[];
  /** Recipients the TLS policy would not send over this session, per domain: they try their next MX. */
  refused: GateVerdict['refused'];
  /** What the server answered (null: not sent), for traffic shaping. */
  outcome: SendOutcome | null;
}

export async function runTransaction(session: SmtpSession, tx: PlannedTransaction, items: DeliveryItem[], book: RecipientBook, ctx: EngineContext): Promise<TransactionResult> {
  const item = items[tx.message]!;
  const host = describeHost(session.target);
  const env = item.envelope;
  // The TLS policy first: the recipients of a domain it refuses over this session go back, as for a host failure.
  const gate = await ctx.tls.check(session, tx.recipients.map((id) => book.get(id)));
  const rcpts = gate.allowed;
  if (rcpts.length === 0) return { broken: null, overflow: [], refused: gate.refused, outcome: null };
  // A VERPed message (`verp`, XVERP): the fan-out gives each recipient a transaction of its own, and this sender.
  const from = transactionSender(ctx.channel, env.from, rcpts[0]!.rcptTo, verpDelimitersOf(ctx.channel, env.mailParams, ctx.verpDelimiters));
  const prepared = await prepareMessage(item, from, rcpts.map((r) => r.rcptTo), session, ctx);
  if (!prepared.ok) {
    for (const r of rcpts) book.decide(r, prepared.result, prepared.status, prepared.byServer ? host : null, prepared.byServer ? gate.tlsOf(r) : null);
    return { broken: null, overflow: [], refused: gate.refused, outcome: null };
  }
  const outcome: SendOutcome = await session.send({
    from,
    to: rcpts.map((r) => r.rcptTo),
    body: prepared.body,
    ret: env.mailParams.ret,
    envid: env.mailParams.envid,
    use8BitMime: prepared.use8BitMime,
    smtpUtf8: prepared.smtpUtf8,
    rcptDsn: new Map(rcpts.map((r) => [r.rcptTo, r.dsn])),
  });
  ctx.stats.transactions++;
  const verdict = judgeTransaction(outcome, rcpts);
  if (verdict.kind === 'broken') return { broken: verdict.status, brokenIds: rcpts.map((r) => r.id), overflow: [], refused: gate.refused, outcome };
  const overflow: number[] = [];
  verdict.recipients.forEach((v, i) => {
    const r = rcpts[i]!;
    if (v.kind === 'overflow') {
      r.overflows++;
      overflow.push(r.id);
    } else {
      book.decide(r, v.result, v.status, v.byServer ? host : null, v.byServer ? gate.tlsOf(r) : null);
    }
  });
  return { broken: null, overflow, refused: gate.refused, outcome };
}
