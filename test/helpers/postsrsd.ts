// postsrsd (Debian's postsrsd 1.x, Postfix's SRS daemon) on loopback as an independent SRS
// implementation: started in the foreground with its own secrets file and domain in a temporary
// directory, ready once its forward port answers, stopped by its pid. forward()/reverse() ask its
// two Postfix tcp_table ports (`get ADDRESS` → `200 RESULT` or `500 reason`).
//
//   const srsd = await startPostsrsd({ domain: 'srs.example', secrets: ['s3cret…'] });
//   await srsd.forward('alice@orig.example') // → { code: 200, value: 'SRS0=…@srs.example' }
//   await srsd.close();
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from './instance.js';

const POSTSRSD = ['/usr/sbin/postsrsd', '/usr/bin/postsrsd'].find((p) => existsSync(p)) ?? 'postsrsd';

export interface TableReply {
  code: number;
  value: string;
}

export interface Postsrsd {
  pid: number;
  forward(address: string): Promise<TableReply>;
  reverse(address: string): Promise<TableReply>;
  close(): Promise<void>;
}

export async function startPostsrsd(opts: { domain: string; secrets: string[]; host?: string }): Promise<Postsrsd> {
  const host = opts.host ?? '127.0.0.1';
  const dir = mkdtempSync(join(tmpdir(), 'tsubame-postsrsd-'));
  const secretsFile = join(dir, 'secrets');
  writeFileSync(secretsFile, `${opts.secrets.join('\n')}\n`, { mode: 0o600 });
  const [fwd, rev] = [await freePort(host), await freePort(host)];
  const child: ChildProcess = spawn(POSTSRSD, [`-s${secretsFile}`, `-d${opts.domain}`, `-l${host}`, `-f${fwd}`, `-r${rev}`, '-4'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const ask = (port: number, address: string) => query(host, port, address);
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`postsrsd exited: ${output.trim()}`);
        return (await ask(fwd, 'probe@probe.example').catch(() => null)) !== null;
      },
      { timeoutMs: 10_000, what: 'postsrsd to answer' },
    );
  } catch (err) {
    await close();
    throw err;
  }
  return { pid: child.pid!, forward: (a) => ask(fwd, a), reverse: (a) => ask(rev, a), close };
}

/** One tcp_table request (keys and values %-encoded as Postfix does for space, % and controls). */
function query(host: string, port: number, key: string): Promise<TableReply> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port }, () => socket.write(`get ${encode(key)}\n`));
    let buffered = '';
    const timer = setTimeout(() => socket.destroy(new Error('postsrsd did not answer within 5 s')), 5_000);
    socket.on('data', (c: Buffer) => {
      buffered += c.toString('latin1');
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      socket.destroy();
      const line = buffered.slice(0, nl);
      resolve({ code: Number(line.slice(0, 3)), value: decodeURIComponent(line.slice(4)) });
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

function encode(text: string): string {
  return text.replace(/[\s%\x00-\x1f\x7f]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
