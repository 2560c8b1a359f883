// A farm on one machine: three started tsubame instances (own roots, own ports on 127.0.8.1-3,
// PROXY_PROTOCOL services) behind a real HAProxy (send-proxy-v2, health checks with the header),
// sharing their traffic shaping through a real redis-server, relaying to one sink. smtp-source's
// load through the balancer spreads over the nodes, and the sink never sees more than the
// farm-wide limits (K connections, N messages a second) from the three together; Redis killed
// mid-run: mail keeps flowing under the fallback limits. A node killed with SIGKILL mid-load: the
// client's retries go to the others, and every message acknowledged with 250 reaches the sink
// (the killed node's after its restart), counted by Message-ID. ETRN through the balancer, and
// `imsimta flush DOMAIN` run on one node, reach every node's queue. `imsimta process` and /metrics name the node and say whether it
// reaches Redis. Loopback only; every peer is stopped by its pid.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, waitFor } from '../helpers/instance.js';
import { MtaInstance, belongsToInstance } from '../helpers/running-instance.js';
import { startHaproxy, type Haproxy } from '../helpers/haproxy.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startSmtpPeer, type SmtpPeer } from '../helpers/sim-internet.js';
import { SmtpProbe, runTool } from './smtp-harness.js';

const NODE_HOSTS = ['127.0.8.1', '127.0.8.2', '127.0.8.3'];
const SINK_HOST = '127.0.8.100';
const LATER_HOST = '127.0.8.101';
const FLUSHED_HOST = '127.0.8.102';
const LB_HOST = '127.0.3.1';
const CLIENT = '127.0.6.1';
const REDIS_HOST = '127.0.7.2';
/** Farm-wide limits at the sink: connections and messages per second. */
const K = 2;
const N = 20;

let redis: TestRedis;
let sink: SmtpPeer;
let later: SmtpPeer | null = null;
let laterPort = 0;
let flushed: SmtpPeer | null = null;
let flushedPort = 0;
let lb: Haproxy;
let lbPort = 0;
const nodes: MtaInstance[] = [];
const metricsPorts: number[] = [];

function imtaCnf(sinkPort: number): string {
  return `! farm node
later.test           $U%$D@tcp_later-daemon
flushed.test         $U%$D@tcp_flushed-daemon
.                    $U%$H@tcp-daemon

defaults spfnone noauthverify

l
localhost

tcp_local smtp mx daemon ${SINK_HOST} port ${sinkPort}
tcp-daemon

tcp_later smtp mx daemon ${LATER_HOST} port ${laterPort} backoff "PT10M"
tcp_later-daemon

tcp_flushed smtp mx daemon ${FLUSHED_HOST} port ${flushedPort} backoff "PT10M"
tcp_flushed-daemon
`;
}

before(async () => {
  redis = await startRedis({ host: REDIS_HOST });
  sink = await startSmtpPeer({ host: SINK_HOST });
  laterPort = await freePort(LATER_HOST); // nothing listens there until the ETRN test starts a peer
  flushedPort = await freePort(FLUSHED_HOST); // nor there until the flush test does
  for (const [i, host] of NODE_HOSTS.entries()) {
    const mta = await MtaInstance.create({ address: host, service: 'PROXY_PROTOCOL=1\nPROXY_TRUSTED=127.0.0.1\nMIN_PROCS=1' });
    const metricsPort = await freePort('127.0.0.1');
    metricsPorts.push(metricsPort);
    mta.inst.write('etc/imta.cnf', imtaCnf(sink.port));
    mta.inst.write(
      'etc/option.dat',
      [
        'INTERNAL_IP=127.0.0.0/8',
        `LOCAL_HOST=node-${i + 1}.farm.test`,
        'FAST_FLUSH_DOMAINS=later.test',
        'SMTP_HOST_RETRY=1', // an ETRN leaves a host found down alone this long
        `METRICS_PORT=${metricsPort}`,
        `FARM_REDIS_URL=${redis.url}`,
        `FARM_NODE_NAME=node-${i + 1}`,
        'FARM_NODE_COUNT=3',
        'FARM_LEASE_TTL=3',
        '',
      ].join('\n'),
    );
    // The sink's limits, for the farm as a whole; slow start off so that the limit is what binds.
    mta.inst.write('etc/shaping.cnf', `MAX_CONNECTIONS=${K}\nINITIAL_CONNECTIONS=${K}\nMAX_MESSAGE_RATE=${N}/s\nMESSAGE_RATE_BURST=1\n`);
    nodes.push(mta);
  }
  const started = await Promise.all(nodes.map((n) => n.cli('start-msg', [], 60_000)));
  for (const r of started) assert.equal(r.code, 0, r.stderr);
  for (const n of nodes) await n.processes(); // remember their pids for the cleanup
  lbPort = await freePort(LB_HOST);
  lb = await startHaproxy({
    timeoutMs: 30_000,
    sections: [
      'frontend smtp_in',
      `  bind ${LB_HOST}:${lbPort}`,
      '  default_backend farm',
      'backend farm',
      '  balance roundrobin',
      '  option redispatch',
      '  retries 3',
      ...nodes.map((n, i) => `  server node-${i + 1} ${n.address}:${n.port} send-proxy-v2 source 127.0.0.1 check check-send-proxy inter 300ms fall 1 rise 2`),
    ],
  });
});

