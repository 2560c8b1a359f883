// ETRN benchmark (issue 7): D deferred messages for other domains and M for the customer domain,
// on an instance started with start-msg on 127.0.10.200. The backlog is written straight into
// the queue while the instance is stopped, as files already tried once and deferred for a day
// (bench/lib/deferred-backlog.ts), with the fast-flush journal lines a deferral writes; the
// customer's messages are spread evenly through it. Then:
//   1. start-msg: the journal is loaded, the scheduler scans the queue (reading up to
//      MAX_MESSAGES envelopes); with --no-journal the fast-flush index is rebuilt from the files;
//   2. fast flush: the customer's MX comes up, `ETRN customer.bench.test`; the time until its M
//      messages are at that MX, the queue files the job controller read meanwhile (its status
//      `files_read`), and how many other messages were tried;
//   3. full-queue flush for comparison: a second customer's MX comes up and `ETRN elsewhere.test`
//      (not a fast-flush domain: Postfix's slow ETRN retries the whole deferred queue); the time
//      until that customer's M messages are delivered, the files read, and the time until every
//      message the scheduler holds was tried again.
//   node dist/bench/etrn.js [--deferred 100000] [--customer 100] [--max-messages 100000]
//     [--other-domains 1000] [--no-journal] [--no-slow] [--slow-timeout 600] [--strace]
//     [--etrn-at-start] [--json]
// --etrn-at-start sends the customer's ETRN as soon as start-msg has returned (the job
// controller's start-up scan still reading the queue), instead of step 2.
// --strace counts the queue files the job controller process (all its threads, the channel jobs
// too) opens during the fast flush with strace; its times are then not representative.
// BENCH_KEEP=1 keeps the instance directory (stopped) for a look at its logs.
import net from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDnsServer, startSmtpPeer, type DnsTable, type SmtpPeer } from '../test/helpers/sim-internet.js';
import { waitFor } from '../test/helpers/instance.js';
import { createEtrnInstance, etrn, jobController, startInstance } from '../test/integration/etrn-fixture.js';
import { machineDescription } from './lib/peers.js';
import { writeDeferredBacklog } from './lib/deferred-backlog.js';
import type { MtaInstance } from '../test/helpers/running-instance.js';

const SERVER = '127.0.10.200';
const CLIENT = '127.0.10.201';
const DNS = '127.0.10.210';
const FAST_MX = '127.0.10.221';
const SLOW_MX = '127.0.10.222';
/** Dead MX hosts (nothing listens): the other domains are spread over them. */
const DEAD_MX = Array.from({ length: 20 }, (_, i) => `127.0.10.${230 + i}`);
const CUSTOMER = 'customer.bench.test';
const SECOND = 'second.bench.test';
/** One more deferred message, flushed first so that the job threads are warm (new mail would not do: with MAX_MESSAGES below the backlog the scheduler has no room for it). */
const WARMUP = 'warmup.bench.test';

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const deferred = Number(option('deferred', '100000'));
const customer = Number(option('customer', '100'));
const maxMessages = Number(option('max-messages', '100000'));
const otherDomains = Number(option('other-domains', '1000'));
const slowTimeoutMs = Number(option('slow-timeout', '600')) * 1000;
const withJournal = !process.argv.includes('--no-journal');
const withSlow = !process.argv.includes('--no-slow');
const withStrace = process.argv.includes('--strace');
const etrnAtStart = process.argv.includes('--etrn-at-start');
const asJson = process.argv.includes('--json');
const other = (i: number) => `o${i % otherDomains}.bench.test`;

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

/** Queue order: the other domains round-robin, the two customers' messages spread evenly among them. */
function backlogDomains(): string[] {
  const total = deferred + 2 * customer;
  const out = new Array<string | undefined>(total);
  for (let k = 0; k < customer; k++) {
    out[Math.floor(((k + 0.25) * total) / customer)] = CUSTOMER;
    out[Math.floor(((k + 0.75) * total) / customer)] = SECOND;
  }
  let o = 0;
  return [WARMUP, ...Array.from(out, (d) => d ?? other(o++))];
}

interface JcStatus {
  pid: number;
  files_read: number;
  index: { size: number; max: number; overflowed: boolean; scans: number };
  channels: Record<string, { ready: number; inFlight: number }>;
  fast_flush: { messages: number };
}

