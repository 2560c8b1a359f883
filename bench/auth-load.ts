// AUTH under attack (issue 15): while ATTACKERS clients fail SMTP AUTH as fast as the server lets
// them, how long does a plain session wait for its mail to be taken? The latency of one ordinary
// client's transactions on port 25 (MAIL FROM to its 250, and MAIL FROM to the 250 after DATA:
// p50/p99), first with no AUTH load, then with it, on the same started instance.
//
//   node dist/bench/auth-load.js [--transactions 500] [--attackers 50] [--runs 1]
//        [--failure-delay SECONDS] [--no-limits] [--json]
//
// tsubame: the shipped etc/ (port 25 and SUBMISSIONS on a TLS_PORT, tcp_submit with
// mustsaslserver), a certificate made by openssl, users in etc/users hashed at the default cost
// (imsimta passwd's), the local channel stopped so nothing is delivered. Each attacker has its
// own loopback address (so the per-address limit applies to each as to a botnet's hosts) and
// loops: connect with TLS, EHLO, AUTH PLAIN with a wrong password, half of them as a real user
// and half as unknown ones, again until the server says 421 or closes, then reconnect. The
// server's own defences stay on (SASL_FAILURE_DELAY, the limits per address and per user): this
// measures what a client sees while the defences work, not what happens without them.
// `--failure-delay 0` removes the pause before each failed reply, so that attackers cost the
// server as many password checks as they can; `--no-limits` also turns off the limits per address
// and per user (SASL_FAILURES_PER_* = 0), the worst case for the password hashing. Reported per phase: the client's latencies, the
// AUTH attempts answered per second, and the CPU of tsubame's process tree.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import net from 'node:net';
import tls from 'node:tls';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashPassword } from '../src/directory/password-hash.js';
import { machineDescription, repoRoot, waitListening } from './lib/peers.js';
import { loadAverage, treeCpuSeconds } from './lib/proc-stats.js';
import { discardDir } from './lib/discard.js';

const execFileP = promisify(execFile);

const ADDRESS = '127.0.51.1';
const SMTP_PORT = 2725;
const SUBMISSION_PORT = 2787;
const SUBMISSIONS_PORT = 2765;
/** Attacker i connects from 127.0.52.(i+1). */
const attackerAddress = (i: number) => `127.0.${52 + Math.floor(i / 250)}.${(i % 250) + 1}`;
const LOCAL_HOST = 'mx.auth-bench.test';
const WARM_UP = 50;

