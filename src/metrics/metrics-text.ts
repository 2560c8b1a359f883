// The metric families of one snapshot (names prefixed tsubame_). Counters are the totals the
// owning process keeps (the job controller's per-channel counters survive its restarts, the
// others count since their process started); gauges are what the snapshot saw. Pure.
import type { MetricFamily, Sample } from './exposition.js';
import type { InstanceSnapshot } from './snapshot.js';
import { COUNTER_FIELDS } from '../job-controller/counters.js';
import { DELIVERY_COUNTER_FIELDS, type DeliveryCounters } from '../job-controller/delivery-stats.js';
import { shapingFamilies } from './shaping-families.js';

const DELIVERY_FAMILIES: Record<keyof DeliveryCounters, { name: string; help: string }> = {
  dnsCacheHits: { name: 'tsubame_dns_cache_hits_total', help: 'DNS lookups of delivery jobs answered from the cache of their thread.' },
  dnsCacheMisses: { name: 'tsubame_dns_cache_misses_total', help: 'DNS lookups of delivery jobs sent to the DNS servers.' },
  connectionsOpened: { name: 'tsubame_outbound_connections_opened_total', help: 'Outbound SMTP/LMTP connections opened by delivery jobs.' },
  connectionsReused: { name: 'tsubame_outbound_connections_reused_total', help: 'Transactions of delivery jobs sent on a connection kept open from an earlier one.' },
};

