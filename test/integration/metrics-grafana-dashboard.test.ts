// The Grafana dashboard of contrib/grafana against what a live instance serves: every metric a
// panel or a template variable names is in the /metrics of a running instance that has received
// mail, delivered it locally and over SMTP (to a peer the test starts) and deferred some (a histogram by its _bucket, _sum and _count series), and every
// label a query selects or groups by is one that metric has (or one Prometheus adds: instance,
// job). The same check on a copy with a renamed metric and a wrong label reports both, so the
// test fails when the dashboard and the endpoint drift apart. Grafana is not packaged by Debian;
// Prometheus is: a real one scrapes the instance and answers every query of the dashboard (its
// variables filled in as Grafana would), so each parses and each has data. And the dashboard is
// one Grafana imports: unique panel ids, a 24-column grid, a data source variable on every query.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MtaInstance } from '../helpers/running-instance.js';
import { freePort, repoRoot, waitFor } from '../helpers/instance.js';
import { runTool } from './smtp-harness.js';
import { startSmtpPeer, type SmtpPeer } from '../helpers/sim-internet.js';
import { startPrometheus, PROMETHEUS, type PrometheusServer } from '../helpers/prometheus-server.js';
import { existsSync } from 'node:fs';
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.js';

const ADDRESS = '127.0.17.1';
const CLOSED_HOST = '127.0.17.9';
const PEER_HOST = '127.0.17.25';
const PROMETHEUS_HOST = '127.0.17.90';
const DASHBOARD = join(repoRoot, 'contrib', 'grafana', 'tsubame-dashboard.json');

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { uid: string };
  targets?: Array<{ expr: string; refId: string; datasource?: { uid: string } }>;
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query: string | { query: string } }> };
}

/** Labels every scraped series has besides its own. */
const SCRAPE_LABELS = ['instance', 'job'];

/** Every PromQL query of the dashboard: the panels' targets and the template variables' queries. */
function queries(d: Dashboard): Array<{ where: string; expr: string }> {
  const out: Array<{ where: string; expr: string }> = [];
  const walk = (panels: Panel[]) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(d.panels);
  for (const v of d.templating.list) if (v.type === 'query') out.push({ where: `variable $${v.name}`, expr: typeof v.query === 'string' ? v.query : v.query.query });
  return out;
}

/** What the dashboard names that the served series do not have: one line per problem. */
function dashboardProblems(d: Dashboard, served: Map<string, Set<string>>): string[] {
  const problems: string[] = [];
  for (const { where, expr } of queries(d)) {
    const names = new Set<string>();
    for (const m of expr.matchAll(/\b(tsubame_[a-zA-Z0-9_:]+)\s*(\{([^}]*)\})?/g)) {
      const name = m[1]!;
      names.add(name);
      const labels = served.get(name);
      if (!labels) {
        problems.push(`${where}: ${name} is not served`);
        continue;
      }
      for (const matcher of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) {
        if (!labels.has(matcher[1]!)) problems.push(`${where}: ${name} has no label ${matcher[1]}`);
      }
    }
    if (names.size === 0) problems.push(`${where}: names no tsubame metric`);
    // by (…) and label_values(…, label): a label one of the query's metrics has.
    const grouped = [...expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((s) => s.trim()).filter(Boolean));
    const valuesOf = /label_values\([^,]+,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)/.exec(expr);
    if (valuesOf) grouped.push(valuesOf[1]!);
    for (const label of grouped) {
      if (![...names].some((n) => served.get(n)?.has(label))) problems.push(`${where}: no metric of the query has the label ${label}`);
    }
  }
  return problems;
}

/** Series name → its label names, from an exposition (with the labels a scrape adds). */
function servedSeries(text: string): Map<string, Set<string>> {
  const served = new Map<string, Set<string>>();
  for (const family of parsePrometheusText(text).values()) {
    for (const s of family.samples) {
      const labels = served.get(s.name) ?? new Set(SCRAPE_LABELS);
      for (const l of Object.keys(s.labels)) labels.add(l);
      served.set(s.name, labels);
    }
  }
  return served;
}