async function status(mta: MtaInstance): Promise<JcStatus> {
  const s = (await jobController(mta, { op: 'status' }, 60_000)) as unknown as JcStatus | null;
  if (!s) throw new Error('the job controller does not answer');
  return s;
}

async function deferrals(mta: MtaInstance): Promise<number> {
  const c = (await jobController(mta, { op: 'counters' }, 60_000)) as { counters?: Record<string, { recipients: { deferred: number } }> } | null;
  return Object.values(c?.counters ?? {}).reduce((n, ch) => n + ch.recipients.deferred, 0);
}

const settled = (s: JcStatus) => Object.values(s.channels).every((c) => c.ready === 0 && c.inFlight === 0);

/** The job controller's log records with this message (JSON lines). */
function jcLog(mta: MtaInstance, msg: string): Array<Record<string, number>> {
  return readFileSync(join(mta.root, 'log', 'job_controller.log'), 'utf8')
    .split('\n')
    .filter((l) => l.includes(msg))
    .map((l) => JSON.parse(l) as Record<string, number>);
}

/** strace on every thread of `pid`, counting opens of queue files (resolves once attached). */
async function traceOpens(pid: number, queueDir: string): Promise<{ stop(): Promise<{ read: number; written: number; files: number }> }> {
  const out: string[] = [];
  const child: ChildProcess = spawn('strace', ['-f', '-e', 'trace=openat', '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let buffer = '';
  let attached = false;
  child.stderr!.on('data', (d: Buffer) => {
    buffer += d.toString();
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const l of lines) {
      if (/^strace: Process \d+ attached/.test(l)) attached = true;
      else if (l.includes(queueDir)) out.push(l);
    }
  });
  let failed: Error | null = null;
  child.once('error', (err) => (failed = err));
  // "Process N attached with K threads" comes once every thread is traced.
  await waitFor(() => attached || failed !== null, { timeoutMs: 10_000, intervalMs: 10, what: 'strace to attach' });
  if (failed) throw new Error(`strace: ${(failed as Error).message}`);
  return {
    async stop() {
      child.kill('SIGINT');
      await new Promise((r) => child.once('exit', r));
      const files = new Set<string>();
      let read = 0;
      let written = 0;
      for (const l of out) {
        const path = /"([^"]+)"/.exec(l)?.[1] ?? '';
        if (/O_WRONLY|O_RDWR|O_CREAT/.test(l)) written++;
        else if (l.includes('O_RDONLY') && !l.includes('O_DIRECTORY')) {
          read++;
          files.add(path.replace(/.*\/[0-9A-Z]{2}([0-9A-Z]+)\.00$/, '$1'));
        }
      }
      return { read, written, files: files.size };
    },
  };
}

