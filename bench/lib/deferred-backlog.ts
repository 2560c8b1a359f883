// A backlog of already-deferred messages written straight into a stopped instance's queue, as if
// every message had been tried once and refused: QueueStore writes each file (enqueue, then the
// rewrite a deferral makes: attempts 1, the next attempt a day away, the refusal as status), and
// the fast-flush journal gets the line the job controller writes on a deferral. Far quicker than
// sending the messages and waiting for each to fail, and the files are the same.
import { instancePaths } from '../../src/common/instance.js';
import { loadInstanceConfigOrThrow } from '../../src/config/load.js';
import { FastFlushStore } from '../../src/job-controller/fast-flush-store.js';
import { queueStoreFor, type Envelope, type EnvelopeDraft, type QueueRef } from '../../src/queue/index.js';

export interface BacklogOptions {
  root: string;
  channel: string;
  /** The recipient domain of each message, in queue (arrival) order. */
  domains: readonly string[];
  /** Write the fast-flush journal lines too (false: the job controller has to rebuild the index). */
  journal: boolean;
  /** Files written at once. */
  parallel?: number;
}

export interface Backlog {
  written: number;
  seconds: number;
  journalEntries: number;
}

const DAY_MS = 86_400_000;

export async function writeDeferredBacklog(o: BacklogOptions): Promise<Backlog> {
  const started = performance.now();
  const config = loadInstanceConfigOrThrow(o.root);
  const store = queueStoreFor(instancePaths(o.root), config);
  const flush = o.journal ? FastFlushStore.open({ root: o.root, config }) : null;
  const nextAttempt = new Date(Date.now() + DAY_MS);
  let next = 0;
  const writeOne = async (i: number) => {
    const domain = o.domains[i]!;
    const address = `u${i}@${domain}`;
    const draft: EnvelopeDraft = {
      channel: o.channel,
      from: 'list@sender.test',
      mailParams: {},
      sourceChannel: 'tcp_local',
      clientAddress: '127.0.10.201',
      clientHelo: 'client.etrn.test',
      arrival: new Date(),
      recipients: [{ address, original: address, orcpt: null, notify: null, state: 'pending', status: null }],
    };
    const [ref] = await store.enqueue([draft], messageBody(i, address));
    const deferred: Envelope = {
      ...draft,
      id: ref!.id,
      attempts: 1,
      nextAttempt,
      held: false,
      recipients: draft.recipients.map((r) => ({ ...r, status: `421 4.4.1 connection refused (mx.${domain})` })),
    };
    const now: QueueRef = await store.update(ref!, deferred);
    flush?.deferred(now, [domain]);
  };
  await Promise.all(
    Array.from({ length: o.parallel ?? 64 }, async () => {
      while (next < o.domains.length) await writeOne(next++);
    }),
  );
  let journalEntries = 0;
  if (flush) {
    // The journal covers every file: nothing for the job controller to rebuild (this reads no file).
    await flush.rebuild({ scan: () => store.scan(o.channel), known: () => false, read: async () => null });
    journalEntries = flush.index.size;
    flush.close();
  }
  await store.close();
  return { written: o.domains.length, seconds: (performance.now() - started) / 1000, journalEntries };
}

/** A small but ordinary message (about 1 KB). */
function messageBody(i: number, to: string): Buffer {
  const lines = [
    'From: Mailing List <list@sender.test>',
    `To: <${to}>`,
    `Subject: backlog message ${i}`,
    `Message-ID: <backlog-${i}@sender.test>`,
    'Date: Tue, 01 Dec 2026 10:00:00 +0000',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    ...Array.from({ length: 12 }, (_, k) => `Line ${k} of message ${i}: the quick brown fox jumps over the lazy dog again.`),
    '',
  ];
  return Buffer.from(lines.join('\r\n'), 'latin1');
}