interface Options {
  transactions: number;
  attackers: number;
  runs: number;
  failureDelay: number | null;
  limits: boolean;
  json: boolean;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { transactions: 500, attackers: 50, runs: 1, failureDelay: null, limits: true, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return Number(v);
    };
    if (a === '--transactions') o.transactions = value();
    else if (a === '--attackers') o.attackers = value();
    else if (a === '--runs') o.runs = value();
    else if (a === '--failure-delay') o.failureDelay = value();
    else if (a === '--no-limits') o.limits = false;
    else if (a === '--json') o.json = true;
    else throw new Error(`unknown option ${a} (expected --transactions N, --attackers N, --runs N, --failure-delay SECONDS, --no-limits, --json)`);
  }
  for (const [k, v] of Object.entries({ transactions: o.transactions, attackers: o.attackers, runs: o.runs })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} needs a positive whole number`);
  }
  if (o.failureDelay !== null && !(o.failureDelay >= 0)) throw new Error('--failure-delay needs a number of seconds ≥ 0');
  return o;
}

/** A line-oriented SMTP client on a socket: the final line of each reply, in order. */
class Replies {
  private buffer = '';
  private readonly lines: string[] = [];
  private readonly waiting: Array<(line: string | null) => void> = [];
  closed = false;
  constructor(readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.buffer += d;
      let nl: number;
      while ((nl = this.buffer.indexOf('\r\n')) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 2);
        if (/^\d{3}-/.test(line)) continue;
        const w = this.waiting.shift();
        if (w) w(line);
        else this.lines.push(line);
      }
    });
    const end = () => {
      this.closed = true;
      for (const w of this.waiting.splice(0)) w(null);
    };
    socket.on('close', end);
    socket.on('error', end);
  }

  next(): Promise<string | null> {
    if (this.lines.length) return Promise.resolve(this.lines.shift()!);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  async expect(code: string): Promise<string> {
    const line = await this.next();
    if (!line?.startsWith(code)) throw new Error(`expected ${code}, got ${line === null ? 'the connection closed' : `"${line}"`}`);
    return line;
  }
}

const percentile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))]! : 0;
};
const ms = (x: number) => Math.round(x * 100) / 100;

/** The measured client: one session on port 25 sending `count` small messages to a local user, lock-step. */
async function plainClient(count: number): Promise<{ mail: number[]; transaction: number[] }> {
  const socket = net.connect({ host: ADDRESS, port: SMTP_PORT });
  const r = new Replies(socket);
  const mail: number[] = [];
  const transaction: number[] = [];
  try {
    await r.expect('220');
    socket.write('EHLO client.auth-bench.test\r\n');
    await r.expect('250');
    const body = 'Subject: auth bench\r\n\r\nA small message.\r\n.\r\n';
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      socket.write('MAIL FROM:<bench@client.auth-bench.test>\r\n');
      await r.expect('250');
      mail.push(performance.now() - t0);
      socket.write(`RCPT TO:<user@${LOCAL_HOST}>\r\n`);
      await r.expect('250');
      socket.write('DATA\r\n');
      await r.expect('354');
      socket.write(body);
      await r.expect('250');
      transaction.push(performance.now() - t0);
    }
    socket.write('QUIT\r\n');
    return { mail, transaction };
  } finally {
    socket.destroy();
  }
}

/** One attacker until `stop`: TLS sessions of failing AUTH PLAIN; counts the replies it got. */
async function attacker(i: number, stop: { done: boolean }, counts: { failed: number; refused: number; sessions: number }): Promise<void> {
  let n = 0;
  while (!stop.done) {
    const socket = tls.connect({ socket: net.connect({ host: ADDRESS, port: SUBMISSIONS_PORT, localAddress: attackerAddress(i) }), servername: LOCAL_HOST, rejectUnauthorized: false });
    const r = new Replies(socket);
    counts.sessions++;
    try {
      await r.expect('220');
      socket.write(`EHLO bot${i}.auth-bench.test\r\n`);
      await r.expect('250');
      while (!stop.done) {
        const login = i % 2 === 0 ? 'user' : `ghost${i}-${n}`;
        socket.write(`AUTH PLAIN ${Buffer.from(`\0${login}\0wrong-${n++}`).toString('base64')}\r\n`);
        const line = await r.next();
        if (line?.startsWith('535')) counts.failed++;
        else {
          if (line?.startsWith('421')) counts.refused++;
          break;
        }
      }
    } catch {
      /* the server closed on us: connect again */
    } finally {
      socket.destroy();
    }
  }
}

async function startInstance(o: Options): Promise<{ root: string; watcherPid: number; stop(): Promise<void> }> {
  const root = mkdtempSync(join(tmpdir(), 'tsubame-bench-auth-'));
  cpSync(join(repoRoot, 'etc'), join(root, 'etc'), { recursive: true });
  for (const d of ['queue', 'log', 'run', 'mailbox/user/new']) mkdirSync(join(root, d), { recursive: true });
  const dispatcherCnf = join(root, 'etc', 'dispatcher.cnf');
  const tuned = '\nMIN_PROCS=1\nMAX_PROCS=1\nMAX_CONNS=500\nMAX_LIFE_CONNS=0\nMAX_LIFE_TIME=0\n';
  writeFileSync(
    dispatcherCnf,
    readFileSync(dispatcherCnf, 'utf8')
      .replace(/^PORT=25$/m, `PORT=${SMTP_PORT}\nINTERFACE_ADDRESS=${ADDRESS}${tuned}`)
      .replace(/^PORT=587$/m, `PORT=${SUBMISSION_PORT}\nINTERFACE_ADDRESS=${ADDRESS}`)
      .replace(/^TLS_PORT=465$/m, `TLS_PORT=${SUBMISSIONS_PORT}\nINTERFACE_ADDRESS=${ADDRESS}${tuned}`),
  );
  const key = join(root, 'etc', 'key.pem');
  const cert = join(root, 'etc', 'cert.pem');
  await execFileP('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${LOCAL_HOST}`, '-days', '2', '-keyout', key, '-out', cert]);
  const options = join(root, 'etc', 'option.dat');
  writeFileSync(
    options,
    `${readFileSync(options, 'utf8')}\n! bench\nLOCAL_HOST=${LOCAL_HOST}\nINTERNAL_IP=${ADDRESS}/32\nTLS_KEY=${key}\nTLS_CERT=${cert}\nMAX_CONNS_PER_IP=1000\n` +
      (o.failureDelay !== null ? `SASL_FAILURE_DELAY=${o.failureDelay}\n` : '') +
      (o.limits ? '' : 'SASL_FAILURES_PER_ADDRESS=0\nSASL_FAILURES_PER_USER=0\n'),
  );
  const imta = join(root, 'etc', 'imta.cnf');
  // The measured client is outside INTERNAL_IP: no SPF or DNS lookups of its made-up domain.
  writeFileSync(imta, readFileSync(imta, 'utf8').replace(/^(tcp_local\s[^\n]*)$/m, '$1 spfnone noauthverify').replace(/^localhost$/m, `localhost\n${LOCAL_HOST}`));
  const users = join(root, 'etc', 'users');
  writeFileSync(users, `user:${await hashPassword('the right password')}\n`);
  chmodSync(users, 0o600);
  const cli = (cmd: string, args: string[] = []) => execFileP(join(repoRoot, 'bin', cmd), [...args, '--root', root], { timeout: 120_000 });
  await cli('imsimta', ['qm', 'stop', 'l']);
  await cli('start-msg');
  await waitListening(ADDRESS, SMTP_PORT, 20_000);
  await waitListening(ADDRESS, SUBMISSIONS_PORT, 20_000);
  return {
    root,
    watcherPid: Number(readFileSync(join(root, 'run', 'watcher.pid'), 'utf8').trim()),
    async stop() {
      await cli('stop-msg').catch((err: Error) => console.error(`stop-msg: ${err.message}`));
    },
  };
}

