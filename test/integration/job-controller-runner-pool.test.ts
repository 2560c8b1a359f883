// The job controller's piscina pools: a pool keeps one worker thread up while idle, so the first
// delivery after a quiet spell does not wait for a thread (an isolate, the delivery modules) to start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PiscinaRunner } from '../../src/job-controller/runner.js';
import { silentLogger } from '../../src/common/logger.js';
import { waitFor } from '../helpers/instance.js';

test('each pool has one worker thread up before any job and keeps it while idle', async () => {
  const logDir = mkdtempSync(join(tmpdir(), 'tsubame-pool-'));
  const runner = new PiscinaRunner({ logDir, logger: silentLogger(), idleTimeoutMs: 200, cpus: 2 });
  try {
    runner.configure([
      { name: 'DEFAULT', jobLimit: 4 },
      { name: 'bulk', jobLimit: 2 },
    ]);
    const perPool = () => ['DEFAULT', 'bulk'].map((p) => runner.threads().filter((t) => t.pool === p).length);
    await waitFor(() => perPool().every((n) => n === 1) || null, { timeoutMs: 10_000, what: 'one thread per pool' });
    // The scenario, not a synchronisation: three idle timeouts pass without a job.
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.deepEqual(perPool(), [1, 1], 'still one thread per pool after the idle timeout');
  } finally {
    await runner.close();
    rmSync(logDir, { recursive: true, force: true });
  }
});
