// Independent DKIM verifiers for the signing tests: Debian's python3-dkim (`dkimverify`) and
// opendkim's `opendkim-testmsg`, both looking the public keys up in DNS, served by a dnsmasq the
// test starts on a 127.53.x.y address of its own. Both resolvers read /etc/resolv.conf (glibc's
// and dnspython's take no port, so dnsmasq listens on port 53), so each verifier runs in a
// private mount namespace (`unshare --mount`) where a resolv.conf naming that dnsmasq is bound
// over /etc/resolv.conf: the machine's own resolver is never touched. Needs root, as the other
// peers that bind privileged ports do.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as dnsPacket from 'dns-packet';
import { waitFor } from './instance.js';

const DNSMASQ = '/usr/sbin/dnsmasq';

export interface KeyDns {
  address: string;
  /** The resolv.conf the verifiers see. */
  resolvConf: string;
  /** dnsmasq's log of the queries it answered. */
  log: string;
  pid: number;
  stop(): Promise<void>;
}

export interface Verdict {
  ok: boolean;
  /** What the verifier printed (stdout and stderr). */
  output: string;
}

/** Serves `records` (name → TXT strings, each at most 255 bytes) on <address>:53. */
export async function startKeyDns(records: Record<string, string[]>): Promise<KeyDns> {
  const dir = mkdtempSync(join(tmpdir(), 'tsubame-keydns-'));
  for (let attempt = 0; ; attempt++) {
    const address = `127.53.${1 + Math.floor(Math.random() * 254)}.${1 + Math.floor(Math.random() * 254)}`;
    const log = join(dir, 'dnsmasq.log');
    const args = ['--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--no-poll', '--port=53', `--listen-address=${address}`, '--bind-interfaces', `--log-facility=${log}`, '--log-queries', '--user=root'];
    for (const [name, strings] of Object.entries(records)) {
      // dnsmasq splits the strings at commas; DKIM key records have none.
      if (strings.some((s) => s.includes(',') || Buffer.byteLength(s) > 255)) throw new Error(`TXT strings for ${name} must be comma-free and at most 255 bytes`);
      args.push(`--txt-record=${name},${strings.join(',')}`);
    }
    const child: ChildProcess = spawn(DNSMASQ, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let exited = false;
    child.once('exit', () => (exited = true));
    const firstName = Object.keys(records)[0] ?? 'ready.test';
    try {
      await waitFor(async () => (exited ? Promise.reject(new Error(stderr.trim() || 'dnsmasq exited')) : answers(address, firstName)), { timeoutMs: 10_000, what: `dnsmasq on ${address}:53` });
    } catch (err) {
      if (!exited) child.kill('SIGKILL');
      if (attempt < 3 && /in use/i.test(stderr)) continue; // another test's address: pick again
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    const resolvConf = join(dir, 'resolv.conf');
    writeFileSync(resolvConf, `nameserver ${address}\noptions timeout:2 attempts:2\n`);
    return {
      address,
      resolvConf,
      log,
      pid: child.pid!,
      async stop() {
        if (!exited) {
          const gone = new Promise<void>((r) => child.once('exit', () => r()));
          child.kill('SIGTERM');
          await gone;
        }
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}

/** One TXT query to address:53; true once an answer comes back. */
function answers(address: string, name: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      resolve(false);
    }, 300);
    socket.once('message', () => {
      clearTimeout(timer);
      socket.close();
      resolve(true);
    });
    socket.once('error', () => {
      clearTimeout(timer);
      socket.close();
      resolve(false);
    });
    socket.send(dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'TXT', name }] }), 53, address);
  });
}

/** Runs a command with `dns` as its only resolver, the message on stdin. */
function withResolver(dns: KeyDns, command: string, args: string[], message: Buffer): Verdict & { code: number | null } {
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount --bind "$0" /etc/resolv.conf && exec "$@"', dns.resolvConf, command, ...args], {
    input: message,
    timeout: 30_000,
    encoding: 'latin1',
  });
  if (r.error) throw r.error;
  return { ok: r.status === 0, code: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

/** python3-dkim's dkimverify on the signature at `index` (0: the topmost). */
export function dkimpyVerify(dns: KeyDns, message: Buffer, index = 0): Verdict {
  const v = withResolver(dns, '/usr/bin/dkimverify', ['--index', String(index)], message);
  return { ok: v.ok && /signature ok/.test(v.output), output: v.output };
}

/** opendkim-testmsg in verifying mode: silent and 0 when the signatures verify. */
export function opendkimVerify(dns: KeyDns, message: Buffer): Verdict {
  const v = withResolver(dns, '/usr/sbin/opendkim-testmsg', [], message);
  return { ok: v.ok && v.output === '', output: v.output };
}

/** The TXT names dnsmasq was asked for so far: the verifiers really took the keys from it. */
export function queriedNames(dns: KeyDns): string[] {
  try {
    return [...readFileSync(dns.log, 'utf8').matchAll(/query\[TXT\] (\S+)/g)].map((m) => m[1]!);
  } catch {
    return [];
  }
}
