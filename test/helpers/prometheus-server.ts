// A Prometheus server (Debian's prometheus package) for a test: its own configuration and
// storage in a temporary directory, scraping the targets given every second, its HTTP API on a
// loopback address; stopped by its pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from './instance.js';

export const PROMETHEUS = '/usr/bin/prometheus';

export interface PrometheusServer {
  url: string;
  /** An instant query: the API's `data`, or throws with Prometheus's error (a query that does not parse). */
  query(expr: string): Promise<{ resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> }>;
  close(): Promise<void>;
}

export async function startPrometheus(opts: { host: string; targets: string[] }): Promise<PrometheusServer> {
  const dir = mkdtempSync(join(tmpdir(), 'prometheus-'));
  const port = await freePort(opts.host);
  writeFileSync(
    join(dir, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: tsubame\n    static_configs:\n      - targets: [${opts.targets.map((t) => `'${t}'`).join(', ')}]\n`,
  );
  let output = '';
  const child: ChildProcess = spawn(PROMETHEUS, [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=${opts.host}:${port}`, '--log.level=warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const url = `http://${opts.host}:${port}`;
  const close = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited ${child.exitCode}: ${output}`);
        return (await fetch(`${url}/-/ready`).catch(() => null))?.ok;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'Prometheus ready' },
    );
  } catch (err) {
    await close();
    throw err;
  }
  return {
    url,
    async query(expr) {
      const res = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: expr })}`);
      const body = (await res.json()) as { status: string; error?: string; data: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
      if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`);
      return body.data;
    },
    close,
  };
}