let mta: MtaInstance;
let peer: SmtpPeer;
let prometheus: PrometheusServer | null = null;
let metricsPort: number;
const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;

before(async () => {
  const closedPort = await freePort(CLOSED_HOST);
  peer = await startSmtpPeer({ host: PEER_HOST });
  metricsPort = await freePort('127.0.0.1');
  mta = await MtaInstance.create({ address: ADDRESS, service: 'MIN_PROCS=1' });
  mta.inst.write(
    'etc/imta.cnf',
    `! dashboard test instance
localhost            $U%localhost@localhost
defer.test           $U%$D@tcp-defer
peer.test            $U%$D@tcp-peer
.                    $U%$H@tcp-daemon

l
localhost

tcp_defer smtp daemon ${CLOSED_HOST} port ${closedPort} backoff "PT1H"
tcp-defer

tcp_peer smtp daemon ${PEER_HOST} port ${peer.port}
tcp-peer

tcp_local smtp mx
tcp-daemon
`,
  );
  mta.inst.write('etc/option.dat', `INTERNAL_IP=127.0.0.0/8\nLOCAL_HOST=mta.dashboard.test\nMETRICS_PORT=${metricsPort}\n`);
  mta.inst.write('mailbox/joe/.keep', '');
  const r = await mta.cli('start-msg', [], 60_000);
  assert.equal(r.code, 0, r.stderr);
  await mta.processes();
  for (const to of ['joe@localhost', 'someone@defer.test', 'friend@peer.test']) {
    const sent = await runTool('/usr/bin/swaks', ['--server', `${ADDRESS}:${mta.port}`, '--timeout', '10', '--hide-informational', '--from', 'alice@client.test', '--to', to]);
    assert.equal(sent.code, 0, `${to}: ${sent.stdout}${sent.stderr}`);
  }
  // A local delivery, a deferral and a delivery over SMTP (which brings the outbound counters).
  await waitFor(
    async () => {
      const m = parsePrometheusText(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text());
      return sampleValue(m, 'tsubame_messages_delivered_total', { channel: 'l' }) === 1 && sampleValue(m, 'tsubame_messages_deferred_total', { channel: 'tcp_defer' }) === 1 && sampleValue(m, 'tsubame_outbound_connections_opened_total', { channel: 'tcp_peer' }) === 1;
    },
    { timeoutMs: 30_000, intervalMs: 200, what: 'deliveries in l and tcp_peer and a deferral in tcp_defer' },
  );
});

after(async () => {
  await prometheus?.close();
  await mta?.cleanup();
  await peer?.close();
});

test('every metric and label the dashboard names is served by a live instance\'s /metrics', async () => {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const served = servedSeries(text);
  const all = queries(dashboard);
  assert.ok(all.length >= 30, `${all.length} queries`);
  assert.deepEqual(dashboardProblems(dashboard, served), []);
  // Every metric family the endpoint serves is on the dashboard somewhere.
  const named = new Set(all.flatMap((q) => [...q.expr.matchAll(/\btsubame_[a-zA-Z0-9_:]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, ''))));
  const families = [...parsePrometheusText(text).keys()];
  assert.deepEqual(families.filter((f) => !named.has(f)), [], 'families no panel shows');
});

test('the check fails on a renamed metric, a label it does not have and a grouping by a missing label', async () => {
  const served = servedSeries(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text());
  const doctored = JSON.parse(
    JSON.stringify(dashboard)
      .replace('tsubame_queue_held_messages{', 'tsubame_queue_held{')
      .replace('tsubame_connections_open{instance=~\\"$instance\\"}', 'tsubame_connections_open{instance=~\\"$instance\\", channel=\\"x\\"}')
      .replace('sum by (service) (rate(tsubame_sessions_served_total', 'sum by (pool) (rate(tsubame_sessions_served_total'),
  ) as Dashboard;
  assert.deepEqual(dashboardProblems(doctored, served), [
    'panel "Held messages" A: tsubame_queue_held is not served',
    'panel "Open sessions" A: tsubame_connections_open has no label channel',
    'panel "Sessions per second" A: no metric of the query has the label pool',
  ]);
});

