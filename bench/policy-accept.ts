// The inbound policy's cost: accept rate and CPU per message over SMTP, for the same DKIM-signed
// messages from a client outside INTERNAL_IP, with message authentication and one milter on
// versus off. Each mode gets a fresh started instance (the shipped etc/, its `l` channel stopped
// so nothing is delivered while it runs):
//   off     spfnone noauthverify on tcp_local, no milter: the data streams straight into the queue
//   verify  SPF at MAIL, DKIM/DMARC/ARC at the end of DATA (rsa-sha256 2048-bit signature), the
//           answers from dnsmasq on loopback, in the SMTP server's DNS cache after the warm-up
//   milter  rspamd as the milter of tcp_local (sourcespamfilter1), no verification
//   both    verification and rspamd
//
//   node dist/bench/policy-accept.js [--messages 2000] [--sessions 10] [--size 2048]
//        [--modes off,verify,milter,both] [--runs 1] [--json]
//
// Sessions are kept open (one per client, its messages one after the other). Reported per mode:
// msg/s (messages / wall time of the load), tsubame's CPU per message (user + system of its whole
// process tree, from /proc) and rspamd's (its process group) when it runs.
import net from 'node:net';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { generateKeyPairSync } from 'node:crypto';
import { createRequire } from 'node:module';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { machineDescription, repoRoot, waitListening } from './lib/peers.js';
import { loadAverage, treeCpuSeconds } from './lib/proc-stats.js';
import { discardDir } from './lib/discard.js';
import { startDnsmasq, txtRecord, type Dnsmasq } from '../test/helpers/dnsmasq.js';
import { startRspamd, type Rspamd } from '../test/helpers/rspamd.js';

const execFileP = promisify(execFile);
const requireCjs = createRequire(import.meta.url);
const { dkimSign } = requireCjs('mailauth/lib/dkim/sign') as { dkimSign: (message: Buffer, opts: object) => Promise<{ signatures: string; errors: unknown[] }> };

const ADDRESS = '127.0.9.21';
const PORT = 2627;
const DNS_ADDRESS = '127.0.9.53';
const LOCAL_HOST = 'mx.bench.test';
const WARM_UP = 100;

type Mode = 'off' | 'verify' | 'milter' | 'both';
const MODES: Mode[] = ['off', 'verify', 'milter', 'both'];

interface Options {
  messages: number;
  sessions: number;
  size: number;
  modes: Mode[];
  runs: number;
  json: boolean;
}

interface Result {
  run: number;
  mode: Mode;
  messages: number;
  seconds: number;
  perSecond: number;
  cpuMsPerMessage: number;
  milterCpuMsPerMessage: number | null;
  loadAverage: string;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { messages: 2000, sessions: 10, size: 2048, modes: [...MODES], runs: 1, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const whole = () => {
      const v = Number(value());
      if (!Number.isInteger(v) || v < 1) throw new Error(`${a} needs a positive whole number`);
      return v;
    };
    if (a === '--messages') o.messages = whole();
    else if (a === '--sessions') o.sessions = whole();
    else if (a === '--size') o.size = whole();
    else if (a === '--runs') o.runs = whole();
    else if (a === '--modes') o.modes = value().split(',') as Mode[];
    else if (a === '--json') o.json = true;
    else throw new Error(`unknown option ${a} (expected --messages N, --sessions N, --size N, --modes ${MODES.join(',')}, --runs N, --json)`);
  }
  if (o.modes.some((m) => !MODES.includes(m))) throw new Error(`--modes takes ${MODES.join(', ')}`);
  return o;
}

/** The message every client sends: signed by origin.bench, of about `size` octets. */
async function signedMessage(size: number, privateKey: string): Promise<Buffer> {
  const line = 'The quick brown fox jumps over the lazy dog, again and again and again.\r\n';
  const head = `From: Bench <bench@origin.bench>\r\nTo: user@${LOCAL_HOST}\r\nSubject: policy bench\r\nMessage-ID: <policy@origin.bench>\r\nDate: Mon, 1 Jun 2026 10:00:00 +0000\r\n\r\n`;
  const body = line.repeat(Math.max(1, Math.ceil((size - head.length) / line.length)));
  const plain = Buffer.from(head + body);
  const signed = await dkimSign(plain, { canonicalization: 'relaxed/relaxed', signatureData: [{ signingDomain: 'origin.bench', selector: 'bench', privateKey }] });
  if (signed.errors.length) throw new Error(`signing failed: ${JSON.stringify(signed.errors)}`);
  return Buffer.concat([Buffer.from(signed.signatures), plain]);
}