export function metricFamilies(s: InstanceSnapshot): MetricFamily[] {
  const families: MetricFamily[] = [];
  const gauge = (name: string, help: string, samples: Sample[]) => families.push({ name, help, type: 'gauge', samples });
  const counter = (name: string, help: string, samples: Sample[]) => families.push({ name, help, type: 'counter', samples });

  gauge('tsubame_part_up', 'Whether a part the watcher supervises is running (1) or not (0).', s.parts.map((p) => ({ labels: { part: p.name }, value: p.state === 'running' ? 1 : 0 })));
  counter('tsubame_part_restarts_total', 'Times the watcher restarted a part after it died.', s.parts.map((p) => ({ labels: { part: p.name }, value: p.restarts })));
  if (s.reload) {
    // As Prometheus reports its own configuration reloads.
    gauge('tsubame_config_last_reload_successful', 'Whether the last configuration change (an edit in etc/ or imsimta reload) was applied (1) or rejected (0).', [{ labels: {}, value: s.reload.ok ? 1 : 0 }]);
    gauge('tsubame_config_last_reload_timestamp_seconds', 'When the last configuration change was handled (the start when none was).', [{ labels: {}, value: Date.parse(s.reload.at) / 1000 }]);
    gauge('tsubame_config_last_reload_success_timestamp_seconds', 'When the configuration in force was applied.', [{ labels: {}, value: Date.parse(s.reload.lastSuccess) / 1000 }]);
  }
  gauge('tsubame_metrics_source_up', 'Whether this scrape could read a source (1) or not (0); its metrics are missing when 0.', [
    { labels: { source: 'dispatcher' }, value: s.services ? 1 : 0 },
    { labels: { source: 'job_controller' }, value: s.jobController ? 1 : 0 },
    { labels: { source: 'queue' }, value: s.queue ? 1 : 0 },
  ]);

  const services = s.services ?? [];
  gauge('tsubame_smtp_server_processes', 'SMTP server processes per service.', services.map((x) => ({ labels: { service: x.service }, value: x.processes })));
  gauge('tsubame_connections_open', 'SMTP sessions open now per service.', services.map((x) => ({ labels: { service: x.service }, value: x.connections })));
  counter('tsubame_sessions_served_total', 'SMTP sessions handed to server processes per service since the dispatcher started.', services.map((x) => ({ labels: { service: x.service }, value: x.served })));
  if (s.waitingConnections !== null) gauge('tsubame_connections_waiting', 'Accepted connections waiting for a server process.', [{ labels: {}, value: s.waitingConnections }]);
  families.push({
    name: 'tsubame_enqueue_latency_seconds',
    help: 'Time from the end of a message\'s DATA to the message being on disk (fsync), per service.',
    type: 'histogram',
    samples: services.map((x) => ({ labels: { service: x.service }, histogram: x.enqueueLatency })),
  });

  counter(
    'tsubame_smtp_auth_total',
    'SMTP AUTH outcomes per service: succeeded, failed (wrong credentials), refused (421: a client address or login past its failure limit, or a session past disconnectbadauthlimit).',
    services.flatMap((x) => (['succeeded', 'failed', 'refused'] as const).map((result) => ({ labels: { service: x.service, result }, value: x.auth?.[result] ?? 0 }))),
  );
  if (s.rejections) {
    counter('tsubame_rejections_total', 'SMTP refusals (mail.log J records) per rule that decided, since the metrics endpoint started: PORT_ACCESS, rbl:<zone>, SPF, DMARC, milter:<filter>, relay, unknown user …', s.rejections.map((r) => ({ labels: { reason: r.reason }, value: r.count })));
  }

  const jc = s.jobController;
  const channels = jc?.channels ?? [];
  for (const f of COUNTER_FIELDS) {
    counter(`tsubame_messages_${f}_total`, `Messages ${f} per channel.`, channels.map((c) => ({ labels: { channel: c.name }, value: c.messages[f] })));
  }
  for (const f of COUNTER_FIELDS) {
    counter(`tsubame_recipients_${f}_total`, `Recipients ${f} per channel.`, channels.map((c) => ({ labels: { channel: c.name }, value: c.recipients[f] })));
  }

  const queue = s.queue ?? [];
  gauge('tsubame_queue_messages', 'Messages in the channel queue on disk, held ones included.', queue.map((q) => ({ labels: { channel: q.channel }, value: q.messages })));
  gauge('tsubame_queue_held_messages', 'Held messages in the channel queue.', queue.map((q) => ({ labels: { channel: q.channel }, value: q.held })));
  gauge(
    'tsubame_queue_oldest_message_age_seconds',
    'Age of the oldest message in the channel queue (0 when it is empty).',
    queue.map((q) => ({ labels: { channel: q.channel }, value: q.oldestMs === null ? 0 : Math.max(0, (s.takenAt - q.oldestMs) / 1000) })),
  );

  const pools = jc?.pools ?? [];
  gauge('tsubame_jobs_running', 'Delivery jobs running per pool.', pools.map((p) => ({ labels: { pool: p.name }, value: p.running })));
  gauge('tsubame_pool_job_limit', 'JOB_LIMIT of the pool.', pools.map((p) => ({ labels: { pool: p.name }, value: p.jobLimit })));
  gauge('tsubame_pool_threads', 'Worker threads alive per pool.', pools.map((p) => ({ labels: { pool: p.name }, value: p.threads })));
  gauge('tsubame_channel_jobs_running', 'Delivery jobs running per channel.', channels.map((c) => ({ labels: { channel: c.name }, value: c.jobs })));
  if (jc) {
    gauge('tsubame_job_controller_index_messages', 'Messages the job controller holds in its index.', [{ labels: {}, value: jc.index.size }]);
    gauge('tsubame_job_controller_index_limit', 'MAX_MESSAGES: the most messages the index holds.', [{ labels: {}, value: jc.index.max }]);
    if (jc.farm) gauge('tsubame_farm_redis_up', 'A farm node (FARM_REDIS_URL): whether it reaches Redis (1), or shapes with its share of the limits (0); the label names the node (FARM_NODE_NAME).', [{ labels: { node: jc.farm.node }, value: jc.farm.redisUp ? 1 : 0 }]);
  }

  const delivery = Object.entries(jc?.delivery ?? {});
  for (const f of DELIVERY_COUNTER_FIELDS) {
    counter(DELIVERY_FAMILIES[f].name, `${DELIVERY_FAMILIES[f].help} Per channel, since the job controller started.`, delivery.map(([channel, c]) => ({ labels: { channel }, value: c[f] })));
  }
  families.push(...shapingFamilies(jc?.shaping ?? [], s.takenAt));
  return families;
}
