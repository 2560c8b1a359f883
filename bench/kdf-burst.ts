// Password-hash burst (issue 15: "a burst of AUTH attempts must not stall other sessions"):
// N verifications at once at the default scrypt cost, through a KdfGate of each concurrency
// given (0 = no gate), while the event loop's delay and a file-system probe (stat of a file and
// a 1 KiB write + fsync, the calls queue I/O makes, both in libuv's thread pool like scrypt)
// are measured. Prints one line per gate (or JSON).
//   node dist/bench/kdf-burst.js [--attempts 50] [--gates 0,1,2,4] [--json]
//   UV_THREADPOOL_SIZE=8 node dist/bench/kdf-burst.js
import { mkdtempSync, rmSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { KdfGate } from '../src/directory/kdf-gate.js';
import { parsePasswordHash } from '../src/config/hash-format.js';
import { hashPassword, verifyPassword } from '../src/directory/password-hash.js';

const { values } = parseArgs({ options: { attempts: { type: 'string', default: '50' }, gates: { type: 'string', default: '0,1,2,4' }, json: { type: 'boolean', default: false } } });
const attempts = Number(values.attempts);
const gates = values.gates.split(',').map(Number);

const percentile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))]! : 0;
};
const round = (x: number) => Math.round(x * 10) / 10;

const dir = mkdtempSync(join(tmpdir(), 'kdf-burst-'));
const parsed = parsePasswordHash(await hashPassword('the right password'));
if (!parsed.ok) throw new Error(parsed.error);
const stored = parsed.hash;

// One verification alone, for scale.
let t0 = performance.now();
await verifyPassword('a wrong password', stored);
const single = performance.now() - t0;

const results = [];
for (const concurrency of gates) {
  const gate = concurrency > 0 ? new KdfGate(concurrency) : null;
  const loop = monitorEventLoopDelay({ resolution: 1 });
  const probes: number[] = [];
  let burstDone = false;
  const probe = (async () => {
    const file = join(dir, `probe-${concurrency}`);
    while (!burstDone) {
      const t = performance.now();
      const fh = await open(file, 'w');
      await fh.write(Buffer.alloc(1024, 0x61));
      await fh.sync();
      await fh.close();
      await stat(file);
      probes.push(performance.now() - t);
    }
  })();
  loop.enable();
  t0 = performance.now();
  const latencies = await Promise.all(
    Array.from({ length: attempts }, async () => {
      const t = performance.now();
      const verify = () => verifyPassword('a wrong password', stored);
      await (gate ? gate.run(verify) : verify());
      return performance.now() - t;
    }),
  );
  const total = performance.now() - t0;
  burstDone = true;
  await probe;
  loop.disable();
  results.push({
    gate: concurrency || 'none',
    total_ms: round(total),
    verify_p50_ms: round(percentile(latencies, 0.5)),
    verify_max_ms: round(Math.max(...latencies)),
    loop_delay_p99_ms: round(loop.percentile(99) / 1e6),
    loop_delay_max_ms: round(loop.max / 1e6),
    fs_probe_p50_ms: round(percentile(probes, 0.5)),
    fs_probe_p99_ms: round(percentile(probes, 0.99)),
    fs_probe_max_ms: round(Math.max(...probes)),
    fs_probes: probes.length,
  });
}
rmSync(dir, { recursive: true, force: true });

const header = { attempts, single_verify_ms: round(single), uv_threadpool_size: process.env.UV_THREADPOOL_SIZE ?? '4 (default)' };
if (values.json) process.stdout.write(`${JSON.stringify({ ...header, results })}\n`);
else {
  process.stdout.write(`${attempts} verifications at once, one alone ${header.single_verify_ms} ms, UV_THREADPOOL_SIZE ${header.uv_threadpool_size}\n`);
  for (const r of results) process.stdout.write(`${JSON.stringify(r)}\n`);
}