/** One SMTP session sending `count` messages, one after the other (MAIL, RCPT, DATA pipelined); rejects on any unexpected reply. */
async function session(count: number, data: Buffer): Promise<void> {
  const socket = net.connect({ host: ADDRESS, port: PORT });
  const replies: string[] = [];
  const waiting: Array<(line: string) => void> = [];
  let buffer = '';
  let failure: Error | null = null;
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => {
    buffer += d;
    let nl: number;
    while ((nl = buffer.indexOf('\r\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 2);
      if (/^\d{3}-/.test(line)) continue;
      const w = waiting.shift();
      if (w) w(line);
      else replies.push(line);
    }
  });
  socket.on('error', (err) => {
    failure = err;
    for (const w of waiting.splice(0)) w('');
  });
  const reply = (want: string): Promise<void> =>
    new Promise<string>((resolve) => (replies.length ? resolve(replies.shift()!) : waiting.push(resolve))).then((line) => {
      if (failure) throw failure;
      if (!line.startsWith(want)) throw new Error(`expected ${want}, got "${line}"`);
    });
  try {
    await reply('220');
    socket.write('EHLO client.origin.bench\r\n');
    await reply('250');
    for (let i = 0; i < count; i++) {
      socket.write(`MAIL FROM:<bench@origin.bench>\r\nRCPT TO:<user@${LOCAL_HOST}>\r\nDATA\r\n`);
      await reply('250');
      await reply('250');
      await reply('354');
      socket.write(data);
      socket.write('.\r\n');
      await reply('250');
    }
    socket.write('QUIT\r\n');
    await reply('221');
  } finally {
    socket.destroy();
  }
}

async function load(messages: number, sessions: number, data: Buffer): Promise<number> {
  const started = performance.now();
  const per = Math.ceil(messages / sessions);
  const jobs: Array<Promise<void>> = [];
  for (let s = 0, left = messages; s < sessions && left > 0; s++, left -= per) jobs.push(session(Math.min(per, left), data));
  await Promise.all(jobs);
  return (performance.now() - started) / 1000;
}

async function startInstance(mode: Mode, dns: Dnsmasq, rspamd: Rspamd | null): Promise<{ root: string; watcherPid: number; queued(): Promise<number>; stop(): Promise<void> }> {
  const root = mkdtempSync(join(tmpdir(), 'tsubame-bench-policy-'));
  cpSync(join(repoRoot, 'etc'), join(root, 'etc'), { recursive: true });
  for (const d of ['queue', 'log', 'run', 'mailbox/user/new']) mkdirSync(join(root, d), { recursive: true });
  const imta = join(root, 'etc', 'imta.cnf');
  const keywords = { off: 'spfnone noauthverify', verify: '', milter: 'spfnone noauthverify sourcespamfilter1', both: 'sourcespamfilter1' }[mode];
  writeFileSync(imta, readFileSync(imta, 'utf8').replace(/^(tcp_local\s[^\n]*)$/m, `$1 ${keywords}`));
  const dispatcherCnf = join(root, 'etc', 'dispatcher.cnf');
  const tuned = '\nMIN_PROCS=1\nMAX_PROCS=1\nMIN_CONNS=5\nMAX_CONNS=500\nMAX_LIFE_CONNS=0\nMAX_LIFE_TIME=0\n';
  writeFileSync(dispatcherCnf, readFileSync(dispatcherCnf, 'utf8').replace(/^PORT=.*$/m, `PORT=${PORT}\nINTERFACE_ADDRESS=${ADDRESS}${tuned}`));
  const options = join(root, 'etc', 'option.dat');
  writeFileSync(
    options,
    `${readFileSync(options, 'utf8')}\n! bench: every client is outside INTERNAL_IP\nINTERNAL_IP=192.0.2.0/24\nLOCAL_HOST=${LOCAL_HOST}\nDNS_SERVERS=${dns.server}\n` +
      (rspamd ? `SPAMFILTER1_MILTER={ inet:127.0.0.1:${rspamd.port}, name = rspamd }\n` : ''),
  );
  const cli = (cmd: string, args: string[] = []) => execFileP(join(repoRoot, 'bin', cmd), [...args, '--root', root], { timeout: 120_000 });
  await cli('imsimta', ['qm', 'stop', 'l']);
  await cli('start-msg');
  await waitListening(ADDRESS, PORT, 20_000);
  return {
    root,
    watcherPid: Number(readFileSync(join(root, 'run', 'watcher.pid'), 'utf8').trim()),
    async queued() {
      const { stdout } = await cli('imsimta', ['qm', 'summarize', '--json']);
      return (JSON.parse(stdout) as { messages: number }).messages;
    },
    async stop() {
      await cli('stop-msg').catch((err: Error) => console.error(`stop-msg: ${err.message}`));
    },
  };
}

/** The checks did run: a queued message carries their headers (dkim=pass, rspamd's), or none when off. */
function checkQueued(root: string, mode: Mode): void {
  const dir = join(root, 'queue', 'l');
  const file = readdirSync(dir, { recursive: true, withFileTypes: true }).find((e) => e.isFile());
  if (!file) throw new Error(`${mode}: no queue file in ${dir}`);
  const text = readFileSync(join(file.parentPath, file.name), 'latin1');
  const verified = /Authentication-Results: mx\.bench\.test;\s+dkim=pass/.test(text);
  const filtered = text.includes('X-Spamd-Result:');
  if (verified !== (mode === 'verify' || mode === 'both') || filtered !== (mode === 'milter' || mode === 'both')) {
    throw new Error(`${mode}: a queued message has ${verified ? '' : 'no '}dkim=pass and ${filtered ? '' : 'no '}rspamd headers`);
  }
}

async function measure(o: Options, run: number, mode: Mode, dns: Dnsmasq, data: Buffer): Promise<Result> {
  const rspamd = mode === 'milter' || mode === 'both' ? await startRspamd() : null;
  const mta = await startInstance(mode, dns, rspamd).catch(async (err: Error) => {
    await rspamd?.remove();
    throw err;
  });
  try {
    await load(WARM_UP, Math.min(o.sessions, WARM_UP), data);
    const loadAvg = loadAverage();
    const cpuBefore = treeCpuSeconds(mta.watcherPid);
    const milterBefore = rspamd ? treeCpuSeconds(rspamd.pid) : 0;
    const seconds = await load(o.messages, o.sessions, data);
    const cpu = treeCpuSeconds(mta.watcherPid) - cpuBefore;
    const milterCpu = rspamd ? treeCpuSeconds(rspamd.pid) - milterBefore : null;
    const queued = (await mta.queued()) - WARM_UP;
    if (queued !== o.messages) throw new Error(`${mode}: ${queued} of ${o.messages} messages queued`);
    checkQueued(mta.root, mode);
    return {
      run,
      mode,
      messages: o.messages,
      seconds: Number(seconds.toFixed(2)),
      perSecond: Math.round(o.messages / seconds),
      cpuMsPerMessage: Number(((cpu * 1000) / o.messages).toFixed(2)),
      milterCpuMsPerMessage: milterCpu === null ? null : Number(((milterCpu * 1000) / o.messages).toFixed(2)),
      loadAverage: loadAvg,
    };
  } finally {
    await mta.stop();
    await rspamd?.remove();
    discardDir(mta.root);
  }
}

const o = parseOptions(process.argv.slice(2));
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const data = Buffer.from(
  (await signedMessage(o.size, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString())).toString('latin1').replace(/^\./gm, '..'),
  'latin1',
);
const dns = await startDnsmasq({
  host: DNS_ADDRESS,
  lines: [
    'local=/bench/',
    txtRecord('origin.bench', 'v=spf1 ip4:127.0.0.0/8 -all'),
    txtRecord('bench._domainkey.origin.bench', `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`),
    txtRecord('_dmarc.origin.bench', 'v=DMARC1; p=reject'),
  ],
});
if (!o.json) {
  console.log(`# inbound policy benchmark ${new Date().toISOString()}`);
  console.log(`# ${await machineDescription()}; load average ${loadAverage()} at start`);
  console.log(`# ${o.messages} DKIM-signed messages of ${data.length} octets over ${o.sessions} kept sessions from outside INTERNAL_IP; nothing delivered`);
}
const results: Result[] = [];
try {
  for (let run = 1; run <= o.runs; run++) {
    for (const mode of o.modes) {
      const r = await measure(o, run, mode, dns, data);
      results.push(r);
      if (!o.json) {
        const milter = r.milterCpuMsPerMessage === null ? '' : `  rspamd ${r.milterCpuMsPerMessage.toFixed(2)} ms CPU/msg`;
        console.log(`run ${run} ${mode.padEnd(6)} ${String(r.perSecond).padStart(6)} msg/s (${r.seconds.toFixed(2)} s)  tsubame ${r.cpuMsPerMessage.toFixed(2)} ms CPU/msg${milter}  load ${r.loadAverage}`);
      }
    }
  }
} finally {
  await dns.close();
}
if (o.json) console.log(JSON.stringify({ bench: 'policy-accept', options: o, results }));
