// dnsmasq (Debian's dnsmasq-base) as a real name server on loopback for the inbound checks' tests:
// started with its own configuration in a temporary directory (no resolv.conf, no /etc/hosts,
// every name under `local=` zones answered from the file or NXDOMAIN), ready once it answers a
// query, stopped by its pid. Records are dnsmasq lines: txt-record=, host-record=, server=/zone/ip#port.
//
//   const dns = await startDnsmasq({ host: '127.0.16.53', lines: ['local=/test/', 'txt-record=a.test,"v=spf1 -all"'] });
//   … DNS_SERVERS=dns.server …
//   await dns.close();
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DnsClient } from '../../src/dns/client.js';
import { freePort, waitFor } from './instance.js';

const DNSMASQ = ['/usr/sbin/dnsmasq', '/usr/bin/dnsmasq'].find((p) => existsSync(p)) ?? 'dnsmasq';

export interface Dnsmasq {
  host: string;
  port: number;
  /** `host:port`, as DNS_SERVERS takes it. */
  server: string;
  pid: number;
  /** The query log (log-queries), for asserting what was asked. */
  log(): string;
  close(): Promise<void>;
}

/** TXT record strings are at most 255 octets: a long value becomes several quoted strings of one record. */
export function txtRecord(name: string, value: string): string {
  const parts: string[] = [];
  for (let i = 0; i < value.length; i += 255) parts.push(`"${value.slice(i, i + 255)}"`);
  return `txt-record=${name},${parts.join(',') || '""'}`;
}

/**
 * `port`: a free one unless given (53 for a resolver that cannot be told a port, as Postfix's).
 * `localTtl`: the TTL of its answers (default 300; dnsmasq's own default, 0, tells clients not to cache).
 */
export async function startDnsmasq(opts: { host?: string; port?: number; localTtl?: number; lines: string[] }): Promise<Dnsmasq> {
  const host = opts.host ?? '127.0.16.53';
  const dir = mkdtempSync(join(tmpdir(), 'tsubame-dnsmasq-'));
  const conf = join(dir, 'dnsmasq.conf');
  const logFile = join(dir, 'queries.log');
  writeFileSync(conf, ['no-resolv', 'no-hosts', 'no-negcache', `local-ttl=${opts.localTtl ?? 300}`, 'log-queries', `log-facility=${logFile}`, ...opts.lines, ''].join('\n'));
  const port = opts.port ?? (await freePort(host));
  const child: ChildProcess = spawn(
    DNSMASQ,
    ['--keep-in-foreground', `--conf-file=${conf}`, `--listen-address=${host}`, `--port=${port}`, '--bind-interfaces', '--pid-file=', '--user=root', '--group=root'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // Ready when it answers (any answer); a start failure (bad line) shows its message.
  const probe = new DnsClient([{ host, port }], { timeoutMs: 200, attempts: 1 });
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`dnsmasq exited: ${stderr.trim()}`);
        return (await probe.query('ready.probe.invalid', 'A').catch(() => null)) !== null;
      },
      { timeoutMs: 10_000, what: 'dnsmasq to answer' },
    );
  } catch (err) {
    await close();
    throw err;
  } finally {
    probe.close();
  }
  return {
    host,
    port,
    server: `${host}:${port}`,
    pid: child.pid!,
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    close,
  };
}
