// Fast ETRN benchmark: N customer domains × M messages, all deferred (every MX refuses, backoff
// one hour), on a temporary instance started with start-msg on 127.0.10.200. Then:
//   1. restart of the job controller (the fast-flush index is loaded from its journal);
//   2. fast flush: one domain's MX comes up, `ETRN d0.bench.test`; time until its M messages
//      are at the MX, and how many other messages were tried meanwhile (should be none);
//   3. full-queue flush for comparison: another domain's MX comes up, `ETRN elsewhere.test`
//      (not a fast-flush domain: Postfix's slow ETRN retries the whole queue); time until that
//      domain's M messages are at its MX, and until every other message was tried again.
//   node dist/bench/etrn.js [--domains 200] [--messages 10] [--sessions 8] [--json]
// BENCH_KEEP=1 keeps the instance directory (stopped) for a look at its logs.
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDnsServer, startSmtpPeer, type DnsTable, type SmtpPeer } from '../test/helpers/sim-internet.js';
import { waitFor } from '../test/helpers/instance.js';
import { createEtrnInstance, etrn, jobController, mailLog, sendMail, startInstance, type Mail } from '../test/integration/etrn-fixture.js';
import { machineDescription } from './lib/peers.js';
import type { MtaInstance } from '../test/helpers/running-instance.js';

const SERVER = '127.0.10.200';
const CLIENT = '127.0.10.201';
const DNS = '127.0.10.253';
const FAST_MX = '127.0.10.221';
const SLOW_MX = '127.0.10.222';
/** Dead MX hosts (nothing listens); domains beyond the first two are spread over them. */
const DEAD_MX = Array.from({ length: 20 }, (_, i) => `127.0.10.${230 + i}`);

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const domains = Number(option('domains', '200'));
const perDomain = Number(option('messages', '10'));
const sessions = Number(option('sessions', '8'));
const asJson = process.argv.includes('--json');
const total = domains * perDomain;
const domain = (i: number) => `d${i}.bench.test`;

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

const deferrals = (mta: MtaInstance) => mailLog(mta).filter((r) => r.event === 'Q').length;

