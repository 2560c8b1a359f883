// Debian's unbound as a validating resolver on loopback, for DANE tests: zones given by the test
// are written to a temporary directory, the `signed` ones signed at start with ldns-keygen and
// ldns-signzone (ldnsutils; ECDSA P-256) and their key-signing key's DS made the trust anchor, and
// served to unbound's own resolver through auth-zone (for-upstream), so that it validates them and
// sets the AD bit; unsigned zones answer without it. Ready once it answers; stopped by its pid.
//
//   const ub = await startUnbound({ zones: [{ name: 'dane.test', signed: true, records: ['mx A 127.0.0.1', '_25._tcp.mx TLSA 3 1 1 ab…'] }] });
//   … DNS_SERVERS=ub.server …
//   await ub.close();
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DnsClient } from '../../src/dns/client.js';
import { freePort, waitFor } from './instance.js';

const UNBOUND = ['/usr/sbin/unbound', '/usr/bin/unbound'].find((p) => existsSync(p)) ?? 'unbound';

export interface ZoneSpec {
  /** `dane.test` (names under .test are served: unbound's default local zone for it is lifted). */
  name: string;
  /** Zone file lines below the SOA and NS, owner names relative to the zone: `mx A 127.0.0.1`. */
  records: string[];
  signed: boolean;
  /** Change the signed zone file after signing (a bogus answer): replace text in it. */
  tamper?: { find: string; replace: string };
}

export interface Unbound {
  host: string;
  port: number;
  /** `host:port`, as DNS_SERVERS takes it. */
  server: string;
  pid: number;
  log(): string;
  close(): Promise<void>;
}

function ldns(args: string[], cwd: string): string {
  return execFileSync(args[0]!, args.slice(1), { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

export async function startUnbound(opts: { host?: string; zones: ZoneSpec[] }): Promise<Unbound> {
  const host = opts.host ?? '127.18.0.53';
  const dir = mkdtempSync(join(tmpdir(), 'tsubame-unbound-'));
  const anchors = join(dir, 'anchors');
  const authZones: string[] = [];
  for (const z of opts.zones) {
    const file = join(dir, `${z.name}.zone`);
    writeFileSync(
      file,
      [`$ORIGIN ${z.name}.`, '$TTL 300', `@ IN SOA ns.${z.name}. hostmaster.${z.name}. 1 3600 600 86400 300`, `@ IN NS ns.${z.name}.`, 'ns IN A 127.0.0.1', ...z.records.map((r) => r.replace(/^(\S+)\s+(?!IN\s)/, '$1 IN ')), ''].join('\n'),
    );
    let served = file;
    if (z.signed) {
      const ksk = ldns(['ldns-keygen', '-a', 'ECDSAP256SHA256', '-k', z.name], dir);
      const zsk = ldns(['ldns-keygen', '-a', 'ECDSAP256SHA256', z.name], dir);
      ldns(['ldns-signzone', file, ksk, zsk], dir);
      served = `${file}.signed`;
      appendFileSync(anchors, readFileSync(join(dir, `${ksk}.ds`), 'utf8'));
      if (z.tamper) {
        const text = readFileSync(served, 'utf8');
        if (!text.includes(z.tamper.find)) throw new Error(`startUnbound: "${z.tamper.find}" is not in the signed zone ${z.name}`);
        writeFileSync(served, text.replace(z.tamper.find, z.tamper.replace));
      }
    }
    authZones.push('auth-zone:', `  name: "${z.name}"`, `  zonefile: "${served}"`, '  for-downstream: no', '  for-upstream: yes', '  fallback-enabled: no');
  }
  const port = await freePort(host);
  const logFile = join(dir, 'unbound.log');
  const conf = join(dir, 'unbound.conf');
  writeFileSync(
    conf,
    [
      'server:',
      `  interface: ${host}`,
      `  port: ${port}`,
      '  do-daemonize: no',
      '  username: ""',
      '  chroot: ""',
      `  directory: "${dir}"`,
      '  pidfile: ""',
      '  use-syslog: no',
      `  logfile: "${logFile}"`,
      '  verbosity: 1',
      '  val-log-level: 2',
      '  num-threads: 1',
      '  do-ip6: no',
      '  do-not-query-localhost: no',
      '  module-config: "validator iterator"',
      ...(existsSync(anchors) ? [`  trust-anchor-file: "${anchors}"`] : []),
      '  local-zone: "test." nodefault',
      ...authZones,
      '',
    ].join('\n'),
  );
  execFileSync('/usr/sbin/unbound-checkconf', [conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  const child: ChildProcess = spawn(UNBOUND, ['-d', '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
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
  const probe = new DnsClient([{ host, port }], { timeoutMs: 300, attempts: 1 });
  try {
    const first = opts.zones[0]?.name ?? 'test';
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`unbound exited: ${stderr.trim()} ${existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-500) : ''}`);
        const r = await probe.query(first, 'SOA').catch(() => null);
        return r !== null && r.rcode === 'NOERROR';
      },
      { timeoutMs: 15_000, what: 'unbound to answer' },
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
