// Crash safety: a writer is SIGKILLed at random moments, many times. Every message it reported
// as committed must be on disk, intact, exactly once; no partial file may ever be visible to scan().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomInt } from 'node:crypto';
import { QueueStore } from '../../src/queue/index.js';
import { repoRoot, waitFor } from '../helpers/instance.js';

const KILLS = 20;
const writerScript = join(repoRoot, 'dist', 'test', 'helpers', 'queue-crash-writer.js');

interface Reported {
  channel: string;
  sha: string;
  attempts: number;
}

test(`committed messages survive ${KILLS} kill -9 of the writer`, { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsubame-crash-'));
  const queueDir = join(dir, 'queue');
  const corruptDir = join(dir, 'corrupt');
  const reported = new Map<string, Reported>();
  const store = new QueueStore({ queueDir, corruptDir, subdirs: () => 0 });
  let child: ReturnType<typeof spawn> | null = null;
  try {
    for (let round = 0; round < KILLS; round++) {
      const proc = spawn(process.execPath, [writerScript, queueDir, corruptDir], { stdio: ['ignore', 'pipe', 'pipe'] });
      child = proc;
      let lines = 0;
      let partial = '';
      let stderr = '';
      proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      proc.stdout.setEncoding('utf8').on('data', (d: string) => {
        partial += d;
        const parts = partial.split('\n');
        partial = parts.pop()!;
        for (const line of parts) {
          const [kind, id, a, b] = line.split(' ');
          lines++;
          if (kind === 'E') reported.set(id!, { channel: a!, sha: b!, attempts: 0 });
          else if (kind === 'U') reported.get(id!)!.attempts = Math.max(reported.get(id!)!.attempts, Number(a));
        }
      });
      const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
      // let it get going, then kill it at a random moment in the middle of its work
      await waitFor(() => lines >= 5 || proc.exitCode !== null, { timeoutMs: 10_000, what: 'the writer to commit' });
      assert.equal(proc.exitCode, null, `writer died by itself: ${stderr}`);
      await new Promise((r) => setTimeout(r, randomInt(0, 120)));
      proc.kill('SIGKILL');
      await exited;
      child = null;

      // Everything visible is whole and reads back; each id once; every reported id present.
      const seen = new Map<string, number>();
      for await (const entry of store.scan()) {
        const { envelope, body } = await store.readMessage(entry.path); // throws on a partial file
        assert.equal(envelope.id, entry.id);
        seen.set(entry.id, (seen.get(entry.id) ?? 0) + 1);
        const r = reported.get(entry.id);
        if (r) {
          assert.equal(createHash('sha256').update(body).digest('hex'), r.sha, `body of ${entry.id}`);
          assert.ok(envelope.attempts >= r.attempts, `${entry.id}: attempts ${envelope.attempts} < reported ${r.attempts}`);
          assert.ok(entry.attempts <= envelope.attempts, 'the name never claims more attempts than the envelope');
        }
      }
      for (const [id, n] of seen) assert.equal(n, 1, `${id} visible ${n} times`);
      for (const [id, r] of reported) assert.ok(seen.has(id), `reported ${id} (${r.channel}) is missing after kill ${round + 1}`);
      assert.deepEqual(await store.listCorrupt(), [], 'nothing was set aside as corrupt');
    }
    assert.ok(reported.size >= KILLS * 5, `${reported.size} messages committed`);
    // Temporary files of the killed writers are invisible to scans and swept at start-up.
    await store.sweepTemporary();
    assert.deepEqual(readdirSync(join(queueDir, '.tmp')), []);
  } finally {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
