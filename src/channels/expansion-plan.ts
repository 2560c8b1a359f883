// What each item of a list or forwarding expansion (directory/expand.ts) becomes when the local
// channel expands a recipient (pure; local-expansion.ts does the I/O):
//   mailbox   a local mailbox (delivered by this job, or queued back to channel l marked with it);
//   queue     a copy for another channel: the member routed by the rewrite rules like any other
//             recipient, its envelope sender the innermost list's owner (owner-LIST, mgrpErrorsTo)
//             or else the message's, SRS-encoded when the channels ask for it;
//   discard   /dev/null;
//   failed    a member that gets nothing, with the status of its DSN and who is told (the list's
//             owner; else the sender, as the recipient's NOTIFY allows).
// RFC 3461 §6.2.7: through a list with an owner the copies are new messages of the owner (no
// ENVID, RET, ORCPT or NOTIFY carried over, nor the message's XVERP: the owner's sender is not the
// one its submitter asked to VERP, and the `verp` keyword of the copies' channel still applies);
// through an alias or a forwarding address they keep the recipient's NOTIFY and ORCPT, and the
// message's XVERP with its sender.
import type { ExpandedRecipient, FailureReason, ListContext } from '../directory/expand.js';
import type { MailParams, QueuedRecipient } from '../queue/types.js';

export interface PlanContext {
  /** The recipient being expanded, as queued to channel l. */
  recipient: QueuedRecipient;
  /** The message's envelope sender ('' for the null sender). */
  from: string;
  mailParams: MailParams;
  /** The rewrite rules' routing of an address, as a recipient from channel l. */
  route(address: string): { ok: true; channel: string; address: string } | { ok: false; error: string; temporary?: boolean };
  /** The envelope sender of a copy from `from` queued to `channel` (SRS: srs/copy-sender.ts). */
  senderFor(from: string, channel: string): string;
}

/** A recipient of a copy, before it is queued. */
export type CopyRecipient = Pick<QueuedRecipient, 'address' | 'original' | 'orcpt' | 'notify'> & { mailbox?: string };

export type CopyPlan =
  | { kind: 'mailbox'; mailbox: string; address: string; from: string; mailParams: MailParams; recipient: CopyRecipient }
  | { kind: 'queue'; channel: string; from: string; mailParams: MailParams; recipient: CopyRecipient }
  | { kind: 'discard' }
  /** `reportTo`: the owner, or the sender; null when nobody is told (null sender, NOTIFY=NEVER). */
  | { kind: 'failed'; member: string; status: string; reportTo: string | null }
  | { kind: 'unavailable'; why: string };

export function planCopy(item: ExpandedRecipient, ctx: PlanContext): CopyPlan {
  switch (item.kind) {
    case 'unavailable':
      return { kind: 'unavailable', why: item.why };
    case 'discard':
      return { kind: 'discard' };
    case 'failed':
      return { kind: 'failed', member: item.member, status: failureStatus(item.reason, item.member, item.why), reportTo: reportTo(item.list, ctx) };
    case 'mailbox': {
      const from = listSender(item.list, ctx.from);
      return { kind: 'mailbox', mailbox: item.mailbox, address: item.address, from, mailParams: copyParams(item.list, ctx.mailParams), recipient: { ...copyRecipient(item.address, item.list, ctx), mailbox: item.mailbox } };
    }
    case 'route': {
      const route = ctx.route(item.address);
      // The rules cannot decide yet (hosted domains unknown): the whole message is tried again later.
      if (!route.ok && route.temporary) return { kind: 'unavailable', why: route.error };
      if (!route.ok) return { kind: 'failed', member: item.address, status: `550 5.1.2 <${item.address}>: ${route.error}`, reportTo: reportTo(item.list, ctx) };
      const from = ctx.senderFor(listSender(item.list, ctx.from), route.channel);
      return { kind: 'queue', channel: route.channel, from, mailParams: copyParams(item.list, ctx.mailParams), recipient: copyRecipient(route.address, item.list, ctx) };
    }
  }
}

/** The envelope sender of list mail: the innermost list's owner, else the message's. */
function listSender(list: ListContext | null, from: string): string {
  return list?.owner ?? from;
}

/** The DSN status of a member that gets nothing (RFC 3463 codes). */
export function failureStatus(reason: FailureReason, member: string, why: string): string {
  switch (reason) {
    case 'unknown':
      return `550 5.1.1 <${member}>: user unknown`;
    case 'loop':
      return `554 5.4.6 ${why}`;
    case 'no-delivery':
      return `550 5.2.1 ${why}`;
    case 'include':
    case 'invalid':
    case 'too-deep':
      // 5.2.4: mailing list expansion problem.
      return `550 5.2.4 ${member}: ${why}`;
  }
}

function reportTo(list: ListContext | null, ctx: PlanContext): string | null {
  if (list?.owner) return list.owner;
  if (ctx.from === '' || !wantsFailureNotice(ctx.recipient.notify)) return null;
  return ctx.from;
}

function wantsFailureNotice(notify: string[] | null): boolean {
  if (!notify || notify.length === 0) return true;
  const set = new Set(notify.map((n) => n.toUpperCase()));
  return !set.has('NEVER') && set.has('FAILURE');
}

function copyRecipient(address: string, list: ListContext | null, ctx: PlanContext): CopyRecipient {
  const r = ctx.recipient;
  if (list?.owner) return { address, original: address, orcpt: null, notify: null };
  return { address, original: address, orcpt: r.orcpt ?? `rfc822;${r.address}`, notify: r.notify };
}

function copyParams(list: ListContext | null, params: MailParams): MailParams {
  const { size: _size, ...rest } = params;
  if (!list?.owner) return rest;
  const { ret: _ret, envid: _envid, verp: _verp, ...kept } = rest;
  return kept;
}
