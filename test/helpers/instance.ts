// Test instances: a temporary IMTA_ROOT with its own etc/, ports and processes.
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync, rmSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

/** The repository (package) directory. */
export const repoRoot = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
export const binDir = join(repoRoot, 'bin');

export interface TestInstance {
  root: string;
  write(relPath: string, text: string): void;
  read(relPath: string): string;
  remove(): void;
}

/**
 * A new instance directory. With `shipped: true` it starts from the repository's etc/;
 * `files` (path relative to the root → contents) are written on top.
 */
export function makeInstance(opts: { shipped?: boolean; files?: Record<string, string> } = {}): TestInstance {
  const root = mkdtempSync(join(tmpdir(), 'tsubame-test-'));
  for (const d of ['etc', 'queue', 'log', 'run']) mkdirSync(join(root, d), { recursive: true });
  if (opts.shipped) cpSync(join(repoRoot, 'etc'), join(root, 'etc'), { recursive: true });
  const inst: TestInstance = {
    root,
    write(rel, text) {
      const p = join(root, rel);
      mkdirSync(resolve(p, '..'), { recursive: true });
      writeFileSync(p, text);
    },
    read(rel) {
      return readFileSync(join(root, rel), 'utf8');
    },
    remove() {
      if (existsSync(root)) rmSync(root, { recursive: true, force: true });
    },
  };
  for (const [rel, text] of Object.entries(opts.files ?? {})) inst.write(rel, text);
  return inst;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs bin/<command> as an operator would, with a deadline. */
export function runCli(command: string, args: string[], opts: { root?: string; input?: string | Buffer; env?: NodeJS.ProcessEnv; timeoutMs?: number; binDir?: string } = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const env = { ...process.env, ...opts.env };
    if (opts.root) env.IMTA_ROOT = opts.root;
    const child = spawn(join(opts.binDir ?? binDir, command), args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} did not finish in ${opts.timeoutMs ?? 30000} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 30000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** A TCP port nobody listens on right now (on the given loopback address). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolvePromise(port));
    });
  });
}

/** Polls `check` until it returns a truthy value or the deadline passes. */
export async function waitFor<T>(check: () => T | Promise<T>, opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${opts.what ?? 'condition'}${last ? `: ${(last as Error).message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
  }
}
