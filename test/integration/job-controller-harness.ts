// Shared by the job controller and DSN integration tests: an instance started with start-msg
// whose remote mail goes through a tcp channel to a simulated peer (`daemon IP port N`), a
// small raw SMTP client (so that DSN parameters can be given), and job controller queries.
import net from 'node:net';
import { mkdirSync, readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { MtaInstance } from '../helpers/running-instance.js';
import { waitFor } from '../helpers/instance.js';
import { requestJson, type JsonObject } from '../../src/common/ipc-socket.js';
import { parseMailLogLine, type ParsedMailLogRecord } from '../../src/common/mail-log.js';

export const LOCAL_HOST = 'mta.local.test';

export interface JcInstanceOptions {
  /** The address the instance's SMTP service listens on. */
  address: string;
  peer: { host: string; port: number };
  /** Extra keywords of the tcp_remote channel (e.g. `backoff "PT1S"`, `maxjobs 2`). */
  channelKeywords?: string;
  /** job_controller.cnf (default: one pool with JOB_LIMIT=4). */
  jobControllerCnf?: string;
  users?: string[];
}

/** Local users are `user@localhost` or `user@mta.local.test`; everything else goes to tcp_remote. */
function imtaCnf(o: JcInstanceOptions): string {
  return `! job controller test
localhost            $U%localhost@localhost
${LOCAL_HOST}        $U%localhost@localhost
.                    $U%$H@tcp-daemon
[]                   $U%[$L]@tcp-daemon

l
localhost

tcp_local smtp nomx
tcp-local

tcp_remote smtp nomx daemon ${o.peer.host} port ${o.peer.port} ${o.channelKeywords ?? ''}
tcp-daemon
`;
}

export async function createJcInstance(o: JcInstanceOptions): Promise<MtaInstance> {
  const mta = await MtaInstance.create({ address: o.address, service: 'MIN_PROCS=1\nMAX_PROCS=2' });
  mta.inst.write('etc/imta.cnf', imtaCnf(o));
  mta.inst.write('etc/job_controller.cnf', o.jobControllerCnf ?? '[POOL=DEFAULT]\nJOB_LIMIT=4\n');
  mta.inst.write('etc/option.dat', `INTERNAL_IP=127.0.0.0/8\nLOCAL_HOST=${LOCAL_HOST}\n`);
  for (const u of o.users ?? []) mkdirSync(join(mta.root, 'mailbox', u, 'new'), { recursive: true });
  return mta;
}

export async function startMta(mta: MtaInstance): Promise<void> {
  const r = await mta.cli('start-msg', [], 60_000);
  if (r.code !== 0) throw new Error(`start-msg failed: ${r.stderr}`);
  await mta.processes();
}

export function jcRequest(mta: MtaInstance, req: JsonObject): Promise<JsonObject | null> {
  return requestJson(join(mta.root, 'run', 'job_controller.sock'), req, 10_000);
}

export interface JcStatus {
  ok: boolean;
  pid: number;
  index: { size: number; max: number; high_water: number; overflowed: boolean; scans: number };
  pools: Array<{ name: string; job_limit: number; running: number; threads: number }>;
  jobs: Array<{ channel: string; pool: string; pid: number }>;
  channels: Record<string, { messages: number; ready: number; delayed: number; inFlight: number; jobs: number }>;
}

export async function jcStatus(mta: MtaInstance): Promise<JcStatus> {
  const s = await jcRequest(mta, { op: 'status' });
  if (!s || s.ok !== true) throw new Error(`no status from the job controller: ${JSON.stringify(s)}`);
  return s as unknown as JcStatus;
}

export function mailLog(mta: MtaInstance): ParsedMailLogRecord[] {
  const path = join(mta.root, 'log', 'mail.log');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').map(parseMailLogLine).filter((r): r is ParsedMailLogRecord => r !== null);
}

/** Message files in the instance's queue (all channels). */
export function queueFiles(mta: MtaInstance, channel?: string): string[] {
  const q = join(mta.root, 'queue');
  const out: string[] = [];
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name.startsWith('.') || e.name.startsWith('$')) continue;
      if (e.isDirectory()) walk(join(dir, e.name));
      else out.push(join(dir, e.name));
    }
  };
  if (channel) walk(join(q, channel));
  else for (const e of existsSync(q) ? readdirSync(q, { withFileTypes: true }) : []) if (e.isDirectory() && !e.name.startsWith('.')) walk(join(q, e.name));
  return out;
}

