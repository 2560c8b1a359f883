// The job controller's intake (intake.ts): why a message enters the index decides when it is due,
// whether a full index takes it, and whether it counts as new; the envelope read at admission is
// handed to the first attempt instead of a second read; a message whose file is gone is forgotten.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { jcInstance } from '../helpers/in-process-job-controller.js';
import { loadInstanceConfigOrThrow } from '../../src/config/load.js';
import { instancePaths } from '../../src/common/instance.js';
import { silentLogger } from '../../src/common/logger.js';
import { queueStoreFor, type Envelope } from '../../src/queue/index.js';
import { Intake, admission, type AdmitReason } from '../../src/job-controller/intake.js';
import { parseJobControllerRequest } from '../../src/job-controller/protocol.js';

const NOW = Date.UTC(2026, 0, 2, 3, 4, 5);
const HOUR = 3600_000;

function envelope(id: string, over: Partial<Envelope> = {}): Envelope {
  return {
    id, channel: 'tcp_local', from: 'a@example.org', mailParams: {}, sourceChannel: 'l', clientAddress: null, clientHelo: null,
    arrival: new Date(NOW), attempts: 0, nextAttempt: null, held: false,
    recipients: [{ address: `r@${id.toLowerCase()}.test`, original: `r@${id.toLowerCase()}.test`, orcpt: null, notify: null, state: 'pending', status: null }],
    ...over,
  };
}

/** An intake on a fresh instance whose index holds `maxMessages`; `arrivals` records what counted as new. */
function makeIntake(maxMessages: number) {
  const inst = jcInstance(`MAX_MESSAGES=${maxMessages}\n[POOL=DEFAULT]\nJOB_LIMIT=2\n`);
  const config = loadInstanceConfigOrThrow(inst.root);
  const store = queueStoreFor(instancePaths(inst.root), config);
  const arrivals: string[] = [];
  let rooms = 0;
  const intake = new Intake({
    root: inst.root,
    config,
    store: () => store,
    firstDueMs: (env) => env.nextAttempt?.getTime() ?? 0,
    onArrival: (env) => arrivals.push(env.id),
    onRoom: () => rooms++,
    logger: silentLogger(),
    now: () => NOW,
  });
  after(async () => {
    intake.close();
    await store.close();
  });
  return { intake, inst, arrivals, rooms: () => rooms };
}

test('admission: what each reason means', () => {
  const table = Object.fromEntries((['enqueued', 'scanned', 'released', 'flushed', 'notice'] as AdmitReason[]).map((r) => [r, admission(r)]));
  assert.deepEqual(table, {
    enqueued: { dueNow: false, overLimit: false, arrival: true },
    scanned: { dueNow: false, overLimit: false, arrival: false },
    released: { dueNow: true, overLimit: false, arrival: false },
    flushed: { dueNow: true, overLimit: true, arrival: false },
    notice: { dueNow: false, overLimit: false, arrival: true },
  });
});

test('released and flushed messages are due now; scanned ones keep their next attempt; only new ones count as arrivals', () => {
  const { intake, arrivals } = makeIntake(10);
  const later = new Date(NOW + HOUR);
  assert.equal(intake.admit('/q/a', envelope('SCANNED1', { attempts: 1, nextAttempt: later }), 10, 'scanned'), true);
  assert.equal(intake.admit('/q/b', envelope('RELEASED1', { attempts: 1, nextAttempt: later }), 10, 'released'), true);
  assert.equal(intake.admit('/q/c', envelope('FLUSHED1', { attempts: 1, nextAttempt: later }), 10, 'flushed'), true);
  assert.equal(intake.admit('/q/d', envelope('ENQUEUED1'), 10, 'enqueued'), true);
  intake.promoteDue(NOW);
  assert.deepEqual(intake.take('tcp_local', 10).map((m) => m.id).sort(), ['ENQUEUED1', 'FLUSHED1', 'RELEASED1']);
  assert.equal(intake.nextDueMs(), later.getTime(), 'the scanned one waits for its next attempt');
  assert.deepEqual(arrivals, ['ENQUEUED1']);
  assert.equal(intake.admit('/q/d', envelope('ENQUEUED1'), 10, 'notice'), false, 'an id already indexed is not added twice');
  assert.deepEqual(arrivals, ['ENQUEUED1', 'ENQUEUED1'], 'a notice counts as new mail even when refused');
});