interface Phase {
  phase: 'quiet' | 'under AUTH load';
  mailP50Ms: number;
  mailP99Ms: number;
  transactionP50Ms: number;
  transactionP99Ms: number;
  authFailedPerSecond: number | null;
  authRefused: number | null;
  attackerSessions: number | null;
  cpuSeconds: number;
  seconds: number;
  loadAverage: string;
}

async function phase(o: Options, watcherPid: number, attackers: number): Promise<Phase> {
  const stop = { done: false };
  const counts = { failed: 0, refused: 0, sessions: 0 };
  const running = Array.from({ length: attackers }, (_, i) => attacker(i, stop, counts));
  if (attackers > 0) {
    // Let the attack reach its pace (every attacker past its first failure) before measuring.
    const until = performance.now() + 30_000;
    while (counts.failed < attackers && performance.now() < until) await new Promise((r) => setTimeout(r, 100));
  }
  const loadAvg = loadAverage();
  const cpuBefore = treeCpuSeconds(watcherPid);
  const failedBefore = counts.failed;
  const t0 = performance.now();
  const { mail, transaction } = await plainClient(o.transactions);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = treeCpuSeconds(watcherPid) - cpuBefore;
  const failed = counts.failed - failedBefore;
  stop.done = true;
  await Promise.all(running);
  return {
    phase: attackers > 0 ? 'under AUTH load' : 'quiet',
    mailP50Ms: ms(percentile(mail, 0.5)),
    mailP99Ms: ms(percentile(mail, 0.99)),
    transactionP50Ms: ms(percentile(transaction, 0.5)),
    transactionP99Ms: ms(percentile(transaction, 0.99)),
    authFailedPerSecond: attackers > 0 ? Math.round(failed / seconds) : null,
    authRefused: attackers > 0 ? counts.refused : null,
    attackerSessions: attackers > 0 ? counts.sessions : null,
    cpuSeconds: ms(cpu),
    seconds: ms(seconds),
    loadAverage: loadAvg,
  };
}

const o = parseOptions(process.argv.slice(2));
const results: Array<Phase & { run: number }> = [];
for (let run = 1; run <= o.runs; run++) {
  const mta = await startInstance(o);
  try {
    await plainClient(WARM_UP);
    results.push({ run, ...(await phase(o, mta.watcherPid, 0)) });
    results.push({ run, ...(await phase(o, mta.watcherPid, o.attackers)) });
  } finally {
    await mta.stop();
    discardDir(mta.root);
  }
}
const header = { transactions: o.transactions, attackers: o.attackers, failureDelay: o.failureDelay ?? 'shipped (2 s)', limits: o.limits ? 'shipped' : 'off', machine: await machineDescription() };
if (o.json) process.stdout.write(`${JSON.stringify({ ...header, results })}\n`);
else {
  process.stdout.write(`${header.machine}\n${o.transactions} transactions on port 25, ${o.attackers} clients failing AUTH on the submissions port, failure delay ${header.failureDelay}, limits ${header.limits}\n`);
  for (const r of results) process.stdout.write(`${JSON.stringify(r)}\n`);
}