async function main(): Promise<void> {
  if (domains < 3 || perDomain < 1) throw new Error('--domains must be at least 3 and --messages at least 1');
  const records: DnsTable = {};
  for (let i = 0; i < domains; i++) {
    const host = `mx.${domain(i)}`;
    records[domain(i)] = { mx: [{ exchange: host, preference: 10 }] };
    records[host] = { a: [i === 0 ? FAST_MX : i === 1 ? SLOW_MX : DEAD_MX[i % DEAD_MX.length]!] };
  }
  records['warmup.test'] = { mx: [{ exchange: 'mx.warmup.test', preference: 10 }] };
  records['mx.warmup.test'] = { a: [FAST_MX] };
  const dns = await startDnsServer({ host: DNS, records });
  const mxPort = await freePort(FAST_MX);
  const mta = await createEtrnInstance({
    address: SERVER,
    dnsServer: dns.server,
    mxPort,
    options: 'FAST_FLUSH_DOMAINS=.bench.test',
    jobControllerCnf: '[POOL=DEFAULT]\nJOB_LIMIT=4\n',
  });
  const peers: SmtpPeer[] = [];
  try {
    await startInstance(mta);

    // Fill the queue: every message is tried once (connection refused) and deferred for an hour.
    const t0 = performance.now();
    const mails: Mail[] = [];
    for (let j = 0; j < perDomain; j++) for (let i = 0; i < domains; i++) mails.push({ from: 'list@sender.test', to: [`u${j}@${domain(i)}`], subject: `m${i}-${j}` });
    // At most 500 messages per session (MAX_MESSAGES_PER_SESSION is 1000), `sessions` at a time.
    const batches: Mail[][] = [];
    for (let k = 0; k < mails.length; k += 500) batches.push(mails.slice(k, k + 500));
    await Promise.all(Array.from({ length: sessions }, async () => {
      for (let b = batches.shift(); b; b = batches.shift()) await sendMail(mta, CLIENT, b);
    }));
    await waitFor(() => deferrals(mta) >= total, { timeoutMs: 600_000, intervalMs: 250, what: `${total} deferrals` });
    const fillSeconds = (performance.now() - t0) / 1000;

    // 1. Restart: the index comes back from the journal.
    const r0 = performance.now();
    const restart = await mta.imsimta(['restart', 'job_controller'], 180_000);
    if (restart.code !== 0) throw new Error(`restart: ${restart.stderr}`);
    const restartSeconds = (performance.now() - r0) / 1000;
    // Steady state: the new job controller has read the queue (its start-up scan) before the flushes.
    await waitFor(async () => ((await jobController(mta, { op: 'status' }))?.index as { size?: number } | undefined)?.size === total, { timeoutMs: 300_000, intervalMs: 20, what: 'the start-up scan' });
    const scanSeconds = (performance.now() - r0) / 1000;
    const journal = journalLoad(mta);

    // 2. Fast flush of one domain. First one message through the same MX, so that the job
    //    threads the restart made are warm (module loading is not part of a flush).
    const fastPeer = await startSmtpPeer({ host: FAST_MX, port: mxPort });
    peers.push(fastPeer);
    await sendMail(mta, CLIENT, [{ from: 'list@sender.test', to: ['warm@warmup.test'], subject: 'warm-up' }]);
    await waitFor(() => fastPeer.deliveredRecipients().includes('warm@warmup.test'), { timeoutMs: 60_000, what: 'the warm-up message' });
    const atFastMx = () => fastPeer.deliveredRecipients().filter((r) => r.endsWith(`@${domain(0)}`)).length;
    const before = deferrals(mta);
    const f0 = performance.now();
    const fastReply = await etrn(mta, CLIENT, domain(0));
    const fastReplyMs = performance.now() - f0; // the whole session: connect, greeting, EHLO, ETRN
    if (fastReply.code !== 250) throw new Error(`ETRN ${domain(0)}: ${fastReply.text}`);
    await waitFor(() => atFastMx() >= perDomain, { timeoutMs: 120_000, intervalMs: 5, what: 'the fast-flushed domain' });
    const fastMs = performance.now() - f0;
    const othersTriedFast = deferrals(mta) - before;

    // 3. Full-queue flush (slow ETRN) for comparison.
    const slowPeer = await startSmtpPeer({ host: SLOW_MX, port: mxPort });
    peers.push(slowPeer);
    const before2 = deferrals(mta);
    const s0 = performance.now();
    const slowReply = await etrn(mta, CLIENT, 'elsewhere.test');
    const slowReplyMs = performance.now() - s0;
    await waitFor(() => slowPeer.deliveredRecipients().length >= perDomain, { timeoutMs: 600_000, intervalMs: 5, what: 'the domain in the full flush' });
    const slowTargetMs = performance.now() - s0;
    const rest = (domains - 2) * perDomain;
    await waitFor(() => deferrals(mta) - before2 >= rest, { timeoutMs: 600_000, intervalMs: 50, what: 'every other message tried again' });
    const slowAllMs = performance.now() - s0;

    const result = {
      machine: await machineDescription(),
      date: new Date().toISOString().slice(0, 10),
      domains,
      messagesPerDomain: perDomain,
      queued: total,
      fillSeconds: round(fillSeconds, 1),
      restartSeconds: round(restartSeconds, 2),
      restartAndScanSeconds: round(scanSeconds, 2),
      journal,
      fast: { reply: fastReply.text, replyMs: round(fastReplyMs, 1), deliveredMs: round(fastMs, 0), otherMessagesTried: othersTriedFast },
      full: { reply: slowReply.text, replyMs: round(slowReplyMs, 1), targetDeliveredMs: round(slowTargetMs, 0), allRetriedMs: round(slowAllMs, 0), otherMessagesTried: deferrals(mta) - before2 },
    };
    if (asJson) {
      process.stdout.write(JSON.stringify(result) + '\n');
    } else {
      process.stdout.write(
        [
          `machine: ${result.machine}`,
          `queue: ${domains} domains × ${perDomain} messages = ${total} deferred (filled in ${result.fillSeconds} s); job controller restart ${result.restartSeconds} s, its queue scan done after ${result.restartAndScanSeconds} s; fast-flush journal: ${journal.entries} entries loaded in ${journal.ms} ms`,
          `fast flush   ETRN ${domain(0)}: "${result.fast.reply}" in ${result.fast.replyMs} ms; ${perDomain} messages delivered ${result.fast.deliveredMs} ms after ETRN; other messages tried: ${result.fast.otherMessagesTried}`,
          `full flush   ETRN elsewhere.test: "${result.full.reply}" in ${result.full.replyMs} ms; ${domain(1)}'s ${perDomain} messages delivered after ${result.full.targetDeliveredMs} ms; all ${rest} others tried again after ${result.full.allRetriedMs} ms`,
        ].join('\n') + '\n',
      );
    }
  } catch (err) {
    if (process.env.BENCH_KEEP) process.stderr.write(`instance kept in ${mta.root}\n`);
    throw err;
  } finally {
    if (!process.env.BENCH_KEEP) await mta.cleanup();
    else await mta.cli('stop-msg', [], 60_000);
    for (const p of peers) await p.close();
    await dns.close();
  }
}

/** The new job controller's 'fast-flush index loaded' record. */
function journalLoad(mta: MtaInstance): { entries: number; ms: number } {
  const lines = readFileSync(join(mta.root, 'log', 'job_controller.log'), 'utf8').split('\n').filter((l) => l.includes('fast-flush index loaded'));
  const last = JSON.parse(lines[lines.length - 1] ?? '{}') as { entries?: number; ms?: number };
  return { entries: last.entries ?? -1, ms: last.ms ?? -1 };
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

main().catch((err: Error) => {
  process.stderr.write(`bench/etrn: ${err.message}\n`);
  process.exit(1);
});
