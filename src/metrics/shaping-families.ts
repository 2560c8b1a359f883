// Shaping snapshots (src/shaping) as Prometheus metric families (for metrics-text.ts to append):
// per destination, the connections open and allowed, the message rate observed and allowed,
// whether it is throttled, and the messages and throttles counted.
import type { MetricFamily, Sample } from './exposition.js';
import type { ShapingSnapshot } from '../shaping/index.js';

export function shapingFamilies(snapshots: readonly ShapingSnapshot[]): MetricFamily[] {
  const gauge = (name: string, help: string, value: (s: ShapingSnapshot) => number | null): MetricFamily => ({
    name,
    help,
    type: 'gauge',
    samples: snapshots.flatMap((s): Sample[] => {
      const v = value(s);
      return v === null ? [] : [{ labels: { destination: s.destination }, value: v }];
    }),
  });
  const counter = (name: string, help: string, value: (s: ShapingSnapshot) => number): MetricFamily => ({
    name,
    help,
    type: 'counter',
    samples: snapshots.map((s) => ({ labels: { destination: s.destination }, value: value(s) })),
  });
  return [
    gauge('tsubame_shaping_connections', 'Outbound connections open to the destination.', (s) => s.connections),
    gauge('tsubame_shaping_connection_window', 'Connections the slow-start/backoff window allows the destination now.', (s) => s.connectionWindow),
    gauge('tsubame_shaping_max_connections', 'MAX_CONNECTIONS of the destination.', (s) => s.limits.maxConnections),
    gauge('tsubame_shaping_message_rate', 'Messages per second started to the destination (about the last minute).', (s) => s.messageRate),
    gauge('tsubame_shaping_allowed_message_rate', 'Messages per second the destination may get now (absent: no limit).', (s) => s.allowedRate),
    gauge('tsubame_shaping_throttled', '1 while the destination is paused or recovering from a throttling reply.', (s) => (s.throttled ? 1 : 0)),
    counter('tsubame_shaping_messages_total', 'Messages started to the destination.', (s) => s.messagesStarted),
    counter('tsubame_shaping_throttles_total', 'Throttling replies (421, or 4xx matching THROTTLE_PATTERN) from the destination.', (s) => s.throttles),
  ];
}
