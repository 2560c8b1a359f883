// The job controller class in this process, with a scripted job runner: mail.log D and R records
// are written before the queue file is removed or rewritten (a kill in between cannot lose them),
// Q records after the rewrite; stale temporary files in queue/.tmp are swept at every SYNCH_TIME
// rescan, not only at start-up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs, { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync, type PathLike } from 'node:fs';
import fsPromises from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { basename, join } from 'node:path';
import { waitFor, type TestInstance } from '../helpers/instance.js';
import { jcInstance, startController } from '../helpers/in-process-job-controller.js';
import { instancePaths } from '../../src/common/instance.js';
import { QueueStore, queueStoreFor, type EnvelopeDraft, type QueueRef, type QueuedRecipient } from '../../src/queue/index.js';
import type { JobRunner } from '../../src/job-controller/runner.js';
import type { JobTask, JobTaskResult } from '../../src/job-controller/job-host.js';
import type { RecipientResult } from '../../src/channels/types.js';

const instance = jcInstance;

/** Answers each recipient by the result its local part names (`delivered…`, `failed…`, `deferred…`). */
class ByAddressRunner implements JobRunner {
  configure(): void {}
  threads() {
    return [];
  }
  async close() {}
  async run(_pool: string, task: JobTask): Promise<JobTaskResult> {
    const statusOf: Record<RecipientResult, string> = { delivered: '250 2.0.0 ok', failed: '550 5.1.1 no such user', deferred: '451 4.3.0 try later' };
    return {
      threadId: 1,
      outcomes: task.items.map((i) => ({
        ref: i.ref,
        recipients: i.envelope.recipients
          .filter((r) => r.state === 'pending')
          .map((r) => {
            const result = (['delivered', 'failed', 'deferred'] as const).find((x) => r.address.startsWith(x)) ?? 'delivered';
            return { address: r.address, result, status: statusOf[result], remoteHost: 'peer.test' };
          }),
      })),
    };
  }
}

const rcpt = (address: string): QueuedRecipient => ({ address, original: address, orcpt: null, notify: ['NEVER'], state: 'pending', status: null });

async function enqueue(inst: TestInstance, recipients: string[][]): Promise<QueueRef[]> {
  const store = queueStoreFor(instancePaths(inst.root), null);
  const refs: QueueRef[] = [];
  try {
    for (const list of recipients) {
      const draft: EnvelopeDraft = { channel: 'tcp_local', from: 'a@example.org', mailParams: {}, sourceChannel: 'l', clientAddress: null, clientHelo: null, arrival: new Date(), recipients: list.map(rcpt) };
      refs.push(...(await store.enqueue([draft], Buffer.from('Subject: x\r\n\r\nbody\r\n'))));
    }
  } finally {
    await store.close();
  }
  return refs;
}

const controller = startController;

const mailLogText = (inst: TestInstance) => {
  const path = instancePaths(inst.root).mailLog;
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
};
const hasRecord = (text: string, event: string, id: string, recipient: string) => text.split('\n').some((l) => l.split(' ')[1] === event && l.split(' ')[2] === id && l.split(' ')[7] === recipient);

