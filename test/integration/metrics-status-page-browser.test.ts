// The status page as a person sees it: Debian's Chromium, headless, driven by playwright-core,
// opens GET / on METRICS_PORT of a running instance that has deferred and held mail. The page
// shows the process table (the pids `imsimta process --json` gives), the queue depth per
// channel and the deferral reason; the charts of the last hours (inline SVG) count the mail sent
// and the queue, and a screenshot of the mail chart shows its lines in their colors; the
// deferrals grouped by reason link to a page of their queue entries; mail text stays text (a
// hostile recipient neither becomes markup nor runs); no script error happens, and the page
// refreshes itself. Screenshots are kept in test-artifacts/status-page.png (the whole page) and
// test-artifacts/status-charts.png (the mail chart).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { MtaInstance } from '../helpers/running-instance.js';
import { freePort, repoRoot, runCli, waitFor } from '../helpers/instance.js';
import { runTool } from './smtp-harness.js';
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.js';
import { countColor, decodePng } from '../helpers/png.js';

const ADDRESS = '127.0.16.3';
const CLOSED_HOST = '127.0.16.9';
const CHROMIUM = '/usr/bin/chromium';
// No spaces: mail.log (where the deferrals come from) writes a space in an address as _.
const HOSTILE = '"<svg/onload=alert(1)>"@defer.test';
const SCREENSHOT = join(repoRoot, 'test-artifacts', 'status-page.png');
const CHART_SCREENSHOT = join(repoRoot, 'test-artifacts', 'status-charts.png');

let mta: MtaInstance;
let metricsPort: number;
let browser: Browser | null = null;

before(async () => {
  const closedPort = await freePort(CLOSED_HOST);
  metricsPort = await freePort('127.0.0.1');
  mta = await MtaInstance.create({ address: ADDRESS, service: 'MIN_PROCS=1' });
  mta.inst.write(
    'etc/imta.cnf',
    `! status page test instance
localhost            $U%localhost@localhost
defer.test           $U%$D@tcp-defer
held.test            $U%$D@hold-daemon
.                    $U%$H@tcp-daemon

l
localhost

tcp_defer smtp daemon ${CLOSED_HOST} port ${closedPort} backoff "PT1H"
tcp-defer

hold
hold-daemon

tcp_local smtp mx
tcp-daemon
`,
  );
  mta.inst.write('etc/option.dat', `INTERNAL_IP=127.0.0.0/8\nLOCAL_HOST=mta.status.test\nMETRICS_PORT=${metricsPort}\n`);
  const r = await mta.cli('start-msg', [], 60_000);
  assert.equal(r.code, 0, r.stderr);
  await mta.processes();

  for (const to of ['first@defer.test', 'second@defer.test', 'parked@held.test']) {
    const sent = await runTool('/usr/bin/swaks', ['--server', `${ADDRESS}:${mta.port}`, '--timeout', '10', '--hide-informational', '--from', 'alice@client.test', '--to', to]);
    assert.equal(sent.code, 0, `${to}: ${sent.stdout}${sent.stderr}`);
  }
  // The SMTP server refuses "<" in an address; a local submission takes it.
  const submitted = await runCli('imsimta', ['submit', '--root', mta.root, '-f', 'alice@client.test', HOSTILE], { input: 'Subject: hostile\n\nbody\n' });
  assert.equal(submitted.code, 0, submitted.stderr);

  // Three deferrals (connection refused) and one held message, as the metrics say.
  await waitFor(
    async () => {
      const m = parsePrometheusText(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text());
      return sampleValue(m, 'tsubame_messages_deferred_total', { channel: 'tcp_defer' }) === 3 && sampleValue(m, 'tsubame_queue_messages', { channel: 'hold' }) === 1;
    },
    { timeoutMs: 30_000, intervalMs: 200, what: '3 deferred messages in tcp_defer and 1 in hold' },
  );
  // And mail.log has their records (the deferrals are written just after the counters change).
  await waitFor(
    async () => {
      const page = await (await fetch(`http://127.0.0.1:${metricsPort}/`)).text();
      return /data-series="deferred" data-sum="3"/.test(page);
    },
    { timeoutMs: 15_000, intervalMs: 200, what: 'the mail chart counting 3 deferrals' },
  );
});

after(async () => {
  await browser?.close().catch(() => {});
  await mta?.cleanup();
});

