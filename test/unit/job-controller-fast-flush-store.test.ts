// The fast-flush journal: the index survives a reopen (a job controller restart), compaction,
// a torn last line, repair from envelopes the scheduler reads, and the policy applied on record.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FastFlushStore, fastFlushJournalPath, flushHostFor } from '../../src/job-controller/fast-flush-store.js';
import { MessageIndex } from '../../src/job-controller/message-index.js';
import type { InstanceConfig } from '../../src/config/types.js';
import type { Envelope, ScanEntry } from '../../src/queue/types.js';

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

function deferredEnvelope(id: string, domain: string, attempts = 1): Envelope {
  return {
    id, channel: 'tcp_local', from: 'a@b.test', mailParams: {}, sourceChannel: 'tcp_local', clientAddress: null, clientHelo: null,
    arrival: new Date(), attempts, nextAttempt: attempts ? new Date(Date.now() + 3600_000) : null, held: false,
    recipients: [{ address: `u@${domain}`, original: `u@${domain}`, orcpt: null, notify: null, state: 'pending', status: null }],
  };
}

/** A fake queue of deferred files: names and stat only for scan(), envelopes on read() (counted). */
function fakeQueue(root: string, files: Array<{ id: string; domain: string; attempts?: number; skipped?: boolean }>) {
  const reads: string[] = [];
  const path = (id: string) => join(root, `queue/tcp_local/ZY${id}.00`);
  return {
    reads,
    path,
    async *scan(): AsyncIterable<ScanEntry> {
      for (const f of files) yield { id: f.id, channel: 'tcp_local', path: path(f.id), held: false, attempts: f.attempts ?? 1, mtimeMs: 0 };
    },
    async read(p: string) {
      reads.push(p);
      const f = files.find((x) => path(x.id) === p);
      if (!f) return null;
      const envelope = deferredEnvelope(f.id, f.domain, f.attempts ?? 1);
      return { envelope: f.skipped ? { ...envelope, nextAttempt: new Date(Date.now() + 300_000) } : envelope, size: 10 };
    },
  };
}

test('no journal: rebuild() reads only the deferred files the scheduler did not read, once; with a journal it reads none', withRoot(async (root) => {
  const files = [
    { id: 'A', domain: 'customer.test' },
    { id: 'B', domain: 'customer.test' },
    { id: 'C', domain: 'other.test' },
    { id: 'N', domain: 'customer.test', attempts: 0 }, // never tried: not deferred (read: its name cannot tell)
    { id: 'S', domain: 'customer.test', attempts: 0, skipped: true }, // not tried, its host was down: deferred
  ];
  const q = fakeQueue(root, files);
  const s = FastFlushStore.open({ root, config: config(['customer.test']) });
  assert.equal(s.rebuildOwed, true);
  // The scheduler's scan read A (room for one message): noteAdmitted indexed it.
  s.noteAdmitted(q.path('A'), deferredEnvelope('A', 'customer.test'));
  const r = await s.rebuild({ scan: () => q.scan(), known: (id) => id === 'A', read: (p) => q.read(p) });
  assert.deepEqual(q.reads.sort(), [q.path('B'), q.path('C'), q.path('N'), q.path('S')]);
  assert.equal(r?.read, 4);
  assert.deepEqual(ids(s, 'customer.test'), ['A', 'B', 'S']);
  s.close();

  const again = FastFlushStore.open({ root, config: config(['customer.test']) });
  assert.equal(again.rebuildOwed, false, 'the journal is authoritative now');
  assert.equal(await again.rebuild({ scan: () => q.scan(), known: () => false, read: (p) => q.read(p) }), null);
  assert.equal(q.reads.length, 4, 'no file read');
  assert.deepEqual(ids(again, 'customer.test'), ['A', 'B', 'S']);
  again.close();
}));

test('a rebuild cut short (a crash) is owed again at the next start, though the journal exists', withRoot(async (root) => {
  const s = FastFlushStore.open({ root, config: config(['customer.test']) });
  s.close(); // no rebuild()
  const t = FastFlushStore.open({ root, config: config(['customer.test']) });
  assert.equal(t.loaded.existed, true);
  assert.equal(t.rebuildOwed, true);
  t.close();
}));

