// A real rspamd (Debian's /usr/bin/rspamd) for milter tests: its own configuration and
// directories in a temporary directory, a normal worker and a proxy worker with `milter = yes`
// on loopback ports, only the milter_headers plugin loaded (no redis, no network: DNS goes to a
// closed local port), a five-name TLD list so that it starts in about a second. Its headers are
// added for loopback clients too (skip_local = false: the tests' clients are all on 127/8). Runs in the
// foreground in its own process group, stopped by that group's id.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync, symlinkSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { freePort, waitFor } from './instance.js';

export const RSPAMD = '/usr/bin/rspamd';
const PLUGINS = '/usr/share/rspamd/plugins';

export interface Rspamd {
  /** The milter (proxy worker) port on 127.0.0.1. */
  port: number;
  /** The same milter on a unix socket. */
  socketPath: string;
  dir: string;
  pid: number;
  /** Stops it and waits for the whole process group to be gone (`SIGKILL`: at once, as a crash). */
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** The end of its log, for failure messages. */
  logTail(lines?: number): string;
  /** Stops it and removes its directory. */
  remove(): Promise<void>;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function startRspamd(): Promise<Rspamd> {
  const dir = mkdtempSync(join(tmpdir(), 'tsubame-rspamd-'));
  for (const d of ['db', 'run', 'log', 'plugins', 'tmp']) mkdirSync(join(dir, d));
  symlinkSync(join(PLUGINS, 'milter_headers.lua'), join(dir, 'plugins', 'milter_headers.lua'));
  writeFileSync(join(dir, 'tld.dat'), 'com\norg\nnet\nexample\ntest\n');
  const [milterPort, normalPort] = [await freePort(), await freePort()];
  const conf = `
options {
  pidfile = "${dir}/run/rspamd.pid";
  filters = "";
  url_tld = "${dir}/tld.dat";
  tempdir = "${dir}/tmp";
  dns { nameserver = ["127.0.0.1:9"]; timeout = 0.2s; retransmits = 0; }
  control_socket = "${dir}/db/rspamd.sock mode=0600";
  hs_cache_dir = "${dir}/db/";
  cache_file = "${dir}/db/symbols.cache";
  history_file = "${dir}/db/rspamd.history";
  stats_file = "${dir}/db/stats.ucl";
}
logging { type = "file"; filename = "${dir}/log/rspamd.log"; level = "notice"; }
actions { reject = 15; add_header = 6; greylist = 4; }
modules { path = "${dir}/plugins"; }
milter_headers { use = ["x-spamd-result", "x-spam-status", "authentication-results"]; skip_local = false; skip_authenticated = false; }
worker "normal" {
  bind_socket = "127.0.0.1:${normalPort}";
  count = 1;
}
worker "rspamd_proxy" {
  bind_socket = "127.0.0.1:${milterPort}";
  bind_socket = "${dir}/run/milter.sock mode=0600";
  milter = yes;
  timeout = 120s;
  count = 1;
  upstream "local" { default = yes; hosts = "127.0.0.1:${normalPort}"; }
}
`;
  writeFileSync(join(dir, 'rspamd.conf'), conf);
  // -f: foreground (its pid is the process group's); -i: allowed to run its workers as root.
  const child: ChildProcess = spawn(RSPAMD, ['-f', '-i', '-c', join(dir, 'rspamd.conf')], {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  const pid = child.pid!;
  const logTail = (lines = 30) => {
    const path = join(dir, 'log', 'rspamd.log');
    const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
    return [...text.trimEnd().split('\n').slice(-lines), stderr].join('\n');
  };
  let exited = child.exitCode !== null;
  child.once('exit', () => (exited = true));
  const stop = async (signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM') => {
    if (groupAlive(pid)) {
      try {
        process.kill(-pid, signal);
      } catch {
        /* gone already */
      }
    }
    await waitFor(() => exited && !groupAlive(pid), { timeoutMs: 15_000, what: `rspamd (pid ${pid}) to exit` }).catch(() => {
      if (groupAlive(pid)) process.kill(-pid, 'SIGKILL');
    });
  };
  try {
    await waitFor(async () => !exited && existsSync(join(dir, 'run', 'milter.sock')) && (await accepts(milterPort)) && (await accepts(normalPort)), {
      timeoutMs: 60_000,
      intervalMs: 100,
      what: 'rspamd to listen',
    });
  } catch (err) {
    const tail = logTail();
    await stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}\n${tail}`, { cause: err });
  }
  return {
    port: milterPort,
    socketPath: join(dir, 'run', 'milter.sock'),
    dir,
    pid,
    stop,
    logTail,
    async remove() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
