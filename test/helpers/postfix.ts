// A private Postfix on loopback for the tests that need a real Postfix as a peer: started by
// bench/postfix/instance.sh (the benchmarks' instance, relaying everything to one host) with
// extra main.cf lines, stopped by its own `postfix stop`. Needs root and the Debian postfix package.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './instance.js';
import { runTool } from '../integration/smtp-harness.js';

export interface PostfixPeer {
  dir: string;
  /** Its maillog so far (for assertion messages). */
  log(): string;
  stop(): Promise<void>;
}

export async function startPostfixPeer(opts: { ip: string; port: number; relayIp: string; relayPort: number; extra: string[] }): Promise<PostfixPeer> {
  const dir = mkdtempSync(join(tmpdir(), 'tsubame-postfix-'));
  const script = join(repoRoot, 'bench', 'postfix', 'instance.sh');
  const env = { ...process.env, POSTFIX_EXTRA_CF: opts.extra.join('\n') };
  const stop = async () => {
    await runTool('/usr/bin/bash', [script, 'stop', dir], 30_000, undefined, env);
    rmSync(dir, { recursive: true, force: true });
  };
  const started = await runTool('/usr/bin/bash', [script, 'start', dir, opts.ip, String(opts.port), opts.relayIp, String(opts.relayPort)], 60_000, undefined, env);
  if (started.code !== 0) {
    await stop();
    throw new Error(`postfix start: ${started.stdout}${started.stderr}`);
  }
  const maillog = join(dir, 'maillog');
  return { dir, log: () => (existsSync(maillog) ? readFileSync(maillog, 'utf8') : ''), stop };
}
