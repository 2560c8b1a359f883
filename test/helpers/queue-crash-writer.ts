// Child process for the crash-safety test: enqueues (and updates) messages as fast as it can and
// prints one line per operation only after it is durable, until it is killed:
//   E <id> <channel> <sha256 of body>      a commit() resolved
//   U <id> <attempts>                       an update() resolved
//   node dist/test/helpers/queue-crash-writer.js QUEUE_DIR CORRUPT_DIR
import { createHash, randomInt } from 'node:crypto';
import { QueueStore, type EnvelopeDraft, type QueueRef } from '../../src/queue/index.js';

const [queueDir, corruptDir] = process.argv.slice(2);
if (!queueDir || !corruptDir) throw new Error('usage: queue-crash-writer QUEUE_DIR CORRUPT_DIR');
const store = new QueueStore({ queueDir, corruptDir, subdirs: (ch) => (ch === 'tcp_local' ? 3 : 0) });

function draft(channel: string): EnvelopeDraft {
  return {
    channel,
    from: 'crash@example.com',
    mailParams: {},
    sourceChannel: 'tcp_intranet',
    clientAddress: '127.0.3.2',
    clientHelo: 'crash.example',
    arrival: new Date(),
    recipients: [{ address: `r${randomInt(1e9)}@example.net`, original: 'r@example.net', orcpt: null, notify: null, state: 'pending', status: null }],
  };
}

function say(line: string): void {
  process.stdout.write(line + '\n');
}

const committed: QueueRef[] = [];

async function enqueueLoop(): Promise<void> {
  for (;;) {
    const size = randomInt(3) === 0 ? randomInt(70_000, 300_000) : randomInt(10, 4000);
    const body = Buffer.alloc(size);
    // random words every 4 KiB; the last one must fit whole (a size just past a 4 KiB step left 1–3 octets)
    for (let i = 0; i + 4 <= size; i += 4096) body.writeUInt32LE(randomInt(2 ** 32), i);
    const channels = randomInt(4) === 0 ? ['tcp_local', 'l'] : ['tcp_local'];
    const tx = store.begin(channels.map(draft));
    for (let off = 0; off < size; off += 16384) await tx.write(body.subarray(off, off + 16384));
    const refs = await tx.commit();
    const sha = createHash('sha256').update(body).digest('hex');
    for (const ref of refs) {
      say(`E ${ref.id} ${ref.channel} ${sha}`);
      committed.push(ref);
    }
  }
}

async function updateLoop(): Promise<void> {
  for (;;) {
    const i = randomInt(Math.max(1, committed.length));
    const ref = committed[i];
    if (!ref) {
      await new Promise((r) => setTimeout(r, 1));
      continue;
    }
    const env = await store.readEnvelope(ref.path);
    env.attempts += 1;
    env.nextAttempt = new Date(Date.now() + 60_000);
    env.recipients[0]!.status = `451 4.4.1 attempt ${env.attempts}`;
    const next = await store.update(ref, env);
    committed[i] = next;
    say(`U ${next.id} ${env.attempts}`);
  }
}

await Promise.all([enqueueLoop(), enqueueLoop(), enqueueLoop(), enqueueLoop(), updateLoop()]);
