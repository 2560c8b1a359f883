// The fast-flush journal: the index survives a reopen (a job controller restart), compaction,
// a torn last line, repair from envelopes the scheduler reads, and the policy applied on record.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FastFlushStore, fastFlushJournalPath } from '../../src/job-controller/fast-flush-store.js';
import type { InstanceConfig } from '../../src/config/types.js';
import type { Envelope } from '../../src/queue/types.js';

function config(fastFlushDomains: string[] | null): Pick<InstanceConfig, 'options' | 'imta'> {
  return {
    options: { fastFlushDomains } as InstanceConfig['options'],
    imta: { rules: [], channels: [], channelByName: new Map(), hostTable: new Map() },
  };
}

function withRoot(fn: (root: string) => void | Promise<void>) {
  return async () => {
    const root = mkdtempSync(join(tmpdir(), 'etrn-store-'));
    try {
      await fn(root);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  };
}

const settle = () => new Promise((r) => setImmediate(r));
const ids = (s: FastFlushStore, d: string, sub = false) => s.index.lookup(d, sub).map((e) => e.ref.id).sort();

test('the index survives a reopen; paths are kept relative to the instance root', withRoot(async (root) => {
  const a = FastFlushStore.open({ root, config: config(['customer.test', 'other.test']) });
  a.deferred({ id: 'M1', channel: 'tcp_local', path: join(root, 'queue/tcp_local/ZYM1.00') }, ['customer.test']);
  a.deferred({ id: 'M2', channel: 'tcp_local', path: join(root, 'queue/tcp_local/ZYM2.00') }, ['customer.test', 'elsewhere.test']);
  a.deferred({ id: 'M3', channel: 'tcp_local', path: join(root, 'queue/tcp_local/ZYM3.00') }, ['other.test']);
  a.deferred({ id: 'M4', channel: 'tcp_local', path: join(root, 'queue/tcp_local/ZYM4.00') }, ['elsewhere.test']);
  await settle();
  a.gone('M3');
  a.deferred({ id: 'M1', channel: 'tcp_local', path: join(root, 'queue/tcp_local/ZXM1.00') }, ['customer.test']);
  a.close(); // writes what is buffered
  assert.equal(a.index.get('M4'), undefined, 'only fast-flush domains are indexed');
  assert.deepEqual(a.index.get('M2')!.domains, ['customer.test']);
  const text = readFileSync(fastFlushJournalPath(root), 'utf8');
  assert.ok(!text.includes(root), 'no absolute paths in the journal');

  const b = FastFlushStore.open({ root, config: config(['customer.test', 'other.test']) });
  assert.equal(b.loaded.existed, true);
  assert.equal(b.loaded.entries, 2);
  assert.deepEqual(ids(b, 'customer.test'), ['M1', 'M2']);
  assert.deepEqual(ids(b, 'other.test'), []);
  assert.equal(b.index.get('M1')!.ref.path, join(root, 'queue/tcp_local/ZXM1.00'));
  // Reopen compacted it: one line per live entry.
  assert.equal(readFileSync(fastFlushJournalPath(root), 'utf8').trim().split('\n').length, 2);
  b.close();
}));

test('a torn last line (crash while appending) is skipped, the rest is kept', withRoot(async (root) => {
  const a = FastFlushStore.open({ root, config: config(['customer.test']) });
  a.deferred({ id: 'M1', channel: 'tcp_local', path: join(root, 'queue/tcp_local/ZYM1.00') }, ['customer.test']);
  a.close();
  appendFileSync(fastFlushJournalPath(root), '{"op":"d","id":"M2","ch":"tcp_lo');
  const b = FastFlushStore.open({ root, config: config(['customer.test']) });
  assert.equal(b.loaded.skipped, 1);
  assert.deepEqual(ids(b, 'customer.test'), ['M1']);
  b.close();
}));

test('no journal yet: an empty index and a new file', withRoot((root) => {
  const s = FastFlushStore.open({ root, config: config(null) });
  assert.equal(s.loaded.existed, false);
  assert.equal(s.index.size, 0);
  s.close();
  assert.ok(existsSync(fastFlushJournalPath(root)));
}));

test('compaction once dead lines outnumber live entries by the slack', withRoot(async (root) => {
  const s = FastFlushStore.open({ root, config: config(['customer.test']), compactSlack: 10 });
  for (let i = 0; i < 30; i++) s.deferred({ id: 'SAME', channel: 'tcp_local', path: join(root, `queue/tcp_local/Z${i}SAME.00`) }, ['customer.test']);
  await settle();
  await settle();
  const lines = readFileSync(fastFlushJournalPath(root), 'utf8').trim().split('\n');
  assert.equal(lines.length, 1, 'rewritten with the one live entry');
  assert.match(lines[0]!, /Z29SAME/);
  s.close();
}));

test('noteAdmitted: a message tried before and still pending is indexed; new or held ones are not', withRoot(async (root) => {
  const s = FastFlushStore.open({ root, config: config(['customer.test']) });
  const env = (id: string, attempts: number, held = false): Envelope => ({
    id, channel: 'tcp_local', from: 'a@b.test', mailParams: {}, sourceChannel: 'tcp_local', clientAddress: null, clientHelo: null,
    arrival: new Date(), attempts, nextAttempt: attempts ? new Date(Date.now() + 3600_000) : null, held,
    recipients: [
      { address: 'u@customer.test', original: 'u@customer.test', orcpt: null, notify: null, state: 'pending', status: null },
      { address: 'v@done.test', original: 'v@done.test', orcpt: null, notify: null, state: 'delivered', status: null },
    ],
  });
  s.noteAdmitted(join(root, 'queue/tcp_local/ZYOLD.00'), env('OLD', 1));
  s.noteAdmitted(join(root, 'queue/tcp_local/ZZNEW.00'), env('NEW', 0));
  s.noteAdmitted(join(root, 'queue/tcp_local/ZYHELD.HELD'), env('HELD', 1, true));
  assert.deepEqual(ids(s, 'customer.test'), ['OLD']);
  s.close();
}));

test('a new policy applies to what is recorded from then on', withRoot((root) => {
  const s = FastFlushStore.open({ root, config: config(['customer.test']) });
  s.deferred({ id: 'A', channel: 'tcp_local', path: join(root, 'queue/tcp_local/ZYA.00') }, ['later.test']);
  assert.equal(s.index.size, 0);
  s.configure(config(['later.test']));
  s.deferred({ id: 'A', channel: 'tcp_local', path: join(root, 'queue/tcp_local/ZYA.00') }, ['later.test']);
  assert.deepEqual(ids(s, 'later.test'), ['A']);
  s.close();
}));
