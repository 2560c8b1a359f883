// METRICS_PORT on a started instance: /metrics parses as Prometheus text 0.0.4 and its counters
// follow the mail sent (swaks) to a channel that delivers locally, one that delivers over SMTP
// (MX from a simulated DNS server), and one that defers (a smart host on a closed port); the
// queue depth agrees with `imsimta qm summarize --json`; the status page lists the deferrals
// with their reasons and escapes a hostile address. Without METRICS_PORT the watcher listens on
// nothing; a reload turns the endpoint on (after a port in use is logged, not fatal) and off.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { MtaInstance, greeting, refused } from '../helpers/running-instance.js';
import { freePort, runCli, waitFor } from '../helpers/instance.js';
import { startDnsServer, startSmtpPeer, type SimDns, type SmtpPeer } from '../helpers/sim-internet.js';
import { runTool } from './smtp-harness.js';
import { parsePrometheusText, sampleValue, type ParsedFamily } from '../helpers/prometheus-text.js';

const ADDRESS = '127.0.13.1';
const DNS_ADDRESS = '127.0.13.53';
const MX_ADDRESS = '127.0.13.25';
const CLOSED_HOST = '127.0.13.9';
const HOSTILE = '"<script>alert(1)</script>"@defer.test';

let mta: MtaInstance;
let dns: SimDns;
let peer: SmtpPeer;
let metricsPort: number;
const others: MtaInstance[] = [];

before(async () => {
  dns = await startDnsServer({
    host: DNS_ADDRESS,
    records: { 'sim.test': { mx: [{ exchange: 'mx.sim.test', preference: 10 }] }, 'mx.sim.test': { a: [MX_ADDRESS] } },
  });
  peer = await startSmtpPeer({ host: MX_ADDRESS });
  const closedPort = await freePort(CLOSED_HOST);
  metricsPort = await freePort('127.0.0.1');
  mta = await MtaInstance.create({ address: ADDRESS, service: 'MIN_PROCS=1' });
  mta.inst.write(
    'etc/imta.cnf',
    `! metrics test instance
localhost            $U%localhost@localhost
defer.test           $U%$D@tcp-defer
.                    $U%$H@tcp-daemon

l
localhost

tcp_defer smtp daemon ${CLOSED_HOST} port ${closedPort} backoff "PT1H"
tcp-defer

tcp_local smtp mx port ${peer.port}
tcp-daemon
`,
  );
  mta.inst.write('etc/option.dat', `INTERNAL_IP=127.0.0.0/8\nLOCAL_HOST=mta.metrics.test\nDNS_SERVERS=${dns.server}\nMETRICS_PORT=${metricsPort}\n`);
  mta.inst.write('mailbox/joe/.keep', '');
  const r = await mta.cli('start-msg', [], 60_000);
  assert.equal(r.code, 0, r.stderr);
  await mta.processes();
});

after(async () => {
  for (const m of [mta, ...others]) await m?.cleanup();
  await peer?.close();
  await dns?.close();
});

async function scrape(port = metricsPort): Promise<Map<string, ParsedFamily>> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  return parsePrometheusText(await res.text());
}

async function statusPage(): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
  return res.text();
}

const swaks = (to: string) => runTool('/usr/bin/swaks', ['--server', `${ADDRESS}:${mta.port}`, '--timeout', '10', '--hide-informational', '--from', 'alice@client.test', '--to', to]);
const v = (m: Map<string, ParsedFamily>, family: string, labels: Record<string, string>, sample?: string) => sampleValue(m, family, labels, sample);

