// Each destination's traffic shaping as the operator sees it, on a started instance: a receiver
// that greets with 421 pauses its destination (etc/shaping.cnf names it), while the other
// destination's mail is delivered; `imsimta qm shaping` (text and --json), /metrics and the status
// page then show the paused destination with its throttle and the calm one steady.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer, startSmtpPeers, type SimDns, type SmtpPeer } from '../helpers/sim-internet.js';
import { freePort, waitFor } from '../helpers/instance.js';
import type { MtaInstance } from '../helpers/running-instance.js';
import { createEtrnInstance, sendMail, startInstance } from './etrn-fixture.js';
import type { DestinationShaping } from '../../src/job-controller/shaping-view.js';

const SERVER = '127.0.21.11';
const DNS = '127.0.21.53';
const HOT = '127.0.21.21';
const CALM = '127.0.21.22';

let dns: SimDns;
let peers: SmtpPeer[];
let mta: MtaInstance;
let metricsPort: number;

before(async () => {
  dns = await startDnsServer({
    host: DNS,
    records: {
      'hot.test': { mx: [{ exchange: 'mx.hot.test', preference: 10 }] },
      'mx.hot.test': { a: [HOT] },
      'calm.test': { mx: [{ exchange: 'mx.calm.test', preference: 10 }] },
      'mx.calm.test': { a: [CALM] },
    },
  });
  const started = await startSmtpPeers([{ host: HOT, greetingReply: { code: 421, message: '4.7.0 too many connections from your IP, slow down' } }, { host: CALM }]);
  peers = started.peers;
  metricsPort = await freePort('127.0.0.1');
  mta = await createEtrnInstance({ address: SERVER, dnsServer: dns.server, mxPort: started.port, options: `METRICS_PORT=${metricsPort}`, channelKeywords: 'backoff "PT1H"' });
  // A long pause: the destination is still paused when the views are read.
  mta.inst.write('etc/shaping.cnf', '[DESTINATION=hot]\nMX_HOST=mx.hot.test\nTHROTTLE_PAUSE=PT10M\nTHROTTLE_PAUSE_MAX=PT20M\n');
  await startInstance(mta);
});

after(async () => {
  await mta?.cleanup();
  for (const p of peers ?? []) await p.close();
  await dns?.close();
});

async function shapingRows(): Promise<DestinationShaping[]> {
  const r = await mta.imsimta(['qm', 'shaping', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as DestinationShaping);
}

test('a destination that greets with 421 is paused and shown so by imsimta qm shaping, /metrics and the status page; the other one is delivered and steady', async () => {
  await sendMail(
    mta,
    SERVER,
    Array.from({ length: 3 }, (_, i) => ({ from: 'list@sender.test', to: [`m${i}@hot.test`, `m${i}@calm.test`], subject: `post ${i}` })),
  );
  const calm = peers[1]!;
  await waitFor(() => calm.deliveredRecipients().length === 3, { timeoutMs: 20_000, what: 'calm.test delivered' });
  const rows = await waitFor(
    async () => {
      const rows = await shapingRows();
      return rows.some((r) => r.destination === 'hot' && r.throttled) && rows.some((r) => r.destination.startsWith(`mx:${CALM}:`)) ? rows : null;
    },
    { timeoutMs: 15_000, what: 'both destinations reported' },
  );
  const hot = rows.find((r) => r.destination === 'hot')!;
  assert.equal(rows[0]!.destination, 'hot', 'throttled destinations first');
  assert.equal(hot.channel, 'tcp_local');
  assert.equal(hot.section, 'hot');
  assert.equal(hot.phase, 'paused');
  assert.ok(hot.pausedUntil! > Date.now() + 5 * 60_000, 'paused for THROTTLE_PAUSE (10 minutes)');
  assert.match(hot.lastThrottle!.reply, /^421 4\.7\.0 too many connections/);
  assert.ok(hot.throttles >= 1);
  const calmRow = rows.find((r) => r.destination.startsWith(`mx:${CALM}:`))!;
  assert.equal(calmRow.throttled, false);
  assert.equal(calmRow.messagesSent, 3);

  const text = await mta.imsimta(['qm', 'shaping', 'tcp_local']);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^CHANNEL\s+DESTINATION\s+STATE\s+CONNS\s+RATE\s+WAITING\s+OLDEST\s+DEFERRED\s+THROTTLES\s+LAST THROTTLE$/m);
  assert.match(text.stdout, /^tcp_local\s+hot\s+paused \d+s\s+\d+\/\d+\/20\s+.*421 4\.7\.0 too many connections/m);
  const other = await mta.imsimta(['qm', 'shaping', 'nosuch']);
  assert.equal(other.code, 1);
  assert.match(other.stderr, /no channel named "nosuch"/);

  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  assert.match(metrics, /^tsubame_shaping_throttled\{channel="tcp_local",destination="hot"\} 1$/m);
  assert.match(metrics, new RegExp(`^tsubame_shaping_throttled\\{channel="tcp_local",destination="mx:${CALM.replaceAll('.', '\\.')}:\\d+"\\} 0$`, 'm'));
  assert.match(metrics, /^tsubame_shaping_throttles_total\{channel="tcp_local",destination="hot"\} [1-9]/m);
  const page = await (await fetch(`http://127.0.0.1:${metricsPort}/`)).text();
  assert.match(page, /<h2>Traffic shaping<\/h2>/);
  assert.match(page, /<td class="warn">paused \d+s<\/td>/);
});