async function main(): Promise<void> {
  if (deferred < 0 || customer < 1 || otherDomains < 1) throw new Error('--customer and --other-domains must be at least 1');
  const records: DnsTable = {};
  const mx = (domain: string, address: string) => {
    records[domain] = { mx: [{ exchange: `mx.${domain}`, preference: 10 }] };
    records[`mx.${domain}`] = { a: [address] };
  };
  for (let i = 0; i < otherDomains; i++) mx(other(i), DEAD_MX[i % DEAD_MX.length]!);
  mx(CUSTOMER, FAST_MX);
  mx(SECOND, SLOW_MX);
  mx(WARMUP, FAST_MX);
  const dns = await startDnsServer({ host: DNS, records });
  const mxPort = await freePort(FAST_MX);
  const mta = await createEtrnInstance({
    address: SERVER,
    dnsServer: dns.server,
    mxPort,
    options: 'FAST_FLUSH_DOMAINS=.bench.test',
    jobControllerCnf: `MAX_MESSAGES=${maxMessages}\n[POOL=DEFAULT]\nJOB_LIMIT=4\n`,
  });
  const peers: SmtpPeer[] = [];
  try {
    // The backlog, written while the instance is stopped.
    const backlog = await writeDeferredBacklog({ root: mta.root, channel: 'tcp_local', domains: backlogDomains(), journal: withJournal });
    const total = backlog.written;

    // 1. Start: journal, the scheduler's scan, and without the journal the rebuild.
    const fastPeer = await startSmtpPeer({ host: FAST_MX, port: mxPort });
    peers.push(fastPeer);
    const atFastMx = () => fastPeer.deliveredRecipients().filter((r) => r.endsWith(`@${CUSTOMER}`)).length;
    const r0 = performance.now();
    await startInstance(mta);
    const readyMs = performance.now() - r0;
    let atStart: { reply: string; replyMs: number; deliveredMs: number; sinceStartMs: number } | null = null;
    if (etrnAtStart) {
      const e0 = performance.now();
      const reply = await etrn(mta, CLIENT, CUSTOMER);
      const replyMs = performance.now() - e0;
      await waitFor(() => atFastMx() >= customer, { timeoutMs: 600_000, intervalMs: 2, what: "the customer's messages" });
      atStart = { reply: reply.text, replyMs: round(replyMs, 1), deliveredMs: Math.round(performance.now() - e0), sinceStartMs: Math.round(performance.now() - r0) };
    }
    await waitFor(async () => (await status(mta)).index.scans >= 1, { timeoutMs: 600_000, intervalMs: 50, what: 'the start-up scan' });
    const scanMs = performance.now() - r0;
    if (!withJournal) await waitFor(() => jcLog(mta, 'fast-flush index rebuilt').length > 0, { timeoutMs: 600_000, intervalMs: 100, what: 'the fast-flush rebuild' });
    const indexedMs = performance.now() - r0;
    const afterStart = await status(mta);

    // 2. Fast flush. First one message through the same MX, so that the job threads are warm.
    const fastFlush = async (): Promise<Record<string, unknown>> => {
      await etrn(mta, CLIENT, WARMUP);
      await waitFor(() => fastPeer.deliveredRecipients().some((r) => r.endsWith(`@${WARMUP}`)), { timeoutMs: 60_000, what: 'the warm-up message' });
      const trace = withStrace ? await traceOpens(afterStart.pid, join(mta.root, 'queue')) : null;
      const read0 = (await status(mta)).files_read;
      const deferred0 = await deferrals(mta);
      const f0 = performance.now();
      const fastReply = await etrn(mta, CLIENT, CUSTOMER);
      const fastReplyMs = performance.now() - f0; // the whole session: connect, greeting, EHLO, ETRN
      if (fastReply.code !== 250) throw new Error(`ETRN ${CUSTOMER}: ${fastReply.text}`);
      await waitFor(() => atFastMx() >= customer, { timeoutMs: 120_000, intervalMs: 2, what: "the customer's messages" });
      const fastMs = performance.now() - f0;
      const fastFilesRead = (await status(mta)).files_read - read0;
      const fastOthersTried = (await deferrals(mta)) - deferred0;
      const traced = trace ? await trace.stop() : null;
      return { reply: fastReply.text, replyMs: round(fastReplyMs, 1), deliveredMs: Math.round(fastMs), filesRead: fastFilesRead, othersTried: fastOthersTried, strace: traced };
    };
    const fast = etrnAtStart ? null : await fastFlush();

    // 3. Full-queue flush (slow ETRN) for comparison.
    let full: Record<string, unknown> | null = null;
    if (withSlow) {
      const slowPeer = await startSmtpPeer({ host: SLOW_MX, port: mxPort });
      peers.push(slowPeer);
      const read1 = (await status(mta)).files_read;
      const deferred1 = await deferrals(mta);
      const s0 = performance.now();
      const slowReply = await etrn(mta, CLIENT, 'elsewhere.test');
      const slowReplyMs = performance.now() - s0;
      const atSlowMx = () => slowPeer.deliveredRecipients().filter((r) => r.endsWith(`@${SECOND}`)).length;
      const deadline = s0 + slowTimeoutMs;
      await waitFor(() => atSlowMx() >= customer || performance.now() > deadline, { timeoutMs: slowTimeoutMs + 10_000, intervalMs: 5, what: "the second customer's messages" });
      const target = { delivered: atSlowMx(), ms: Math.round(performance.now() - s0), filesRead: (await status(mta)).files_read - read1 };
      await waitFor(async () => settled(await status(mta)) || performance.now() > deadline, { timeoutMs: slowTimeoutMs + 60_000, intervalMs: 250, what: 'every held message tried again' });
      const end = await status(mta);
      full = {
        reply: slowReply.text,
        replyMs: round(slowReplyMs, 1),
        target,
        allRetried: { done: settled(end), ms: Math.round(performance.now() - s0), filesRead: end.files_read - read1, othersTried: (await deferrals(mta)) - deferred1 },
      };
    }

    // The log is written asynchronously: read it last.
    const journal = jcLog(mta, 'fast-flush index loaded').pop() ?? {};
    const scan = jcLog(mta, 'queue scanned').find((r) => (r as unknown as { reason: string }).reason === 'start') ?? {};
    const rebuild = jcLog(mta, 'fast-flush index rebuilt').pop() ?? null;
    const result = {
      machine: await machineDescription(),
      date: new Date().toISOString().slice(0, 10),
      loadAverage: (await import('node:os')).loadavg().map((n) => round(n, 2)),
      deferred,
      customer,
      queued: total,
      maxMessages,
      journal: withJournal,
      backlog: { seconds: round(backlog.seconds, 1), journalEntries: backlog.journalEntries },
      start: {
        readyMs: Math.round(readyMs),
        journalLoad: { entries: journal.entries ?? -1, ms: journal.ms ?? -1 },
        scan: { doneMs: Math.round(scanMs), admitted: scan.admitted ?? -1, ms: scan.ms ?? -1 },
        rebuild: rebuild && { read: rebuild.read, indexed: rebuild.indexed, ms: rebuild.ms, doneMs: Math.round(indexedMs) },
        filesRead: afterStart.files_read,
        index: afterStart.index.size,
        fastFlushIndex: afterStart.fast_flush.messages,
      },
      atStart,
      fast,
      full,
    };
    if (asJson) process.stdout.write(JSON.stringify(result) + '\n');
    else process.stdout.write(report(result) + '\n');
  } catch (err) {
    if (process.env.BENCH_KEEP) process.stderr.write(`instance kept in ${mta.root}\n`);
    throw err;
  } finally {
    if (!process.env.BENCH_KEEP) await mta.cleanup();
    else await mta.cli('stop-msg', [], 120_000);
    for (const p of peers) await p.close();
    await dns.close();
  }
}

