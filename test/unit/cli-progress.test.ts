// Progress for long operator commands (src/cli/progress.ts): the line's text, drawn on the first
// update then at most every 200 ms, erased at the end, nothing at all when not wanted (stderr not
// a terminal, or stdout a pipe); and the job controller's scan progress (scan-progress.ts): when
// a log line is due, how `imsimta process` and the status page say it, read back from JSON.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatProgress, progressWanted, terminalProgress } from '../../src/cli/progress.js';
import { ScanProgress, describeScan, readScanView } from '../../src/job-controller/scan-progress.js';
import { scanLines } from '../../src/cli/commands/process.js';

test('the progress line: percent of a known total, a count otherwise', () => {
  assert.equal(formatProgress('imsimta report: reading mail.log', 71_300_000, 170_000_000, 'bytes'), 'imsimta report: reading mail.log: 41% (71.3 of 170 MB)');
  assert.equal(formatProgress('imsimta qm: reading the queue', 12_345, undefined, 'messages'), 'imsimta qm: reading the queue: 12,345 messages');
  assert.equal(formatProgress('x', 5, 5, 'files'), 'x: 100% (5 of 5 files)');
});

test('drawn at once, then at most every 200 ms (the clock looked at every 64 calls), erased at the end; nothing when not wanted', () => {
  let t = 0;
  const out: string[] = [];
  const p = terminalProgress('scan', 'files', { wanted: true, now: () => t, write: (s) => out.push(s) });
  p.update(1);
  assert.deepEqual(out, ['\rscan: 1 files\x1b[K']);
  for (let i = 2; i <= 200; i++) p.update(i); // within the same instant: nothing more
  assert.equal(out.length, 1);
  t = 250;
  for (let i = 201; i <= 264; i++) p.update(i);
  assert.equal(out.length, 2);
  assert.equal(out[1], '\rscan: 257 files\x1b[K', 'the 64th call after the 200 ms');
  p.end();
  assert.equal(out[2], '\r\x1b[K');
  p.end();
  assert.equal(out.length, 3, 'erased once');

  const quiet: string[] = [];
  const q = terminalProgress('scan', 'files', { wanted: false, write: (s) => quiet.push(s) });
  q.update(1);
  q.end();
  assert.deepEqual(quiet, []);
  assert.equal(progressWanted({ isTTY: false }), false, 'stderr not a terminal');
  assert.equal(progressWanted({ isTTY: true }, 987_654), false, 'no such stdout');
});

test('scan progress: a log line due every 5 s; the phases as imsimta process and the status page say them', () => {
  const start = Date.UTC(2026, 11, 7, 12, 0, 0);
  const s = new ScanProgress('start', start);
  assert.equal(s.logDue(start + 4000), false);
  assert.equal(s.logDue(start + 5000), true);
  assert.equal(s.logDue(start + 6000), false, 'the next one 5 s later');
  for (let i = 0; i < 45_000; i++) s.listedOne();
  assert.equal(describeScan(s.view(), start + 12_000), 'scanning the queue (start, 12 s): 45,000 files listed');
  s.reading(20_000);
  for (let i = 0; i < 5000; i++) s.readOne();
  assert.equal(describeScan(s.view(), start + 20_000), 'scanning the queue (start, 20 s): 45,000 files listed, 5,000 of 20,000 read');
  const back = readScanView(JSON.parse(JSON.stringify(s.view())));
  assert.deepEqual(back, s.view());
  assert.equal(readScanView(null), null);
  assert.equal(readScanView({ phase: 'reading' }), null);
  assert.equal(
    scanLines([{ role: 'watcher', pid: 1 }, { role: 'job_controller', pid: 2, scan: s.view() }], start + 20_000),
    'job controller: scanning the queue (start, 20 s): 45,000 files listed, 5,000 of 20,000 read\n',
  );
  assert.equal(scanLines([{ role: 'job_controller', pid: 2 }], start), '');
});