after(async () => {
  await lb?.close();
  for (const n of nodes) await n.cleanup();
  await later?.close();
  await flushed?.close();
  await sink?.close();
  await redis?.close();
});

function mailLogEnqueued(mta: MtaInstance): number {
  const p = join(mta.root, 'log', 'mail.log');
  if (!existsSync(p)) return 0;
  return readFileSync(p, 'utf8').split('\n').filter((l) => l.split(' ')[1] === 'E').length;
}

/** Records of one event (E, D, Q…) to `channel` in a node's mail.log. */
function mailLogEvents(mta: MtaInstance, event: string, channel: string): number {
  const p = join(mta.root, 'log', 'mail.log');
  if (!existsSync(p)) return 0;
  return readFileSync(p, 'utf8')
    .split('\n')
    .filter((l) => {
      const f = l.split(' ');
      return f[1] === event && f[4] === channel;
    }).length;
}

const delivered = (mta: MtaInstance, channel: string) => mailLogEvents(mta, 'D', channel);
const triedLater = (mta: MtaInstance) => triedOn(mta, 'tcp_later');

/** `channel`'s messages in a node's mail.log: how many, how many not tried for real yet, and the time of the last real try. */
function triedOn(mta: MtaInstance, channel: string): { ids: number; pending: number; last: number } {
  const p = join(mta.root, 'log', 'mail.log');
  const lines = existsSync(p) ? readFileSync(p, 'utf8').split('\n') : [];
  const enqueued = new Set<string>();
  const tried = new Map<string, number>();
  for (const l of lines) {
    const f = l.split(' ');
    if (f[4] !== channel) continue;
    if (f[1] === 'E') enqueued.add(f[2]!);
    if (f[1] === 'Q' && !l.includes('host not tried again')) tried.set(f[2]!, Date.parse(f[0]!));
  }
  return { ids: enqueued.size, pending: [...enqueued].filter((id) => !tried.has(id)).length, last: Math.max(0, ...tried.values()) };
}

function componentLog(mta: MtaInstance, component: string): string {
  const p = join(mta.root, 'log', `${component}.log`);
  return existsSync(p) ? readFileSync(p, 'utf8') : '';
}

