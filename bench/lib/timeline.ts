// Where the time of a fan-out went, from what the simulated hosts saw (pure): per host, when each
// connection opened, was greeted, carried its transactions and closed; per message, when the MTA
// accepted it and when its first and last recipients arrived. Used by bench/fanout-list.ts for its
// digest and its --trace file.
import type { PeerConnection, PeerTransaction } from '../../test/helpers/sim-internet.js';

export interface HostTimeline {
  host: number;
  kind: string;
  connections: Array<{ id: number; opened: number; greeted: number | null; closed: number | null; transactions: number }>;
  /** Transactions in arrival order: connection id, time, message index, recipients. */
  transactions: Array<{ connection: number; at: number; message: number; recipients: number }>;
}

export interface MessageTimeline {
  message: number;
  accepted: number;
  first: number | null;
  last: number | null;
  transactions: number;
}

export interface Timeline {
  hosts: HostTimeline[];
  messages: MessageTimeline[];
}

/** Times relative to `t0` (ms); the message of a transaction from its Message-ID (`messageIndex`). */
export function buildTimeline(
  t0: number,
  peers: Array<{ kind: string; connections: readonly PeerConnection[]; transactions: readonly PeerTransaction[] }>,
  acceptedAt: readonly number[],
  messageIndex: (messageId: string | null) => number,
): Timeline {
  const messages: MessageTimeline[] = acceptedAt.map((a, message) => ({ message, accepted: a - t0, first: null, last: null, transactions: 0 }));
  const hosts = peers.map((p, host): HostTimeline => {
    const perConnection = new Map<number, number>();
    const transactions = p.transactions.map((t) => {
      perConnection.set(t.connection, (perConnection.get(t.connection) ?? 0) + 1);
      const message = messageIndex(t.messageId);
      const at = t.receivedAt - t0;
      const m = messages[message];
      if (m) {
        m.first = m.first === null ? at : Math.min(m.first, at);
        m.last = m.last === null ? at : Math.max(m.last, at);
        m.transactions++;
      }
      return { connection: t.connection, at, message, recipients: t.to.length };
    });
    return {
      host,
      kind: p.kind,
      connections: p.connections.map((c) => ({
        id: c.id,
        opened: c.openedAt - t0,
        greeted: c.greetedAt === null ? null : c.greetedAt - t0,
        closed: c.closedAt === null ? null : c.closedAt - t0,
        transactions: perConnection.get(c.id) ?? 0,
      })),
      transactions,
    };
  });
  return { hosts, messages };
}

function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

const s = (ms: number) => (Number.isNaN(ms) ? '-' : `${(ms / 1000).toFixed(2)}`);

/** A few lines saying where the time went. */
export function digest(t: Timeline): string[] {
  const lines: string[] = [];
  const live = t.hosts.filter((h) => h.kind !== 'dead');
  lines.push(
    'messages (s from the start: accepted / first / last arrival): ' +
      t.messages.map((m) => `#${m.message} ${s(m.accepted)}/${s(m.first ?? NaN)}/${s(m.last ?? NaN)}`).join('  '),
  );
  for (const kind of [...new Set(live.map((h) => h.kind))]) {
    const hs = live.filter((h) => h.kind === kind);
    const conns = hs.map((h) => h.connections.length);
    const hist = new Map<string, number>();
    for (const n of conns) hist.set(n >= 4 ? '4+' : String(n), (hist.get(n >= 4 ? '4+' : String(n)) ?? 0) + 1);
    const firstOpen = hs.map((h) => Math.min(...h.connections.map((c) => c.opened)));
    const firstTx = hs.map((h) => (h.transactions.length ? h.transactions[0]!.at : NaN)).filter((x) => !Number.isNaN(x));
    const lastTx = hs.map((h) => (h.transactions.length ? h.transactions[h.transactions.length - 1]!.at : NaN)).filter((x) => !Number.isNaN(x));
    const setup = hs.flatMap((h) => h.connections.filter((c) => c.greeted !== null).map((c) => c.greeted! - c.opened));
    // Time a connection sat without a transaction after its greeting, before its last one.
    const idle = hs.flatMap((h) =>
      h.connections.map((c) => {
        const txs = h.transactions.filter((x) => x.connection === c.id).map((x) => x.at);
        let gap = 0;
        let prev = c.greeted ?? c.opened;
        for (const at of txs) {
          gap += Math.max(0, at - prev);
          prev = at;
        }
        return gap;
      }),
    );
    lines.push(
      `${kind} hosts (${hs.length}): connections per host ${[...hist].sort().map(([k, v]) => `${k}:${v}`).join(' ')} (total ${conns.reduce((a, b) => a + b, 0)}); ` +
        `first connect p50 ${s(quantile(firstOpen, 0.5))} p90 ${s(quantile(firstOpen, 0.9))} max ${s(Math.max(...firstOpen))}; ` +
        `setup p50 ${s(quantile(setup, 0.5))}; first tx p50 ${s(quantile(firstTx, 0.5))}; last tx p50 ${s(quantile(lastTx, 0.5))} p90 ${s(quantile(lastTx, 0.9))} max ${s(Math.max(...lastTx))}; ` +
        `waiting between transactions per connection p50 ${s(quantile(idle, 0.5))} max ${s(Math.max(...idle))}`,
    );
  }
  return lines;
}