test('/metrics on a fresh instance: valid text, every part up, counters at zero', async () => {
  const m = await scrape();
  assert.equal(v(m, 'tsubame_part_up', { part: 'dispatcher' }), 1);
  assert.equal(v(m, 'tsubame_part_up', { part: 'job_controller' }), 1);
  for (const source of ['dispatcher', 'job_controller', 'queue']) assert.equal(v(m, 'tsubame_metrics_source_up', { source }), 1, source);
  assert.equal(v(m, 'tsubame_smtp_server_processes', { service: 'SMTP' }), 1, 'MIN_PROCS=1');
  assert.equal(v(m, 'tsubame_messages_enqueued_total', { channel: 'tcp_defer' }), 0);
  assert.equal(v(m, 'tsubame_queue_messages', { channel: 'tcp_defer' }), 0);
  assert.equal(v(m, 'tsubame_pool_job_limit', { pool: 'DEFAULT' }), 2);
  assert.equal(m.get('tsubame_enqueue_latency_seconds')?.type, 'histogram');
  // The outbound families have their series before any delivery (the dashboard's DNS and
  // connection panels show 0, not "No data"): one per SMTP channel, none for the local one.
  for (const family of ['tsubame_dns_cache_hits_total', 'tsubame_dns_cache_misses_total', 'tsubame_outbound_connections_opened_total', 'tsubame_outbound_connections_reused_total']) {
    for (const channel of ['tcp_local', 'tcp_defer']) assert.equal(v(m, family, { channel }), 0, `${family}{channel="${channel}"}`);
    assert.equal(v(m, family, { channel: 'l' }), undefined, `${family}: no series for the local channel`);
  }
  // Prometheus's own checker too, where it is installed (Debian's prometheus package).
  if (existsSync('/usr/bin/promtool')) {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const check = await runTool('/usr/bin/promtool', ['check', 'metrics'], 20_000, text);
    assert.equal(check.code, 0, `promtool check metrics: ${check.stdout}${check.stderr}`);
  }
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { method: 'POST' });
  assert.equal(res.status, 405, 'read-only');
  assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/elsewhere`)).status, 404);
});

test('mail moves the counters: enqueued, delivered, deferred, queue depth, latency, DNS and connections', { timeout: 60_000 }, async () => {
  for (const to of ['joe@localhost', 'joe@localhost', 'user@sim.test', 'plain@defer.test', `"a&b'c"@defer.test`]) {
    const r = await swaks(to);
    assert.equal(r.code, 0, `${to}: ${r.stdout}${r.stderr}`);
  }
  // The SMTP server refuses "<" in an address (501); a local submission takes it.
  const submitted = await runCli('imsimta', ['submit', '--root', mta.root, '-f', 'alice@client.test', HOSTILE], { input: 'Subject: hostile\n\nbody\n' });
  assert.equal(submitted.code, 0, submitted.stderr);

  const m = await waitFor(
    async () => {
      const s = await scrape();
      const done =
        v(s, 'tsubame_messages_delivered_total', { channel: 'l' }) === 2 &&
        v(s, 'tsubame_messages_delivered_total', { channel: 'tcp_local' }) === 1 &&
        v(s, 'tsubame_messages_deferred_total', { channel: 'tcp_defer' }) === 3 &&
        v(s, 'tsubame_enqueue_latency_seconds', { service: 'SMTP' }, 'tsubame_enqueue_latency_seconds_count') === 5;
      return done ? s : null;
    },
    { timeoutMs: 30_000, intervalMs: 200, what: 'the counters to reach 2 delivered (l), 1 delivered (tcp_local), 3 deferred (tcp_defer), 5 latencies' },
  );
  assert.deepEqual(
    ['l', 'tcp_local', 'tcp_defer'].map((channel) => v(m, 'tsubame_messages_enqueued_total', { channel })),
    [2, 1, 3],
    'enqueued per channel',
  );
  assert.equal(v(m, 'tsubame_recipients_deferred_total', { channel: 'tcp_defer' }), 3);
  assert.equal(v(m, 'tsubame_messages_returned_total', { channel: 'tcp_defer' }), 0);
  assert.equal(v(m, 'tsubame_sessions_served_total', { service: 'SMTP' }), 5, 'one session per swaks');
  assert.equal(v(m, 'tsubame_connections_open', { service: 'SMTP' }), 0);
  assert.ok(v(m, 'tsubame_enqueue_latency_seconds', { service: 'SMTP' }, 'tsubame_enqueue_latency_seconds_sum')! > 0);
  // Worker threads report DNS figures per batch; when channels share a thread the split between
  // them is approximate (src/job-controller/delivery-stats.ts), so the lookup is counted overall.
  const overall = (family: string) => ['l', 'tcp_local', 'tcp_defer'].reduce((sum, channel) => sum + (v(m, family, { channel }) ?? 0), 0);
  assert.ok(overall('tsubame_dns_cache_misses_total') >= 1, 'the MX lookup of sim.test');
  assert.ok(v(m, 'tsubame_outbound_connections_opened_total', { channel: 'tcp_local' })! >= 1, 'the connection to the MX host');
  assert.equal(v(m, 'tsubame_outbound_connections_opened_total', { channel: 'tcp_defer' }) ?? 0, 0, 'a refused connection is not opened');
  assert.equal(peer.deliveredRecipients().length, 1);

  // Queue depth: the same numbers as `imsimta qm summarize --json`.
  const qm = await mta.imsimta(['qm', 'summarize', '--json']);
  assert.equal(qm.code, 0, qm.stderr);
  const summary = JSON.parse(qm.stdout) as { channels: Array<{ name: string; messages: number; held: number }> };
  for (const c of summary.channels) {
    assert.equal(v(m, 'tsubame_queue_messages', { channel: c.name }), c.messages, `queue depth of ${c.name}`);
    assert.equal(v(m, 'tsubame_queue_held_messages', { channel: c.name }), c.held, `held in ${c.name}`);
  }
  assert.equal(summary.channels.find((c) => c.name === 'tcp_defer')?.messages, 3);
  const age = v(m, 'tsubame_queue_oldest_message_age_seconds', { channel: 'tcp_defer' })!;
  assert.ok(age > 0 && age < 120, `oldest message age ${age}`);
  assert.equal(v(m, 'tsubame_queue_oldest_message_age_seconds', { channel: 'l' }), 0);
});

test('the status page: processes, queue, deferral reasons, and a hostile address escaped', async () => {
  const html = await waitFor(async () => {
    const page = await statusPage();
    return page.includes('a&amp;b&#39;c') && page.includes('&lt;script&gt;') ? page : null;
  }, { timeoutMs: 15_000, what: 'both deferrals on the status page' });
  assert.match(html, /<meta http-equiv="refresh" content="5">/);
  assert.ok(!/<script/i.test(html), 'nothing from mail becomes markup');
  assert.ok(html.includes('&quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;@defer.test'), 'the hostile recipient, escaped');
  assert.match(html, /Connection refused/, 'the deferral reason');
  const rows = await mta.processes();
  for (const role of ['watcher', 'dispatcher', 'smtp_server', 'job_controller']) {
    const row = rows.find((r) => r.role === role);
    assert.ok(row, role);
    assert.ok(html.includes(`<td>${role}</td><td class="n">${row.pid}</td>`), `${role} pid ${row.pid} on the page`);
  }
  assert.match(html, /<td>tcp_defer<\/td><td class="n">3<\/td>/, 'tcp_defer: 3 queued');
  assert.ok(html.includes(`${ADDRESS}:${mta.port}`), 'the service and where it listens');
});

/** TCP ports the process listens on: its socket inodes matched with /proc/net/tcp{,6} in state LISTEN. */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(join(`/proc/${pid}/fd`, fd)));
      if (m) inodes.add(m[1]!);
    } catch {
      /* closed meanwhile */
    }
  }
  const ports: number[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && f[3] === '0A' && inodes.has(f[9]!)) ports.push(parseInt(f[1]!.split(':')[1]!, 16));
    }
  }
  return ports;
}

test('a rejected edit of etc/ shows on the status page with its file:line errors and in the reload metrics; a good one clears it', { timeout: 60_000 }, async () => {
  const started = await scrape();
  assert.equal(v(started, 'tsubame_config_last_reload_successful', {}), 1);
  const startedAt = v(started, 'tsubame_config_last_reload_success_timestamp_seconds', {})!;
  assert.ok(Math.abs(startedAt - Date.now() / 1000) < 600, `success timestamp ${startedAt}`);
  assert.match(await statusPage(), /Configuration: last (loaded at the start|changed by [^<]+) <span[^>]*>[^<]*<\/span>, applied\./);

  const good = mta.inst.read('etc/option.dat');
  const before = Date.now() / 1000;
  mta.inst.write('etc/option.dat', `${good}MAX_RECIPIENTS=many\n`);
  const line = good.split('\n').length;
  const rejected = await waitFor(async () => {
    const m = await scrape();
    return v(m, 'tsubame_config_last_reload_successful', {}) === 0 ? m : null;
  }, { timeoutMs: 20_000, what: 'tsubame_config_last_reload_successful 0 after a broken edit' });
  assert.ok(v(rejected, 'tsubame_config_last_reload_timestamp_seconds', {})! >= Math.floor(before));
  assert.equal(v(rejected, 'tsubame_config_last_reload_success_timestamp_seconds', {}), startedAt, 'the configuration in force is the one applied before');
  const page = await statusPage();
  assert.match(page, /The last configuration change \(edit in etc\/, <span[^>]*>[^<]*<\/span>\) was not applied<\/strong>/);
  assert.ok(page.includes(`${join(mta.root, 'etc', 'option.dat')}:${line}: error: MAX_RECIPIENTS`), page);

  mta.inst.write('etc/option.dat', good);
  const applied = await waitFor(async () => {
    const m = await scrape();
    return v(m, 'tsubame_config_last_reload_successful', {}) === 1 ? m : null;
  }, { timeoutMs: 20_000, what: 'tsubame_config_last_reload_successful 1 after the edit is undone' });
  assert.ok(v(applied, 'tsubame_config_last_reload_success_timestamp_seconds', {})! >= Math.floor(before));
  assert.doesNotMatch(await statusPage(), /was not applied/);
});

test('start-msg with METRICS_PORT in use: mail starts, and start-msg says the endpoint is off', { timeout: 60_000 }, async () => {
  const port = await freePort('127.0.0.1');
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
  try {
    const busy = await MtaInstance.create({ address: '127.0.13.3' });
    others.push(busy);
    busy.inst.write('etc/option.dat', `INTERNAL_IP=127.0.0.0/8\nMETRICS_PORT=${port}\n`);
    const started = await busy.cli('start-msg', [], 60_000);
    assert.equal(started.code, 0, `a busy metrics port does not stop mail: ${started.stderr}`);
    assert.match(started.stdout, /^tsubame started: SMTP on /);
    assert.ok(started.stdout.includes(`\nwarning: METRICS_PORT ${port}: 127.0.0.1:${port} is already in use; the metrics endpoint is off until the next reload\n`), started.stdout);
    assert.match(await greeting(busy.address, busy.port), /^220 /);
  } finally {
    await new Promise<void>((resolve) => squatter.close(() => resolve()));
  }
});

test('without METRICS_PORT nothing listens; a reload turns it on (a port in use is logged, not fatal) and off', { timeout: 60_000 }, async () => {
  const other = await MtaInstance.create({ address: '127.0.13.2' });
  others.push(other);
  const started = await other.cli('start-msg', [], 60_000);
  assert.equal(started.code, 0, started.stderr);
  const watcherPid = (await other.pidOf('watcher'))!;
  assert.deepEqual(listeningPorts(watcherPid), [], 'the watcher listens on no TCP port');

  const port = await freePort('127.0.0.1');
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
  try {
    other.inst.write('etc/option.dat', `INTERNAL_IP=127.0.0.0/8\nMETRICS_PORT=${port}\n`);
    const reload = await other.imsimta(['reload']);
    assert.equal(reload.code, 0, `a busy metrics port does not refuse the reload: ${reload.stderr}`);
    await waitFor(() => other.inst.read('log/watcher.log').includes(`METRICS_PORT ${port}: 127.0.0.1:${port} is already in use`), { what: 'the port-in-use line in watcher.log' });
    assert.deepEqual(listeningPorts(watcherPid), []);
  } finally {
    await new Promise<void>((resolve) => squatter.close(() => resolve()));
  }
  const again = await other.imsimta(['reload']);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(listeningPorts(watcherPid), [port], 'listening once the port is free and the configuration is reloaded');
  const m = await scrape(port);
  assert.equal(v(m, 'tsubame_part_up', { part: 'dispatcher' }), 1);

  other.inst.write('etc/option.dat', 'INTERNAL_IP=127.0.0.0/8\n');
  const off = await other.imsimta(['reload']);
  assert.equal(off.code, 0, off.stderr);
  assert.ok(await refused('127.0.0.1', port), 'nothing listens after METRICS_PORT is removed');
  assert.deepEqual(listeningPorts(watcherPid), []);
});
