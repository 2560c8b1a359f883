// Shared by the ETRN integration test and bench/etrn.ts: an instance started with start-msg whose
// tcp_local channel finds MX hosts through a simulated DNS server (all MX hosts on one port, the
// channel's `port`), a raw SMTP client for messages and ETRN, and readers of mail.log and the
// job controller.
import { join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { MtaInstance } from '../helpers/running-instance.js';
import { SmtpProbe, type Reply } from './smtp-harness.js';
import { requestJson, type JsonObject } from '../../src/common/ipc-socket.js';
import { parseMailLogLine, type ParsedMailLogRecord } from '../../src/common/mail-log.js';

export interface EtrnInstanceOptions {
  /** Where the instance's SMTP service listens. */
  address: string;
  /** DNS_SERVERS (host:port of the simulated DNS server). */
  dnsServer: string;
  /** The port every MX host listens on (the channel's `port`). */
  mxPort: number;
  /** Rewrite rules put before the catch-alls (`.`, `[]`). */
  rules?: string;
  /** Extra option.dat lines (FAST_FLUSH_DOMAINS, ETRN_ALLOW, …). */
  options?: string;
  /** INTERNAL_IP (default: all of 127.0.0.0/8). */
  internalIp?: string;
  /** Keywords of tcp_local (default: a long backoff, so only a flush retries). */
  channelKeywords?: string;
  jobControllerCnf?: string;
}

export async function createEtrnInstance(o: EtrnInstanceOptions): Promise<MtaInstance> {
  const mta = await MtaInstance.create({ address: o.address, service: 'MIN_PROCS=1\nMAX_PROCS=2' });
  const keywords = o.channelKeywords ?? 'backoff "PT1H"';
  const rules = ['localhost              $U%localhost@localhost', ...(o.rules ?? '').split('\n'), '.                      $U%$H@tcp-daemon', '[]                     $U%[$L]@tcp-daemon'];
  mta.inst.write(
    'etc/imta.cnf',
    `! ETRN test instance
${rules.filter((l) => l.trim()).join('\n')}

l
localhost

tcp_local smtp mx port ${o.mxPort} ${keywords}
tcp-daemon

tcp_intranet smtp mx port ${o.mxPort} ${keywords}
tcp_intranet-daemon
`,
  );
  mta.inst.write('etc/option.dat', `INTERNAL_IP=${o.internalIp ?? '127.0.0.0/8'}\nLOCAL_HOST=mta.etrn.test\nDNS_SERVERS=${o.dnsServer}\n${o.options ?? ''}\n`);
  mta.inst.write('etc/job_controller.cnf', o.jobControllerCnf ?? '[POOL=DEFAULT]\nJOB_LIMIT=4\n');
  return mta;
}

export async function startInstance(mta: MtaInstance): Promise<void> {
  const r = await mta.cli('start-msg', [], 60_000);
  if (r.code !== 0) throw new Error(`start-msg failed: ${r.stderr}`);
  await mta.processes();
}

export interface Mail {
  from: string;
  to: string[];
  subject: string;
}

/** Sends messages over one session from `localAddress`; throws on any refusal. */
export async function sendMail(mta: MtaInstance, localAddress: string, messages: Mail[]): Promise<void> {
  const probe = await SmtpProbe.connect(mta.address, mta.port, localAddress);
  const expect = async (line: string, code: number) => {
    const r = await probe.command(line);
    if (r?.code !== code) throw new Error(`"${line.slice(0, 60)}" got ${r ? r.text : 'no reply'}`);
  };
  try {
    await probe.hello('client.etrn.test');
    for (const m of messages) {
      await expect(`MAIL FROM:<${m.from}>`, 250);
      for (const to of m.to) await expect(`RCPT TO:<${to}>`, 250);
      await expect('DATA', 354);
      await expect(`From: <${m.from}>\r\nTo: ${m.to.map((t) => `<${t}>`).join(', ')}\r\nSubject: ${m.subject}\r\n\r\nbody of ${m.subject}\r\n.`, 250);
    }
    await probe.command('QUIT');
  } finally {
    probe.close();
  }
}

/** One session: EHLO, then ETRN with `argument`; the reply. */
export async function etrn(mta: MtaInstance, localAddress: string, argument: string): Promise<Reply> {
  const probe = await SmtpProbe.connect(mta.address, mta.port, localAddress);
  try {
    await probe.hello('client.etrn.test');
    const r = await probe.command(`ETRN ${argument}`);
    if (!r) throw new Error('connection closed before the ETRN reply');
    return r;
  } finally {
    probe.close();
  }
}

export function mailLog(mta: MtaInstance): ParsedMailLogRecord[] {
  const path = join(mta.root, 'log', 'mail.log');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').map(parseMailLogLine).filter((r): r is ParsedMailLogRecord => r !== null);
}

export function jobController(mta: MtaInstance, req: JsonObject, timeoutMs = 10_000): Promise<JsonObject | null> {
  return requestJson(join(mta.root, 'run', 'job_controller.sock'), req, timeoutMs);
}