/** The most messages the sink received within any window of `ms`. */
function peakInWindow(times: number[], ms: number): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < t.length; i++) {
    while (t[i]! - t[j]! >= ms) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

const smtpSource = (args: string[]) => runTool('/usr/sbin/smtp-source', [...args, `${LB_HOST}:${lbPort}`], 60_000);

test('imsimta process and /metrics name the node and say it reaches Redis', async () => {
  const rows = await nodes[0]!.processes();
  const jc = rows.find((r) => r.role === 'job_controller');
  assert.equal(jc?.node, 'node-1');
  assert.equal(jc?.redis, 'up');
  const text = await (await fetch(`http://127.0.0.1:${metricsPorts[0]}/metrics`)).text();
  assert.match(text, /^tsubame_farm_redis_up\{node="node-1"\} 1$/m);
});

test('load through HAProxy spreads over the three nodes; the sink gets no more than K connections and N msg/s from them together', async () => {
  const before = sink.transactions.length;
  const messages = 90;
  const r = await smtpSource(['-s', '6', '-m', String(messages), '-f', 'load@client.test', '-t', 'someone@sink.test']);
  assert.equal(r.code, 0, r.stderr);
  for (const n of nodes) assert.ok(mailLogEnqueued(n) > 0, `${n.address} took part of the load`);
  await waitFor(() => sink.transactions.length - before >= messages, { timeoutMs: 40_000, what: `${messages} messages at the sink` });
  const got = sink.transactions.slice(before);
  for (const n of nodes) await waitFor(() => delivered(n, 'tcp_local') > 0, { what: `${n.address} to deliver some` });
  assert.ok(sink.maxConcurrent <= K, `at most ${K} connections at once at the sink, saw ${sink.maxConcurrent}`);
  const peak = peakInWindow(got.map((t) => t.receivedAt), 1000);
  assert.ok(peak <= N + 3, `at most about ${N} messages in any second at the sink, saw ${peak}`);
});

test('Redis killed mid-run: mail keeps flowing under each node’s share of the limits', async () => {
  const before = sink.transactions.length;
  await redis.stop('SIGKILL');
  try {
    await waitFor(async () => (await nodes[0]!.processes()).find((x) => x.role === 'job_controller')?.redis === 'down', { timeoutMs: 15_000, what: 'node-1 to see Redis gone' });
    const r = await smtpSource(['-s', '3', '-m', '30', '-f', 'fallback@client.test', '-t', 'someone@sink.test']);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(() => sink.transactions.length - before >= 30, { timeoutMs: 30_000, what: '30 messages at the sink without Redis' });
    assert.ok(nodes.some((n) => /farm: Redis at .* is unreachable/.test(componentLog(n, 'job'))), 'a node says it fell back on its share');
    // Each node's share is 1 connection (2 / 3, at least 1); a node keeps the connections it had open
    // when Redis went (at most K in all, on one node at worst), the other two open one each.
    assert.ok(sink.maxConcurrent <= K + 2, `at most K + 2 connections at once, saw ${sink.maxConcurrent}`);
  } finally {
    await redis.start();
  }
  await waitFor(async () => (await nodes[0]!.processes()).find((x) => x.role === 'job_controller')?.redis === 'up', { timeoutMs: 15_000, what: 'node-1 to reach Redis again' });
});

test('a node killed with SIGKILL mid-load: retries go to the others; every acknowledged message reaches the sink by Message-ID', async () => {
  const acknowledged: string[] = [];
  const total = 60;
  let sent = 0;
  let killed = false;
  const victim = nodes[1]!;
  const victimPids = (await victim.processes()).map((r) => r.pid).filter((p): p is number => typeof p === 'number');
  const kill = () => {
    killed = true;
    for (const pid of victimPids) {
      if (!belongsToInstance(pid, victim.root)) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  };
  // Four clients, each one message per session, a message retried on any failure until acknowledged.
  const client = async (who: number) => {
    for (;;) {
      const n = sent++;
      if (n >= total) return;
      const id = `<farm-${who}-${n}@client.test>`;
      for (let attempt = 0; ; attempt++) {
        assert.ok(attempt < 20, `message ${id} never acknowledged`);
        if (!killed && acknowledged.length >= 20) kill();
        const ok = await sendOne(id).catch(() => false);
        if (ok) {
          acknowledged.push(id);
          break;
        }
      }
    }
  };
  await Promise.all([0, 1, 2, 3].map(client));
  assert.ok(killed, 'the node was killed mid-load');
  assert.equal(acknowledged.length, total);
  const r = await victim.cli('start-msg', [], 60_000);
  assert.equal(r.code, 0, r.stderr);
  await victim.processes();
  const atSink = () => new Set(sink.transactions.map((t) => t.messageId));
  await waitFor(() => acknowledged.every((id) => atSink().has(id)), { timeoutMs: 45_000, what: 'every acknowledged message at the sink' }).catch(() => undefined);
  const missing = acknowledged.filter((id) => !atSink().has(id));
  assert.deepEqual(missing, [], 'acknowledged messages missing at the sink');
});

/** `count` messages to `recipient`, each in its own session through the balancer (round robin: spread over the nodes); their Message-IDs. */
async function sendThroughBalancer(count: number, recipient: string, tag: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const p = await SmtpProbe.connect(LB_HOST, lbPort, CLIENT);
    await p.hello('client.test');
    assert.equal((await p.command(`MAIL FROM:<${tag}@client.test>`))?.code, 250);
    assert.equal((await p.command(`RCPT TO:<${recipient}>`))?.code, 250);
    assert.equal((await p.command('DATA'))?.code, 354);
    const id = `<${tag}-${i}@client.test>`;
    p.write(`Message-ID: ${id}\r\nSubject: ${tag}\r\n\r\nbody\r\n.\r\n`);
    assert.equal((await p.reply(10_000))?.code, 250);
    ids.push(id);
    p.close();
  }
  return ids;
}

/** One message in its own session through the balancer: true when it was answered 250 at the end of DATA. */
async function sendOne(messageId: string): Promise<boolean> {
  const p = await SmtpProbe.connect(LB_HOST, lbPort, CLIENT);
  try {
    if ((await p.reply(5000))?.code !== 220) return false;
    if ((await p.command('EHLO client.test'))?.code !== 250) return false;
    if ((await p.command('MAIL FROM:<tracked@client.test>'))?.code !== 250) return false;
    if ((await p.command('RCPT TO:<someone@sink.test>'))?.code !== 250) return false;
    if ((await p.command('DATA'))?.code !== 354) return false;
    p.write(`Message-ID: ${messageId}\r\nSubject: farm\r\n\r\nbody\r\n.\r\n`);
    const done = await p.reply(10_000);
    if (done?.code !== 250) return false;
    await p.command('QUIT').catch(() => null);
    return true;
  } finally {
    p.close();
  }
}

test('ETRN through the balancer retries the destination’s mail on every node', async () => {
  // Deferred mail for later.test on every node (nothing listens there yet).
  const ids = await sendThroughBalancer(6, 'user@later.test', 'later');
  // Each message tried for real once (not just held back by the host's SMTP_HOST_RETRY window), then the window over.
  for (const n of nodes) await waitFor(() => triedLater(n).pending === 0 && triedLater(n).ids > 0, { timeoutMs: 20_000, what: `deferred later.test mail on ${n.address}` });
  const lastTry = Math.max(...nodes.map((n) => triedLater(n).last));
  await waitFor(() => Date.now() - lastTry > 1500, { what: 'the SMTP_HOST_RETRY window to end' });
  later = await startSmtpPeer({ host: LATER_HOST, port: laterPort });
  const p = await SmtpProbe.connect(LB_HOST, lbPort, CLIENT);
  await p.hello('client.test');
  const etrn = await p.command('ETRN later.test');
  assert.equal(etrn?.code, 250, etrn?.text);
  p.close();
  // The backoff is 10 minutes: only the flush (here and relayed to the others) delivers them now.
  await waitFor(() => ids.every((id) => later!.transactions.some((t) => t.messageId === id)), { timeoutMs: 20_000, what: 'every node’s later.test mail delivered after one ETRN' });
  // The sink has the message before the node writes its D record: wait for that too.
  for (const n of nodes) await waitFor(() => delivered(n, 'tcp_later') > 0, { timeoutMs: 5000, what: `${n.address} to log the delivery of its later.test mail` });
  const relayed = nodes.filter((n) => /farm: flush asked of another node/.test(componentLog(n, 'job_controller')));
  assert.equal(relayed.length, 2, 'the two nodes the ETRN did not reach were told through Redis');
  // Nothing left here, but the node asked cannot know the others' queues: not "251 no messages
  // waiting" (RFC 1985: known to be none) but 252, pending messages started, their number unknown.
  const again = await SmtpProbe.connect(LB_HOST, lbPort, CLIENT);
  await again.hello('client.test');
  const second = await again.command('ETRN later.test');
  assert.equal(second?.code, 252, second?.text);
  again.close();
});

test('imsimta flush DOMAIN on one node: the other nodes deliver their queued mail for it too', async () => {
  // Deferred mail for flushed.test (not a fast-flush domain: the operator's flush finds it in the
  // scheduler) on every node, each message tried once while nothing listened there.
  const ids = await sendThroughBalancer(6, 'user@flushed.test', 'flushed');
  for (const n of nodes) await waitFor(() => triedOn(n, 'tcp_flushed').pending === 0 && triedOn(n, 'tcp_flushed').ids > 0, { timeoutMs: 20_000, what: `deferred flushed.test mail on ${n.address}` });
  flushed = await startSmtpPeer({ host: FLUSHED_HOST, port: flushedPort });
  const r = await nodes[0]!.imsimta(['flush', 'flushed.test']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /being tried now on this node; the other nodes of the farm were asked to retry theirs/);
  // The backoff is 10 minutes: only the flush, carried out here and relayed to the others, delivers them now.
  await waitFor(() => ids.every((id) => flushed!.transactions.some((t) => t.messageId === id)), { timeoutMs: 20_000, what: 'every node’s flushed.test mail delivered after one imsimta flush' });
  for (const n of nodes) await waitFor(() => delivered(n, 'tcp_flushed') > 0, { timeoutMs: 5000, what: `${n.address} to log the delivery of its flushed.test mail` });
  const told = (n: MtaInstance) => componentLog(n, 'job_controller').split('\n').some((l) => l.includes('farm: flush asked of another node') && l.includes('"target":"flushed.test"') && l.includes('"origin":"operator"'));
  assert.deepEqual(nodes.map(told), [false, true, true], 'node-1 was asked; the two others were told through Redis');
});
