// Benchmark peers: Postfix's smtp-sink and smtp-source, and a private Postfix instance to compare with.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { discardDir } from './discard.js';

const execFileP = promisify(execFile);
export const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));

export interface Sink {
  host: string;
  port: number;
  /** Messages the sink has accepted so far. */
  messages(): number;
  stop(): Promise<void>;
}

/** smtp-sink -c on host:port; counts messages from its live counter line. */
export async function startSmtpSink(host: string, port: number, extraArgs: string[] = []): Promise<Sink> {
  const args = ['-u', 'nobody', '-c', ...extraArgs, `${host}:${port}`, '1000'];
  const child = spawn('/usr/sbin/smtp-sink', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let count = 0;
  let tail = '';
  child.stdout.setEncoding('latin1').on('data', (d: string) => {
    tail = (tail + d).slice(-200);
    const all = [...tail.matchAll(/mesg=(\d+)/g)];
    if (all.length) count = Number(all[all.length - 1]![1]);
  });
  await waitListening(host, port, 5000);
  return {
    host,
    port,
    messages: () => count,
    stop: () => stopChild(child),
  };
}

export interface SourceResult {
  seconds: number;
  code: number | null;
  stderr: string;
}

/** smtp-source; resolves when it exits, with its wall time. */
export function runSmtpSource(args: string[]): Promise<SourceResult> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn('/usr/sbin/smtp-source', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ seconds: Number(process.hrtime.bigint() - started) / 1e9, code, stderr }));
  });
}

export interface PostfixInstance {
  dir: string;
  /** The master's pid (the root of its process tree). */
  masterPid: () => number;
  /** Stops it, waits until its port refuses connections, and discards its directory. */
  stop(): Promise<void>;
}

/** The pid in a Postfix instance directory's master.pid. */
export function postfixMasterPid(dir: string): number {
  return Number(readFileSync(join(dir, 'queue', 'pid', 'master.pid'), 'utf8').trim());
}

/** A private Postfix relaying everything to relayHost:relayPort (bench/postfix/instance.sh). */
export async function startPostfix(ip: string, port: number, relayHost: string, relayPort: number): Promise<PostfixInstance> {
  const dir = mkdtempSync(join(tmpdir(), 'tsubame-postfix-'));
  const script = join(repoRoot, 'bench', 'postfix', 'instance.sh');
  await execFileP(script, ['start', dir, ip, String(port), relayHost, String(relayPort)]);
  await waitListening(ip, port, 10000);
  return {
    dir,
    masterPid: () => postfixMasterPid(dir),
    async stop() {
      await execFileP(script, ['stop', dir]).catch(() => {});
      // `postfix stop` returns before master has let go of the port: the next run must not reach this one.
      await waitRefused(ip, port, 20_000);
      discardDir(dir);
    },
  };
}

/**
 * A private Postfix delivering by MX (no relayhost), its resolver pointed at `dnsHost` port 53:
 * bench/postfix/instance.sh, then `postconf -e` of DNS lookups on and `settings`. Postfix's
 * resolver reads /etc/resolv.conf, which the machine's other users need unchanged, so its master
 * is started in a private mount namespace (`unshare -m`) where a resolv.conf naming `dnsHost` is
 * bind-mounted over /etc/resolv.conf: only the master and its children see it.
 */
export async function startPostfixResolving(listen: { host: string; port: number }, dnsHost: string, settings: string[]): Promise<PostfixInstance> {
  const dir = mkdtempSync(join(tmpdir(), 'tsubame-postfix-mx-'));
  const script = join(repoRoot, 'bench', 'postfix', 'instance.sh');
  // The relay host given here is replaced by `relayhost =` below; nothing listens there.
  await execFileP(script, ['start', dir, listen.host, String(listen.port), '127.0.9.6', '9']);
  await execFileP('postfix', ['-c', join(dir, 'etc'), 'stop']).catch(() => {});
  await waitRefused(listen.host, listen.port, 20_000);
  await execFileP('postconf', ['-c', join(dir, 'etc'), '-e', 'relayhost =', 'disable_dns_lookups = no', 'smtp_host_lookup = dns', ...settings]);
  writeFileSync(join(dir, 'resolv.conf'), `nameserver ${dnsHost}\noptions attempts:2 timeout:2\n`);
  await execFileP('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `mount --bind ${join(dir, 'resolv.conf')} /etc/resolv.conf && postfix -c ${join(dir, 'etc')} start`]);
  await waitListening(listen.host, listen.port, 10_000);
  return {
    dir,
    masterPid: () => postfixMasterPid(dir),
    async stop() {
      await execFileP(script, ['stop', dir]).catch(() => {});
      await waitRefused(listen.host, listen.port, 20_000);
      discardDir(dir);
    },
  };
}

/** Resolves once nothing accepts connections on host:port any more. */
export async function waitRefused(host: string, port: number, timeoutMs: number): Promise<void> {
  const net = await import('node:net');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (!open) return;
    if (Date.now() > deadline) throw new Error(`${host}:${port} still answers ${timeoutMs} ms after the stop`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function waitListening(host: string, port: number, timeoutMs: number): Promise<void> {
  const net = await import('node:net');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function waitUntil(check: () => boolean, timeoutMs: number, intervalMs = 20): Promise<number> {
  const started = process.hrtime.bigint();
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  return Number(process.hrtime.bigint() - started) / 1e9;
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 3000).unref();
  });
}

export async function machineDescription(): Promise<string> {
  const os = await import('node:os');
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  let fs = 'unknown fs';
  try {
    const { stdout } = await execFileP('findmnt', ['-n', '-o', 'FSTYPE', '--target', tmpdir()]);
    fs = stdout.trim();
  } catch {
    /* findmnt missing */
  }
  return `${os.cpus().length} × ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}, ${fs} on ${tmpdir()}, Node ${process.version}`;
}