test('a full index refuses a scanned message but takes a flushed one; new mail makes room by sending deferred mail back to disk', () => {
  const { intake } = makeIntake(1);
  assert.equal(intake.admit('/q/a', envelope('DEFERRED1', { attempts: 2, nextAttempt: new Date(NOW + HOUR) }), undefined, 'scanned'), true);
  assert.equal(intake.admit('/q/b', envelope('SCANNED2', { attempts: 1, nextAttempt: new Date(NOW + HOUR) }), undefined, 'scanned'), false);
  assert.equal(intake.overflowed, true);
  assert.equal(intake.admit('/q/c', envelope('NEWMAIL1'), undefined, 'enqueued'), true, 'new mail is not kept out');
  assert.equal(intake.has('DEFERRED1'), false, 'the furthest-due deferred message went back to disk');
  assert.equal(intake.admit('/q/d', envelope('FLUSHED2', { attempts: 1 }), undefined, 'flushed'), true, 'over the limit');
  assert.equal(intake.size, 2);
});

test('the envelope read at admission serves the first attempt; a file gone by then is forgotten', async () => {
  const { intake, inst, rooms } = makeIntake(10);
  const store = queueStoreFor(instancePaths(inst.root), null);
  try {
    const [ref] = await store.enqueue([envelope('X')], Buffer.from('Subject: x\r\n\r\nbody\r\n'));
    assert.equal(await intake.admitFile(ref!.path, 'enqueued'), true);
    assert.equal(intake.stats().filesRead, 1);
    intake.promoteDue(NOW);
    const [taken] = intake.take('tcp_local', 1);
    assert.equal((await intake.envelopeForAttempt(taken!))?.envelope.id, ref!.id);
    assert.equal(intake.stats().filesRead, 1, 'not read a second time');

    intake.retryAt(ref!.id, NOW);
    intake.promoteDue(NOW);
    const [again] = intake.take('tcp_local', 1);
    store.retire(ref!.path);
    assert.equal(await intake.envelopeForAttempt(again!), null);
    assert.equal(intake.has(ref!.id), false, 'forgotten');
    assert.ok(rooms() > 0, 'the scans are told that room was made');
  } finally {
    await store.close();
  }
});

test('an enqueued notice with the envelope admits the message without reading its file; a plain ref is read; a told file gone is not admitted', async () => {
  const { intake, inst, arrivals } = makeIntake(10);
  const store = queueStoreFor(instancePaths(inst.root), null);
  try {
    const committed = await store.enqueue([envelope('TOLD'), envelope('PLAIN'), envelope('GONE')], Buffer.from('Subject: x\r\n\r\nbody\r\n'));
    // As the notice travels: JSON, checked by the job controller's parser.
    const req = parseJobControllerRequest(JSON.parse(JSON.stringify({ op: 'enqueued', refs: committed })));
    assert.equal(req.op, 'enqueued');
    const [told, plain, gone] = req.op === 'enqueued' ? req.refs : [];
    store.retire(gone!.path);
    assert.equal(await intake.admitEnqueued([told!, { id: plain!.id, channel: plain!.channel, path: plain!.path }, gone!]), 2);
    assert.equal(intake.stats().filesRead, 1, 'only the plain ref was read');
    assert.deepEqual(arrivals.sort(), [told!.id, plain!.id].sort());
    // The first attempt gets what the file holds, as a read would have given it.
    intake.promoteDue(NOW);
    const first = intake.take('tcp_local', 10).find((m) => m.id === told!.id)!;
    const given = await intake.envelopeForAttempt(first);
    assert.equal(intake.stats().filesRead, 1, 'the attempt read nothing');
    assert.deepEqual({ envelope: given?.envelope, size: given?.size }, await store.readQueued(told!.path));
  } finally {
    await store.close();
  }
});