test('a dashboard Grafana imports: unique ids, panels inside the 24-column grid, every query on the data source variable', () => {
  assert.equal(dashboard.uid, 'tsubame-mta');
  const panels: Panel[] = [];
  const walk = (ps: Panel[]) => ps.forEach((p) => (panels.push(p), walk(p.panels ?? [])));
  walk(dashboard.panels);
  assert.equal(new Set(panels.map((p) => p.id)).size, panels.length, 'unique panel ids');
  for (const p of panels) {
    assert.ok(p.gridPos.x >= 0 && p.gridPos.w > 0 && p.gridPos.x + p.gridPos.w <= 24, `${p.title}: ${JSON.stringify(p.gridPos)}`);
    if (p.type === 'row') continue;
    assert.ok((p.targets ?? []).length > 0, `${p.title} has a query`);
    assert.equal(p.datasource?.uid, '${datasource}', p.title);
    for (const t of p.targets ?? []) assert.equal(t.datasource?.uid, '${datasource}', `${p.title} ${t.refId}`);
  }
  assert.deepEqual(dashboard.templating.list.map((v) => v.name), ['datasource', 'instance', 'channel']);
  // The dashboard file is plain JSON a person can read and diff: two-space indentation.
  assert.ok(readFileSync(DASHBOARD, 'utf8').startsWith('{\n  "'));
});

test('a real Prometheus scraping the instance answers every query of the dashboard, each with data', { timeout: 120_000 }, async () => {
  assert.ok(existsSync(PROMETHEUS), `${PROMETHEUS} is missing: run scripts/install-test-peers.sh as root (apt-get install prometheus)`);
  prometheus = await startPrometheus({ host: PROMETHEUS_HOST, targets: [`127.0.0.1:${metricsPort}`] });
  const p = prometheus;
  // Enough scrapes (one a second) for a rate over the window Grafana's $__rate_interval gives.
  await waitFor(async () => Number((await p.query('count_over_time(tsubame_part_up{part="dispatcher"}[30s])')).result[0]?.value[1] ?? 0) >= 6, { timeoutMs: 60_000, intervalMs: 500, what: 'six scrapes of the instance' });
  // Grafana's variables as a user who picked "All" would have them.
  const fill = (expr: string) => expr.replaceAll('$__rate_interval', '10s').replaceAll('$instance', '.*').replaceAll('$channel', '.*');
  const empty: string[] = [];
  for (const { where, expr } of queries(dashboard)) {
    const valuesOf = /^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$/.exec(expr);
    if (valuesOf) {
      // A variable's values: the label on the series of its selector.
      const data = await p.query(fill(valuesOf[1]!));
      const values = new Set(data.result.map((r) => r.metric[valuesOf[2]!]).filter(Boolean));
      if (values.size === 0) empty.push(`${where}: no value of ${valuesOf[2]}`);
      continue;
    }
    const data = await p.query(fill(expr)); // throws on a query Prometheus cannot parse
    if (data.result.length === 0) empty.push(`${where}: ${expr}`);
  }
  assert.deepEqual(empty, [], 'queries without data');
  // The channel variable lists the instance's channels.
  const channels = new Set((await p.query('tsubame_queue_messages')).result.map((r) => r.metric.channel));
  for (const c of ['l', 'tcp_defer', 'tcp_peer', 'tcp_local']) assert.ok(channels.has(c), c);
  await assert.rejects(p.query('sum(rate(tsubame_messages_delivered_total[1m])'), /parse error/, 'a broken query is an error');
});