export function mailboxFiles(mta: MtaInstance, user: string): string[] {
  const dir = join(mta.root, 'mailbox', user, 'new');
  return existsSync(dir) ? readdirSync(dir).map((n) => join(dir, n)) : [];
}

// ------------------------------------------------------------------- raw SMTP client

export interface OutgoingMessage {
  from: string;
  to: string[];
  /** Extra MAIL FROM parameters, e.g. `RET=HDRS ENVID=abc`. */
  mailParams?: string;
  /** Per-recipient RCPT parameters, e.g. `{ 'x@y': 'NOTIFY=NEVER' }`. */
  rcptParams?: Record<string, string>;
  subject: string;
  body?: string;
  /** The whole message (header and body) instead of the one made from subject and body. */
  raw?: string;
}

/** Sends messages over one SMTP session; resolves with the final reply of each. Any other non-2xx/3xx reply rejects. */
export async function sendMessages(host: string, port: number, messages: OutgoingMessage[]): Promise<string[]> {
  const socket = net.createConnection({ host, port });
  socket.setEncoding('utf8');
  let buffered = '';
  const waiters: Array<(line: string) => void> = [];
  const replies: string[] = [];
  let failed: Error | null = null;
  socket.on('data', (d: string) => {
    buffered += d;
    let nl: number;
    let text = '';
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl).replace(/\r$/, '');
      buffered = buffered.slice(nl + 1);
      text += line + '\n';
      if (/^\d{3} /.test(line) || /^\d{3}$/.test(line)) {
        replies.push(text.trimEnd());
        text = '';
      }
    }
    if (text) buffered = text + buffered;
    while (replies.length && waiters.length) waiters.shift()!(replies.shift()!);
  });
  socket.on('error', (err) => {
    failed = err;
    while (waiters.length) waiters.shift()!('');
  });
  const reply = () =>
    new Promise<string>((resolve, reject) => {
      if (failed) return reject(failed);
      const timer = setTimeout(() => reject(new Error('no SMTP reply within 30 s')), 30_000);
      const done = (line: string) => {
        clearTimeout(timer);
        if (failed) reject(failed);
        else resolve(line);
      };
      if (replies.length) done(replies.shift()!);
      else waiters.push(done);
    });
  const command = async (line: string, expect: RegExp) => {
    socket.write(line + '\r\n');
    const r = await reply();
    if (!expect.test(r)) throw new Error(`"${line}" got "${r}"`);
    return r;
  };
  try {
    const greeting = await reply();
    if (!/^220/.test(greeting)) throw new Error(`greeting: ${greeting}`);
    await command('EHLO client.test', /^250/);
    const finals: string[] = [];
    for (const m of messages) {
      await command(`MAIL FROM:<${m.from}>${m.mailParams ? ' ' + m.mailParams : ''}`, /^250/);
      for (const to of m.to) await command(`RCPT TO:<${to}>${m.rcptParams?.[to] ? ' ' + m.rcptParams[to] : ''}`, /^250/);
      await command('DATA', /^354/);
      const body = (m.body ?? 'test body').replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..');
      const data = m.raw
        ? `${m.raw.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..').replace(/\r\n$/, '')}\r\n.`
        : `From: <${m.from}>\r\nTo: ${m.to.map((t) => `<${t}>`).join(', ')}\r\nSubject: ${m.subject}\r\nMessage-ID: <${m.subject.replace(/[^A-Za-z0-9.-]/g, '_')}@client.test>\r\n\r\n${body}\r\n.`;
      finals.push(await command(data, /^250/));
    }
    await command('QUIT', /^221/).catch(() => '');
    return finals;
  } finally {
    socket.destroy();
  }
}

/** Sends `count` messages over `sessions` parallel sessions; message i has subject `${prefix}-${i}`. */
export async function sendMany(host: string, port: number, count: number, sessions: number, make: (i: number) => OutgoingMessage): Promise<void> {
  const perSession = Math.ceil(count / sessions);
  const jobs: Array<Promise<string[]>> = [];
  for (let s = 0; s < sessions; s++) {
    const batch: OutgoingMessage[] = [];
    for (let i = s * perSession; i < Math.min(count, (s + 1) * perSession); i++) batch.push(make(i));
    if (batch.length) jobs.push(sendMessages(host, port, batch));
  }
  await Promise.all(jobs);
}

export { waitFor };
