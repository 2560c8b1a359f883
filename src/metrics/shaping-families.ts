// Each destination's traffic shaping (job-controller/shaping-view.ts) as Prometheus metric
// families (for metrics-text.ts to append), labelled by channel and destination: the connections
// open and allowed, the message rate observed and allowed, whether it is throttled, the recipients
// waiting for it and the age of the oldest, and the messages, throttles and shaping deferrals counted.
import type { MetricFamily, Sample } from './exposition.js';
import type { DestinationShaping } from '../job-controller/shaping-view.js';

export function shapingFamilies(rows: readonly DestinationShaping[], nowMs: number): MetricFamily[] {
  const labels = (r: DestinationShaping) => ({ channel: r.channel, destination: r.destination });
  const gauge = (name: string, help: string, value: (r: DestinationShaping) => number | null): MetricFamily => ({
    name,
    help,
    type: 'gauge',
    samples: rows.flatMap((r): Sample[] => {
      const v = value(r);
      return v === null ? [] : [{ labels: labels(r), value: v }];
    }),
  });
  const counter = (name: string, help: string, value: (r: DestinationShaping) => number): MetricFamily => ({
    name,
    help,
    type: 'counter',
    samples: rows.map((r) => ({ labels: labels(r), value: value(r) })),
  });
  return [
    gauge('tsubame_shaping_connections', 'Outbound connections open to the destination.', (r) => r.connections),
    gauge('tsubame_shaping_connection_window', 'Connections the slow-start/backoff window allows the destination now.', (r) => r.connectionWindow),
    gauge('tsubame_shaping_max_connections', 'MAX_CONNECTIONS of the destination.', (r) => r.maxConnections),
    gauge('tsubame_shaping_message_rate', 'Messages per second started to the destination (about the last minute).', (r) => r.messageRate),
    gauge('tsubame_shaping_allowed_message_rate', 'Messages per second the destination may get now (absent: no limit).', (r) => r.allowedRate),
    gauge('tsubame_shaping_throttled', '1 while the destination is paused or recovering from a throttling reply.', (r) => (r.throttled ? 1 : 0)),
    gauge('tsubame_shaping_waiting_recipients', "Recipients waiting for the destination in the channel's fan-out.", (r) => r.waiting),
    gauge('tsubame_shaping_oldest_waiting_age_seconds', 'Age of the oldest message waiting for the destination (0 when none waits).', (r) => (r.oldest === null ? 0 : Math.max(0, (nowMs - r.oldest) / 1000))),
    counter('tsubame_shaping_messages_total', 'Messages started to the destination.', (r) => r.messagesStarted),
    counter('tsubame_shaping_throttles_total', 'Throttling replies (421, or 4xx matching THROTTLE_PATTERN) from the destination.', (r) => r.throttles),
    counter('tsubame_shaping_deferred_total', 'Recipients deferred untried by shaping (a paused destination, a rate wait too long) since the channel job started.', (r) => r.deferred),
  ];
}
