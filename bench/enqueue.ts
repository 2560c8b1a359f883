// Durable enqueue benchmark: 1 KiB messages with 1, 20 and 100 concurrent writers into a fresh
// queue in a temporary directory (same file system as /tmp unless BENCH_DIR says otherwise).
// Prints messages/s and p50/p99 latency of commit() per writer count.
//   node dist/bench/enqueue.js [--seconds 5] [--writers 1,20,100] [--subdirs 0] [--delivered keep|delete|reuse] [--json]
// --delivered: what happens to each message once committed. keep (default): it stays, the queue
// grows. delete / reuse: it is removed at once as the job controller removes a delivered message
// (unlinked, or retired as a spare for the next enqueue), so the run is a steady flow of mail.
// Environment: BENCH_DIR (where the temporary queue goes), UV_THREADPOOL_SIZE (libuv's pool, which
// runs the fsyncs: more threads let a journaling file system batch more of them per commit).
import { mkdtempSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QueueStore, type EnvelopeDraft } from '../src/queue/index.js';
import { discardDir } from './lib/discard.js';

interface Result {
  writers: number;
  messages: number;
  seconds: number;
  perSecond: number;
  p50ms: number;
  p99ms: number;
  dirFsyncRoundsPerMessage: number;
  /** CPU time (user + system) of this process per message, in microseconds. */
  cpuMicrosPerMessage: number;
}

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const seconds = Number(option('seconds', '5'));
const writerCounts = option('writers', '1,20,100').split(',').map(Number);
const subdirs = Number(option('subdirs', '0'));
const asJson = process.argv.includes('--json');
const delivered = option('delivered', 'keep');
if (!['keep', 'delete', 'reuse'].includes(delivered)) throw new Error(`--delivered keep|delete|reuse, not ${delivered}`);

const body = Buffer.alloc(1024, 0x61);
body.write('Received: from bench\r\nSubject: bench\r\n\r\n');

function draft(n: number): EnvelopeDraft {
  return {
    channel: 'tcp_local',
    from: 'bench@example.com',
    mailParams: { size: 1024 },
    sourceChannel: 'tcp_intranet',
    clientAddress: '127.0.3.1',
    clientHelo: 'bench.example',
    arrival: new Date(),
    recipients: [{ address: `user${n}@example.net`, original: `user${n}@example.net`, orcpt: null, notify: null, state: 'pending', status: null }],
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Removed only at the end: ext4 scans past recently deleted inodes when it allocates new ones, so deleting one run's files would slow down the next run. */
const made: string[] = [];

async function run(writers: number): Promise<Result> {
  const dir = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'tsubame-bench-'));
  made.push(dir);
  const store = new QueueStore({ queueDir: join(dir, 'queue'), corruptDir: join(dir, 'corrupt'), subdirs: () => subdirs });
  try {
    await store.enqueue([draft(0)], body); // create the directories outside the measurement
    const latencies: number[] = [];
    const rounds0 = store.fsyncRounds;
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    const deadline = start + seconds * 1000;
    let n = 0;
    await Promise.all(
      Array.from({ length: writers }, async () => {
        while (performance.now() < deadline) {
          const t0 = performance.now();
          const [ref] = await store.enqueue([draft(n++)], body);
          latencies.push(performance.now() - t0);
          if (delivered === 'reuse' && store.spares.retireSync(ref!.path, statSync(ref!.path).size)) continue;
          if (delivered !== 'keep') unlinkSync(ref!.path);
        }
      }),
    );
    const elapsed = (performance.now() - start) / 1000;
    const cpu = process.cpuUsage(cpu0);
    latencies.sort((a, b) => a - b);
    return {
      writers,
      messages: latencies.length,
      seconds: Number(elapsed.toFixed(2)),
      perSecond: Math.round(latencies.length / elapsed),
      p50ms: Number(percentile(latencies, 50).toFixed(2)),
      p99ms: Number(percentile(latencies, 99).toFixed(2)),
      dirFsyncRoundsPerMessage: Number(((store.fsyncRounds - rounds0) / latencies.length).toFixed(3)),
      cpuMicrosPerMessage: Math.round((cpu.user + cpu.system) / latencies.length),
    };
  } finally {
    await store.close();
  }
}

if (!asJson) console.log(`# queue in ${process.env.BENCH_DIR ?? tmpdir()}, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}, subdirs ${subdirs}, delivered ${delivered}, ${seconds} s per run`);
try {
  for (const w of writerCounts) {
    const r = await run(w);
    if (asJson) console.log(JSON.stringify(r));
    else {
      console.log(
        `writers ${String(r.writers).padStart(3)}  ${String(r.perSecond).padStart(6)} msg/s  p50 ${r.p50ms.toFixed(2)} ms  p99 ${r.p99ms.toFixed(2)} ms  ` +
          `(${r.messages} messages in ${r.seconds} s, ${r.dirFsyncRoundsPerMessage} dir fsync rounds/message, ${r.cpuMicrosPerMessage} µs CPU/message)`,
      );
    }
  }
} finally {
  for (const dir of made) discardDir(dir);
}
