// The delivery planner (pure): which recipients go to which host, in which transactions.
// SMTPfeed §3.1–3.2: recipients are grouped by their first usable MX host *address* across
// domains (piggybacking), each message's recipients to one host go in transactions of at most
// rcptPerTransaction RCPTs, run one after another on one connection; different hosts run in
// parallel up to the connection limit. After a host failure the caller marks it unavailable and
// plans again: the affected domains fall to their next MX, and a backup MX that is another
// domain's primary gets their recipients piggybacked onto the same connection.
import type { Target } from './mx.js';

export interface PlanRecipient {
  /** The caller's handle for the recipient. */
  id: number;
  /** The caller's handle for the message (transactions never mix messages). */
  message: number;
  /** Where this recipient can go, best first. */
  targets: Target[];
}

export interface PlanInput {
  recipients: PlanRecipient[];
  /** True when the target is not to be used for this recipient (host unreachable, or already tried for it). */
  unavailable(target: Target, recipientId: number): boolean;
  rcptPerTransaction: number;
  maxConnections: number;
}

export interface PlannedTransaction {
  message: number;
  recipients: number[];
}

export interface HostPlan {
  target: Target;
  transactions: PlannedTransaction[];
}

export interface Plan {
  /** Hosts with most recipients first, so the longest queues start earliest. */
  hosts: HostPlan[];
  /** Recipients with no usable target left. */
  exhausted: number[];
  /** How many hosts to work on at once. */
  concurrency: number;
}

export function planDeliveries(input: PlanInput): Plan {
  const perRcpt = Math.max(1, Math.floor(input.rcptPerTransaction));
  const groups = new Map<string, { target: Target; byMessage: Map<number, number[]>; count: number; order: number }>();
  const exhausted: number[] = [];
  for (const r of input.recipients) {
    const target = r.targets.find((t) => !input.unavailable(t, r.id));
    if (!target) {
      exhausted.push(r.id);
      continue;
    }
    let g = groups.get(target.key);
    if (!g) {
      g = { target, byMessage: new Map(), count: 0, order: groups.size };
      groups.set(target.key, g);
    }
    const list = g.byMessage.get(r.message) ?? [];
    list.push(r.id);
    g.byMessage.set(r.message, list);
    g.count++;
  }
  const hosts = [...groups.values()]
    .sort((a, b) => b.count - a.count || a.order - b.order)
    .map((g): HostPlan => {
      const transactions: PlannedTransaction[] = [];
      for (const message of [...g.byMessage.keys()].sort((a, b) => a - b)) {
        const ids = g.byMessage.get(message)!;
        for (let i = 0; i < ids.length; i += perRcpt) transactions.push({ message, recipients: ids.slice(i, i + perRcpt) });
      }
      return { target: g.target, transactions };
    });
  return { hosts, exhausted, concurrency: Math.min(Math.max(1, input.maxConnections), hosts.length) };
}