test('D and R records are in mail.log before the queue file is removed or rewritten; Q after the rewrite', async () => {
  const inst = instance();
  const [done, mixed, deferred] = await enqueue(inst, [['delivered1@remote.test'], ['failed1@remote.test', 'deferred1@remote.test', 'delivered2@remote.test'], ['deferred2@remote.test']]);
  // What mail.log holds at the moment each queue file is removed (however the controller unlinks it) or rewritten.
  const seen: Array<{ op: 'remove' | 'update'; id: string; log: string }> = [];
  const idOf = (path: unknown) => (typeof path === 'string' && path.startsWith(join(inst.root, 'queue', 'tcp_local')) ? /^..([0-9A-Z]+)\./.exec(basename(path))?.[1] : undefined);
  const original = { update: QueueStore.prototype.update, unlinkSync: fs.unlinkSync, unlink: fsPromises.unlink, renameSync: fs.renameSync };
  fs.unlinkSync = (path: PathLike) => {
    const id = idOf(path);
    if (id) seen.push({ op: 'remove', id, log: mailLogText(inst) });
    return original.unlinkSync(path);
  };
  // A small delivered file is moved to queue/.spare for reuse instead of unlinked.
  fs.renameSync = (from: PathLike, to: PathLike) => {
    const id = idOf(from);
    if (id && String(to).includes(`${join('queue', '.spare')}/`)) seen.push({ op: 'remove', id, log: mailLogText(inst) });
    return original.renameSync(from, to);
  };
  fsPromises.unlink = (path: PathLike) => {
    const id = idOf(path);
    if (id) seen.push({ op: 'remove', id, log: mailLogText(inst) });
    return original.unlink(path);
  };
  syncBuiltinESMExports(); // the named imports of node:fs and node:fs/promises see the wrappers
  QueueStore.prototype.update = function (this: QueueStore, ref, envelope) {
    seen.push({ op: 'update', id: ref.id, log: mailLogText(inst) });
    return original.update.call(this, ref, envelope);
  };
  const doneInode = statSync(done!.path).ino;
  try {
    const c = await controller(inst, new ByAddressRunner());
    await waitFor(() => hasRecord(mailLogText(inst), 'Q', deferred!.id, 'deferred2@remote.test') && hasRecord(mailLogText(inst), 'Q', mixed!.id, 'deferred1@remote.test'), { what: 'the Q records' });
    await waitFor(() => !existsSync(done!.path), { what: 'the delivered message to go' });
    // Its file is kept in this boot's spare pool for the next enqueue.
    const pool = join(inst.root, 'queue', '.spare');
    const spares = readdirSync(pool).flatMap((boot) => readdirSync(join(pool, boot)).map((n) => statSync(join(pool, boot, n)).ino));
    assert.ok(spares.includes(doneInode), 'the delivered file is a spare');
    await c.stop();
  } finally {
    fs.unlinkSync = original.unlinkSync;
    fs.renameSync = original.renameSync;
    fsPromises.unlink = original.unlink;
    syncBuiltinESMExports();
    QueueStore.prototype.update = original.update;
  }

  const removal = seen.find((s) => s.op === 'remove' && s.id === done!.id);
  assert.ok(removal, 'the delivered message was removed');
  assert.ok(hasRecord(removal.log, 'D', done!.id, 'delivered1@remote.test'), 'its D record was written before the removal');

  const rewrite = seen.find((s) => s.op === 'update' && s.id === mixed!.id);
  assert.ok(rewrite, 'the message with a recipient left was rewritten');
  assert.ok(hasRecord(rewrite.log, 'R', mixed!.id, 'failed1@remote.test'), 'R before the rewrite');
  assert.ok(hasRecord(rewrite.log, 'D', mixed!.id, 'delivered2@remote.test'), 'D before the rewrite');
  assert.ok(!hasRecord(rewrite.log, 'Q', mixed!.id, 'deferred1@remote.test'), 'Q only once the file says so');

  const onlyDeferred = seen.find((s) => s.op === 'update' && s.id === deferred!.id);
  assert.ok(onlyDeferred && !hasRecord(onlyDeferred.log, 'Q', deferred!.id, 'deferred2@remote.test'), 'Q after the rewrite');

  // Each outcome is recorded once.
  const lines = mailLogText(inst).split('\n').filter(Boolean);
  assert.equal(lines.filter((l) => / [DRQ] /.test(l)).length, 5, lines.join('\n'));
});

test('stale temporary files are swept at every SYNCH_TIME rescan: dead writers and untouched files nobody holds open', { timeout: 30_000 }, async () => {
  const inst = instance('SYNCH_TIME=1\n[POOL=DEFAULT]\nJOB_LIMIT=2\n');
  const tmpDir = join(inst.root, 'queue', '.tmp');
  mkdirSync(tmpDir, { recursive: true });
  const c = await controller(inst, new ByAddressRunner());

  // An SMTP server process killed in the middle of writing a message: its pid is in the name.
  const child = spawn(process.execPath, ['-e', `const fs = require('fs'); fs.writeFileSync(${JSON.stringify(tmpDir)} + '/KILLEDWRITER1.' + process.pid + '.1', 'half a message'); setInterval(() => {}, 1000);`], { stdio: 'ignore' });
  const killedName = `KILLEDWRITER1.${child.pid}.1`;
  await waitFor(() => existsSync(join(tmpDir, killedName)), { what: 'the writer to start its file' });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;

  // This process is a live writer: an old file it forgot, an old file it still holds open, a new one.
  const oldTime = new Date(Date.now() - 20 * 60_000);
  const forgotten = join(tmpDir, `FORGOTTEN0001.${process.pid}.1`);
  const held = join(tmpDir, `STILLOPEN0001.${process.pid}.2`);
  const fresh = join(tmpDir, `INPROGRESS001.${process.pid}.3`);
  for (const p of [forgotten, held, fresh]) writeFileSync(p, 'part');
  utimesSync(forgotten, oldTime, oldTime);
  utimesSync(held, oldTime, oldTime);
  const fd = openSync(held, 'r');
  try {
    const scansBefore = (c.status() as { index: { scans: number } }).index.scans;
    await waitFor(() => !existsSync(join(tmpDir, killedName)) && !existsSync(forgotten), { timeoutMs: 10_000, what: 'the sweep at the SYNCH_TIME rescan' });
    // Another tick: what is in use stays.
    await waitFor(() => (c.status() as { index: { scans: number } }).index.scans >= scansBefore + 3, { timeoutMs: 10_000, what: 'more SYNCH_TIME rescans' });
    assert.ok(existsSync(held), 'an old file its live writer holds open is kept');
    assert.ok(existsSync(fresh), 'a recent file of a live writer is kept');
  } finally {
    closeSync(fd);
  }
  await c.stop();
});