/** The rows (cell texts) of the table right after the heading `title`. */
async function tableRows(page: Page, title: string): Promise<string[][]> {
  const rows = page.locator(`h2:text-is("${title}") + table > tbody > tr`);
  const out: string[][] = [];
  for (let i = 0; i < (await rows.count()); i++) out.push((await rows.nth(i).locator('td').allTextContents()).map((t) => t.trim()));
  return out;
}

test('Chromium shows processes, queue depths and the deferral reason, with no script error; screenshot saved', { timeout: 30_000 }, async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/install-test-peers.sh as root (apt-get install chromium)`);
  mkdirSync(join(repoRoot, 'test-artifacts'), { recursive: true });
  rmSync(SCREENSHOT, { force: true });

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], timeout: 15_000 });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const scriptErrors: string[] = [];
  const dialogs: string[] = [];
  page.on('pageerror', (err) => scriptErrors.push(err.message));
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });

  const response = await page.goto(`http://127.0.0.1:${metricsPort}/`, { waitUntil: 'load', timeout: 10_000 });
  assert.equal(response?.status(), 200);
  assert.equal(await page.title(), 'tsubame status');
  assert.equal((await page.locator('h1').textContent())?.trim(), 'tsubame');

  // Processes: a row per process, with the pids the operator's command gives.
  const processes = await tableRows(page, 'Processes');
  const expected = await mta.processes();
  for (const role of ['watcher', 'dispatcher', 'smtp_server', 'job_controller']) {
    const pid = expected.find((r) => r.role === role)?.pid;
    assert.ok(pid, `imsimta process --json has a ${role}`);
    assert.ok(processes.some((cells) => cells[0] === role && cells[1] === String(pid)), `a ${role} row with pid ${pid}: ${JSON.stringify(processes)}`);
  }
  const smtpRow = processes.find((cells) => cells[0] === 'smtp_server');
  assert.equal(smtpRow?.[2], 'SMTP', 'the SMTP server process names its service');

  // Queue: the depth per channel (columns: Channel, Queued, Held, …).
  const queue = await tableRows(page, 'Queue');
  const depth = (channel: string) => queue.find((cells) => cells[0] === channel)?.slice(1, 3);
  assert.deepEqual(depth('tcp_defer'), ['3', '0'], `tcp_defer: 3 queued, none held: ${JSON.stringify(queue)}`);
  assert.deepEqual(depth('hold'), ['1', '1'], `hold: 1 queued and held: ${JSON.stringify(queue)}`);

  // Deferrals (columns: When, Queue id, Channel, Recipient, Reason): each with its reason.
  const deferrals = await tableRows(page, 'Recent deferrals');
  const recipients = deferrals.filter((cells) => cells[2] === 'tcp_defer').map((cells) => cells[3]).sort();
  assert.deepEqual(recipients, [HOSTILE, 'first@defer.test', 'second@defer.test'].sort(), JSON.stringify(deferrals));
  for (const cells of deferrals) assert.match(cells[4] ?? '', /Connection refused/, `the reason of ${cells[3]}`);

  // The charts of the last hours: four inline SVG charts; the mail chart counts the 4 messages
  // received and the 3 deferred, the queue chart the depth of tcp_defer and hold.
  for (const id of ['mail', 'queue', 'oldest', 'connections']) assert.equal(await page.locator(`svg.chart.chart-${id}`).count(), 1, `the ${id} chart`);
  const series = (chart: string, name: string, attr: 'data-sum' | 'data-last') => page.locator(`svg.chart-${chart} g.series[data-series="${name}"]`).getAttribute(attr);
  assert.equal(await series('mail', 'received', 'data-sum'), '4');
  assert.equal(await series('mail', 'deferred', 'data-sum'), '3');
  assert.equal(await series('mail', 'delivered', 'data-sum'), '0');
  assert.equal(await series('queue', 'tcp_defer', 'data-last'), '3');
  assert.equal(await series('queue', 'hold', 'data-last'), '1');
  assert.equal(await series('connections', 'sessions', 'data-last'), '0');
  assert.ok((await page.locator('svg.chart-mail polyline').count()) >= 5, 'a line per series');

  // Deferrals grouped by reason and destination (columns: Outcome, Messages, Recipients,
  // Destination, Reason, Last, link): the three refused connections, in one group or two (a
  // delivery job that found the host down skips it for the next messages, and says so).
  const groups = await tableRows(page, 'Deferrals and returns by reason');
  assert.ok(groups.length >= 1 && groups.length <= 2, JSON.stringify(groups));
  assert.equal(groups.reduce((n, cells) => n + Number(cells[1]), 0), 3, JSON.stringify(groups));
  for (const cells of groups) {
    assert.equal(cells[0], 'deferred');
    assert.equal(cells[3], CLOSED_HOST, 'the host that refused');
    assert.match(cells[4] ?? '', /^451 4\.4\.1 connect to .*Connection refused/);
    assert.doesNotMatch(cells[4] ?? '', /\d{4}-\d\d-\d\dT/, 'no time in a reason: the same reason is one group');
  }

  // The hostile recipient is text: no element made of it, nothing run. The only SVG elements
  // are the charts, which carry no handler.
  assert.equal(await page.locator('svg:not(.chart)').count(), 0, 'no <svg> from the recipient');
  assert.equal(await page.locator('[onload]').count(), 0, 'no element with an onload handler');
  assert.deepEqual(dialogs, [], 'no alert() ran');

  await page.screenshot({ path: SCREENSHOT, fullPage: true, timeout: 10_000 });
  // The mail chart as drawn: its received (blue) and deferred (orange) lines are on the screen.
  rmSync(CHART_SCREENSHOT, { force: true });
  await page.locator('svg.chart-mail').screenshot({ path: CHART_SCREENSHOT, timeout: 10_000 });
  const chart = decodePng(readFileSync(CHART_SCREENSHOT));
  assert.ok(chart.width >= 400 && chart.height >= 150, `${chart.width}×${chart.height}`);
  const plot = { top: 20, bottom: 168 }; // above the legend, whose color squares would count too
  assert.ok(countColor(chart, '#0072b2', plot) >= 6, `received line: ${countColor(chart, '#0072b2', plot)} blue pixels`);
  assert.ok(countColor(chart, '#e69f00', plot) >= 6, `deferred line: ${countColor(chart, '#e69f00', plot)} orange pixels`);
  assert.ok(countColor(chart, '#0072b2', { top: 190 }) >= 50, 'the legend square of received');

  // Each group's link: a page of its queue entries; together the three messages still queued,
  // each for a next attempt.
  const queuedIds = (await runCli('imsimta', ['qm', 'directory', '--json', 'tcp_defer', '--root', mta.root])).stdout.trim().split('\n').map((l) => (JSON.parse(l) as { id: string }).id).sort();
  assert.equal(queuedIds.length, 3);
  const links = await page.locator('a.entries').evaluateAll((as) => as.map((a) => (a as unknown as { href: string }).href));
  assert.equal(links.length, groups.length);
  const listed: string[][] = [];
  for (const [i, href] of links.entries()) {
    await page.goto(href, { waitUntil: 'load', timeout: 10_000 });
    assert.match(await page.title(), /^tsubame: Deferred: 451 4\.4\.1 connect to .*Connection refused/);
    const entries = await tableRows(page, `Messages (${groups[i]![1]})`);
    // The first message's refused connection is its try; the others found the host in its retry
    // window and were not tried (issue 13: no try counted without trying).
    for (const cells of entries) assert.match(cells[4] ?? '', /^next attempt in \d+ (min|s), (1 attempt|0 attempts)$/, JSON.stringify(cells));
    listed.push(...entries);
    assert.equal(await page.locator('svg, [onload]').count(), 0);
  }
  assert.deepEqual(listed.map((cells) => cells[0]).sort(), queuedIds);
  assert.ok(listed.some((cells) => cells[2] === HOSTILE), 'the hostile recipient as text');
  await page.goto(`http://127.0.0.1:${metricsPort}/`, { waitUntil: 'load', timeout: 10_000 });

  // The meta refresh reloads the page in the browser too (every 5 s); still no script error.
  await page.waitForEvent('load', { timeout: 10_000 });
  assert.equal(await page.title(), 'tsubame status');
  assert.deepEqual(scriptErrors, [], 'no script error on the page');

  // The screenshot: a PNG of the whole page, not an empty image.
  assert.ok(existsSync(SCREENSHOT), SCREENSHOT);
  const png = readFileSync(SCREENSHOT);
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  const width = png.readUInt32BE(16);
  const height = png.readUInt32BE(20);
  assert.equal(width, 1280);
  assert.ok(height >= 600, `height ${height}`);
  assert.ok(statSync(SCREENSHOT).size > 20_000, `a ${statSync(SCREENSHOT).size}-byte screenshot is too small to show the page`);
});