function report(r: any): string {
  const s = r.start;
  const lines: string[] = [
    `machine: ${r.machine}; load average ${r.loadAverage.join(' ')}`,
    `queue: ${r.deferred} deferred for ${otherDomains} other domains + ${r.customer} for ${CUSTOMER} + ${r.customer} for ${SECOND} + 1 warm-up = ${r.queued} files, written in ${r.backlog.seconds} s; MAX_MESSAGES=${r.maxMessages}; journal ${r.journal ? `${r.backlog.journalEntries} entries` : 'none (rebuilt by the job controller)'}`,
    `start: ready after ${s.readyMs} ms (journal: ${s.journalLoad.entries} entries in ${s.journalLoad.ms} ms); start-up scan done after ${s.scan.doneMs} ms (${s.scan.admitted} admitted, ${s.scan.ms} ms)` +
      (s.rebuild ? `; rebuild read ${s.rebuild.read} files, indexed ${s.rebuild.indexed}, done after ${s.rebuild.doneMs} ms` : '') +
      `; files read ${s.filesRead}; scheduler ${s.index}, fast-flush index ${s.fastFlushIndex}`,
  ];
  if (r.atStart) {
    lines.push(`ETRN at start  ${CUSTOMER}: "${r.atStart.reply}" in ${r.atStart.replyMs} ms; ${r.customer} delivered ${r.atStart.deliveredMs} ms after ETRN (${r.atStart.sinceStartMs} ms after start-msg began)`);
  }
  if (r.fast) {
    lines.push(
      `fast flush  ETRN ${CUSTOMER}: "${r.fast.reply}" in ${r.fast.replyMs} ms; ${r.customer} delivered ${r.fast.deliveredMs} ms after ETRN; files read ${r.fast.filesRead}; others tried ${r.fast.othersTried}` +
        (r.fast.strace ? `; strace: ${r.fast.strace.read} read-only opens of ${r.fast.strace.files} queue files, ${r.fast.strace.written} opens for writing` : ''),
    );
  }
  if (r.full) {
    lines.push(
      `full flush  ETRN elsewhere.test: "${r.full.reply}" in ${r.full.replyMs} ms; ${SECOND}: ${r.full.target.delivered}/${r.customer} delivered after ${r.full.target.ms} ms (files read ${r.full.target.filesRead}); ` +
        `${r.full.allRetried.done ? 'all held messages tried again' : 'not settled'} after ${r.full.allRetried.ms} ms (files read ${r.full.allRetried.filesRead}, deferrals ${r.full.allRetried.othersTried})`,
    );
  }
  return lines.join('\n');
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

main().catch((err: Error) => {
  if (process.env.BENCH_DEBUG) console.error(err);
  process.stderr.write(`bench/etrn: ${err.message}\n`);
  process.exit(1);
});