test('a flush admits a message the full scheduler does not hold, reading it once, and hands its envelope on', async () => {
  const index = new MessageIndex(1);
  index.add({ id: 'FULL', channel: 'tcp_local', path: '/q/full', attempts: 1, arrivalMs: 0, dueMs: Date.now() + 3600_000, pendingRecipients: 1, domains: ['x.test'] }, Date.now());
  const reads: string[] = [];
  const admitted: Array<{ path: string; size: number; next: Date | null }> = [];
  const root = mkdtempSync(join(tmpdir(), 'etrn-host-'));
  try {
    const path = join(root, 'ZYMESSAGE1.00');
    appendFileSync(path, 'x');
    const host = flushHostFor({
      index,
      read: async (p) => {
        reads.push(p);
        return { envelope: deferredEnvelope('MESSAGE1', 'customer.test'), size: 42 };
      },
      admit: (p, envelope, size) => {
        admitted.push({ path: p, size, next: envelope.nextAttempt });
        return index.add({ id: envelope.id, channel: envelope.channel, path: p, attempts: 1, arrivalMs: 0, dueMs: 0, pendingRecipients: 1, domains: ['customer.test'] }, Date.now(), true);
      },
      rescan: () => {},
      kick: () => {},
      now: Date.now,
      hasChannel: () => true,
    });
    assert.equal(await host.admitNow({ id: 'MESSAGE1', channel: 'tcp_local', path }), 'admitted');
    assert.deepEqual(reads, [path]);
    assert.deepEqual(admitted.map((a) => [a.path, a.size]), [[path, 42]]);
    // Due now through admit(), its schedule kept: a try before it does not count (outcome.ts retrySchedule).
    assert.ok(admitted[0]!.next && admitted[0]!.next.getTime() > Date.now(), 'the envelope keeps its next attempt');
    assert.equal(index.size, 2, 'beyond MAX_MESSAGES');
    assert.equal(index.overflowed, false);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('MessageIndex: a full index refuses an add (and overflows) unless it is over the limit on purpose', () => {
  const index = new MessageIndex(1);
  const msg = (id: string) => ({ id, channel: 'c', path: `/q/${id}`, attempts: 0, arrivalMs: 0, dueMs: 0, pendingRecipients: 1, domains: ['d.test'] });
  assert.equal(index.add(msg('A'), 0), true);
  assert.equal(index.add(msg('B'), 0), false);
  assert.equal(index.overflowed, true);
  assert.equal(index.add(msg('C'), 0, true), true);
  assert.equal(index.size, 2);
});

test('a journal without dead lines is appended to as it is; one with a line cut before its newline is rewritten first', withRoot(async (root) => {
  const a = FastFlushStore.open({ root, config: config(['customer.test']) });
  a.deferred({ id: 'M1', channel: 'tcp_local', path: join(root, 'queue/tcp_local/ZYM1.00') }, ['customer.test']);
  a.close();
  const clean = readFileSync(fastFlushJournalPath(root), 'utf8');
  const b = FastFlushStore.open({ root, config: config(['customer.test']) });
  b.deferred({ id: 'M2', channel: 'tcp_local', path: join(root, 'queue/tcp_local/ZYM2.00') }, ['customer.test']);
  b.close();
  assert.ok(readFileSync(fastFlushJournalPath(root), 'utf8').startsWith(clean), 'appended, not rewritten');

  // A crash wrote a whole line but not its newline: the next line must not be glued to it.
  writeFileSync(fastFlushJournalPath(root), clean.trimEnd());
  const c = FastFlushStore.open({ root, config: config(['customer.test']) });
  c.deferred({ id: 'M3', channel: 'tcp_local', path: join(root, 'queue/tcp_local/ZYM3.00') }, ['customer.test']);
  c.close();
  const d = FastFlushStore.open({ root, config: config(['customer.test']) });
  assert.equal(d.loaded.skipped, 0);
  assert.deepEqual(ids(d, 'customer.test'), ['M1', 'M3']);
  d.close();
}));
