// The numbers on /metrics are the mail that was sent: 100 messages from smtp-source (a new
// connection for each) to a channel that delivers to an SMTP sink make the channel's enqueued
// counter 100, its delivered counter 100 once the sink has every one, its queue depth 0 again,
// and the sessions served at least the 100 connections made. Then 100 more over 4 connections
// (smtp-source -d): the counters move by exactly 100 again. `imsimta counters --json` agrees.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { MtaInstance } from '../helpers/running-instance.js';
import { freePort, waitFor } from '../helpers/instance.js';
import { startSmtpPeer, type SmtpPeer } from '../helpers/sim-internet.js';
import { runTool } from './smtp-harness.js';
import { parsePrometheusText, sampleValue, type ParsedFamily } from '../helpers/prometheus-text.js';

const ADDRESS = '127.0.16.2';
const SINK_ADDRESS = '127.0.16.25';
const CHANNEL = 'tcp_sink';
const RECIPIENT = 'count@sink.test';

let mta: MtaInstance;
let sink: SmtpPeer;
let metricsPort: number;

before(async () => {
  sink = await startSmtpPeer({ host: SINK_ADDRESS });
  metricsPort = await freePort('127.0.0.1');
  mta = await MtaInstance.create({ address: ADDRESS, service: 'MIN_PROCS=1' });
  mta.inst.write(
    'etc/imta.cnf',
    `! metrics count test instance
localhost            $U%localhost@localhost
sink.test            $U%$D@tcp-sink
.                    $U%$H@tcp-daemon

l
localhost

tcp_sink smtp nomx daemon ${SINK_ADDRESS} port ${sink.port}
tcp-sink

tcp_local smtp mx
tcp-daemon
`,
  );
  mta.inst.write('etc/option.dat', `INTERNAL_IP=127.0.0.0/8\nLOCAL_HOST=mta.counts.test\nMETRICS_PORT=${metricsPort}\n`);
  const r = await mta.cli('start-msg', [], 60_000);
  assert.equal(r.code, 0, r.stderr);
  await mta.processes();
});

after(async () => {
  await mta?.cleanup();
  await sink?.close();
});

async function scrape(): Promise<Map<string, ParsedFamily>> {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  assert.equal(res.status, 200);
  return parsePrometheusText(await res.text());
}

/** The numbers this test follows, from one scrape (absent samples count as 0). */
interface Numbers {
  enqueued: number;
  delivered: number;
  deferred: number;
  returned: number;
  recipientsEnqueued: number;
  recipientsDelivered: number;
  queued: number;
  served: number;
  open: number;
  latencies: number;
}

function numbersOf(m: Map<string, ParsedFamily>): Numbers {
  const ch = (family: string) => sampleValue(m, family, { channel: CHANNEL }) ?? 0;
  return {
    enqueued: ch('tsubame_messages_enqueued_total'),
    delivered: ch('tsubame_messages_delivered_total'),
    deferred: ch('tsubame_messages_deferred_total'),
    returned: ch('tsubame_messages_returned_total'),
    recipientsEnqueued: ch('tsubame_recipients_enqueued_total'),
    recipientsDelivered: ch('tsubame_recipients_delivered_total'),
    queued: ch('tsubame_queue_messages'),
    served: sampleValue(m, 'tsubame_sessions_served_total', { service: 'SMTP' }) ?? 0,
    open: sampleValue(m, 'tsubame_connections_open', { service: 'SMTP' }) ?? 0,
    latencies: sampleValue(m, 'tsubame_enqueue_latency_seconds', { service: 'SMTP' }, 'tsubame_enqueue_latency_seconds_count') ?? 0,
  };
}

const smtpSource = (args: string[]) => runTool('/usr/sbin/smtp-source', [...args, '-f', 'counter@client.test', '-t', RECIPIENT, `${ADDRESS}:${mta.port}`], 60_000);

/** Sends with smtp-source, waits until the sink has them all and the queue is empty; returns the numbers then. */
async function sendAndSettle(args: string[], expectedAtSink: number): Promise<Numbers> {
  const r = await smtpSource(args);
  assert.equal(r.code, 0, `smtp-source ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return waitFor(
    async () => {
      if (sink.deliveredRecipients().length < expectedAtSink) return null;
      const n = numbersOf(await scrape());
      return n.delivered >= expectedAtSink && n.queued === 0 && n.open === 0 ? n : null;
    },
    { timeoutMs: 45_000, intervalMs: 200, what: `${expectedAtSink} messages at the sink, counted delivered, and an empty ${CHANNEL} queue` },
  );
}

test('100 messages, a connection each: enqueued 100, delivered 100, queue depth 0, sessions served ≥ 100', { timeout: 60_000 }, async () => {
  const start = numbersOf(await scrape());
  assert.deepEqual([start.enqueued, start.delivered, start.queued, start.served], [0, 0, 0, 0], 'a fresh instance');

  const n = await sendAndSettle(['-s', '5', '-m', '100'], 100);
  assert.equal(sink.deliveredRecipients().length, 100, 'the sink has each message once');
  assert.ok(sink.deliveredRecipients().every((r) => r === RECIPIENT));
  assert.equal(n.enqueued, 100, 'tsubame_messages_enqueued_total');
  assert.equal(n.delivered, 100, 'tsubame_messages_delivered_total');
  assert.equal(n.recipientsEnqueued, 100, 'tsubame_recipients_enqueued_total');
  assert.equal(n.recipientsDelivered, 100, 'tsubame_recipients_delivered_total');
  assert.equal(n.deferred, 0);
  assert.equal(n.returned, 0);
  assert.equal(n.queued, 0, 'tsubame_queue_messages back to 0');
  assert.ok(n.served >= 100, `tsubame_sessions_served_total ${n.served} < the 100 connections made`);
  assert.equal(n.latencies, 100, 'one enqueue latency per message');

  // The operator's command reads the same counters.
  const counters = await mta.imsimta(['counters', '--json']);
  assert.equal(counters.code, 0, counters.stderr);
  const c = (JSON.parse(counters.stdout) as Record<string, { enqueued: number; delivered: number; queued: number }>)[CHANNEL];
  assert.deepEqual({ enqueued: c?.enqueued, delivered: c?.delivered, queued: c?.queued }, { enqueued: 100, delivered: 100, queued: 0 });
});

test('100 more over 4 connections (smtp-source -d): every counter moves by exactly 100', { timeout: 60_000 }, async () => {
  const start = numbersOf(await scrape());
  const n = await sendAndSettle(['-d', '-s', '4', '-m', '100'], 200);
  assert.equal(sink.deliveredRecipients().length, 200);
  assert.equal(n.enqueued - start.enqueued, 100);
  assert.equal(n.delivered - start.delivered, 100);
  assert.equal(n.recipientsDelivered - start.recipientsDelivered, 100);
  assert.equal(n.latencies - start.latencies, 100);
  assert.equal(n.queued, 0);
  // smtp-source -d -s 4 opens exactly 4 connections: a session per connection, not per message.
  assert.equal(n.served - start.served, 4, `sessions served went from ${start.served} to ${n.served}`);
});
