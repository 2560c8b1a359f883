// `imsimta qm` over a large queue on a terminal: a progress line while it reads the queue
// (summarize, directory) or looks for the messages named (hold …), erased before the answer, so
// the answer is what a pipe gets; piped, nothing but the answer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { makeInstance, runCli, type TestInstance } from '../helpers/instance.js';
import { onTerminal } from '../helpers/terminal.js';
import { instancePaths } from '../../src/common/instance.js';
import { queueStoreFor, type EnvelopeDraft, type QueueRef } from '../../src/queue/index.js';

const MESSAGES = 2000;
let inst: TestInstance;
const refs: QueueRef[] = [];

before(async () => {
  inst = makeInstance({ files: { 'etc/imta.cnf': '. $U%$H@tcp-daemon\n\nl\nlocalhost\n\ntcp_local smtp nomx\ntcp-daemon\n' } });
  const store = queueStoreFor(instancePaths(inst.root), null);
  try {
    const drafts = (i: number): EnvelopeDraft[] => [
      { channel: 'tcp_local', from: 'a@example.org', mailParams: {}, sourceChannel: 'l', clientAddress: null, clientHelo: null, arrival: new Date(), recipients: [{ address: `r${i}@remote.test`, original: `r${i}@remote.test`, orcpt: null, notify: null, state: 'pending', status: null }] },
    ];
    // A few at a time: the store's group commit shares their fsyncs.
    for (let i = 0; i < MESSAGES; i += 50) {
      const batch = await Promise.all(Array.from({ length: 50 }, (_, j) => store.enqueue(drafts(i + j), Buffer.from(`Subject: ${i + j}\r\n\r\nbody\r\n`))));
      refs.push(...batch.flat());
    }
  } finally {
    await store.close();
  }
});

after(() => inst?.remove());

test('qm summarize on a terminal: a count of the messages read, erased before the table; piped: the table alone', { timeout: 120_000 }, async () => {
  const piped = await runCli('imsimta', ['qm', 'summarize', '--root', inst.root], { timeoutMs: 60_000 });
  assert.equal(piped.code, 0, piped.stderr);
  assert.equal(piped.stderr, '', 'no progress line into a pipe');
  assert.match(piped.stdout, new RegExp(`\\nTotal +${MESSAGES} +${MESSAGES} +0\\n$`));

  const run = await onTerminal('imsimta', ['qm', 'summarize', '--root', inst.root], { timeoutS: 60 });
  assert.equal(run.code, 0, run.transcript);
  const shown = run.transcript.indexOf('\rimsimta qm: reading the queue: ');
  assert.ok(shown >= 0, run.transcript.slice(0, 300));
  const erased = run.transcript.lastIndexOf('\r\x1b[K');
  assert.ok(erased > shown);
  // After the erasure, exactly what the pipe got (the terminal writes CR LF for LF).
  assert.equal(run.transcript.slice(erased + 4), piped.stdout.replace(/\n/g, '\r\n'));
  for (const m of run.transcript.matchAll(/reading the queue: ([\d,]+) messages/g)) assert.ok(Number(m[1]!.replace(/,/g, '')) <= MESSAGES);
});

test('qm hold ID on a terminal: a count of the files looked through while it finds the message', { timeout: 120_000 }, async () => {
  const id = refs[refs.length - 1]!.id;
  const run = await onTerminal('imsimta', ['qm', 'hold', id, '--root', inst.root], { timeoutS: 60 });
  assert.equal(run.code, 0, run.transcript);
  assert.match(run.transcript, /\rimsimta qm: looking for the messages: [\d,]+ queue files\x1b\[K/);
  assert.ok(run.transcript.endsWith(`\r\x1b[K${id}: held\r\n`), JSON.stringify(run.transcript.slice(-120)));
  const piped = await runCli('imsimta', ['qm', 'release', id, '--root', inst.root]);
  assert.equal(piped.stdout, `${id}: released\n`);
  assert.doesNotMatch(piped.stderr, /looking for/);
});
