// Each destination's traffic shaping as the operator sees it (imsimta qm shaping, the metrics, the
// status page): the shaper's snapshot of the destination (limits, connections, rates, throttled
// or not) joined with what the channel's fan-out holds for it (recipients waiting, the oldest
// message, what shaping deferred). Pure: it reads the job controller's status reply (`fanout`).
import type { FanoutStatus } from '../delivery/fanout.js';
import type { ShapingPhase } from '../shaping/index.js';

export interface DestinationShaping {
  channel: string;
  destination: string;
  /** The etc/shaping.cnf section, or null (an MX host under the global options). */
  section: string | null;
  /** MX hosts the fan-out has queues for. */
  hosts: string[];
  phase: ShapingPhase;
  throttled: boolean;
  /** Epoch ms, or null. */
  pausedUntil: number | null;
  connections: number;
  connectionWindow: number;
  maxConnections: number;
  /** MAX_MESSAGES_PER_CONNECTION (0: no limit), and what the destination's 421s taught (null: nothing). */
  maxMessagesPerConnection: number;
  learntMessagesPerConnection: number | null;
  /** Messages per second started lately, and allowed now (null: no limit). */
  messageRate: number;
  allowedRate: number | null;
  maxMessageRate: string | null;
  /** Recipients waiting for the destination in the fan-out (its queue depth in hand). */
  waiting: number;
  /** Arrival (epoch ms) of the oldest message waiting for it, or null. */
  oldest: number | null;
  /** Recipients deferred by shaping since the channel's job started. */
  deferred: number;
  /** Messages started to it, and accepted (by at least one recipient). */
  messagesStarted: number;
  messagesSent: number;
  throttles: number;
  lastThrottle: { at: number; reply: string } | null;
}

/** Every destination of every channel's fan-out, throttled ones first, then by recipients waiting. */
export function shapingView(fanout: Record<string, FanoutStatus>): DestinationShaping[] {
  const rows: DestinationShaping[] = [];
  for (const [channel, status] of Object.entries(fanout)) {
    const held = new Map((status.destinations ?? []).map((d) => [d.destination, d]));
    for (const s of status.shaping ?? []) {
      const d = held.get(s.destination);
      rows.push({
        channel,
        destination: s.destination,
        section: s.section,
        hosts: d?.hosts ?? [],
        phase: s.phase,
        throttled: s.throttled,
        pausedUntil: s.pausedUntil,
        connections: s.connections,
        connectionWindow: s.connectionWindow,
        maxConnections: s.limits.maxConnections,
        maxMessagesPerConnection: s.limits.maxMessagesPerConnection,
        learntMessagesPerConnection: s.learntMessagesPerConnection,
        messageRate: s.messageRate,
        allowedRate: s.allowedRate,
        maxMessageRate: s.limits.maxMessageRate,
        waiting: d?.waiting ?? 0,
        oldest: d?.oldest ?? null,
        deferred: d?.deferred ?? 0,
        messagesStarted: s.messagesStarted,
        messagesSent: s.messagesSent,
        throttles: s.throttles,
        lastThrottle: s.lastThrottle,
      });
    }
  }
  return rows.sort((a, b) => Number(b.throttled) - Number(a.throttled) || b.waiting - a.waiting || a.channel.localeCompare(b.channel) || a.destination.localeCompare(b.destination));
}

/** The destination's state in a few words: `steady`, `slow start`, `paused 42s`, `recovering`. */
export function shapingStateText(r: DestinationShaping, nowMs: number): string {
  if (r.phase === 'paused' && r.pausedUntil !== null) return `paused ${Math.max(0, Math.ceil((r.pausedUntil - nowMs) / 1000))}s`;
  return r.phase === 'slow-start' ? 'slow start' : r.phase;
}

/** Messages per second observed and, when limited, allowed: `2.5/s` or `2.5/s of 10/s`. */
export function shapingRateText(r: DestinationShaping): string {
  const fmt = (v: number) => `${v >= 10 ? Math.round(v) : Number(v.toFixed(2))}/s`;
  return r.allowedRate === null ? fmt(r.messageRate) : `${fmt(r.messageRate)} of ${fmt(r.allowedRate)}`;
}
