// The summaries a reload prints (src/watcher/reload.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reloadFailures, reloadSummary, withEarlierChanges } from '../../src/watcher/reload.js';
import type { InstanceConfig } from '../../src/config/types.js';

test('the reload summary is one line naming rules, channels, ports and the parts', () => {
  const config = { imta: { rules: [1, 2, 3], channels: [1, 2] } } as unknown as InstanceConfig;
  const dispatcher = {
    ok: true,
    listeners: [
      { service: 'SMTP', address: '127.0.11.1', port: 2525 },
      { service: 'SMTP', address: '127.0.11.1', port: 2526 },
    ],
    added: [{ service: 'SMTP', address: '127.0.11.1', port: 2526 }],
    removed: [{ service: 'SUBMIT', address: '127.0.11.1', port: 587 }],
    reloadedProcesses: 2,
    failedProcesses: [],
  };
  const line = reloadSummary({ config, dispatcher, jobController: { state: 'reloaded' } });
  assert.equal(
    line,
    'configuration reloaded: 3 rewrite rules, 2 channels; SMTP on 127.0.11.1:2525 and 127.0.11.1:2526 (new: SMTP 127.0.11.1:2526; closed: SUBMIT 127.0.11.1:587); 2 SMTP server processes switched; job controller reloaded',
  );
  assert.doesNotMatch(line, /\n/);
  assert.deepEqual(reloadFailures({ dispatcher, jobController: { state: 'reloaded' } }), []);
  assert.deepEqual(reloadFailures({ dispatcher: { ...dispatcher, failedProcesses: ['SMTP server process 7: bad'] }, jobController: { state: 'failed', error: 'x' } }), [
    'SMTP server process 7: bad (it keeps its configuration)',
    'job controller kept its configuration: x',
  ]);
  assert.match(reloadSummary({ config, dispatcher: null, jobController: { state: 'not running' } }), /dispatcher not running; job controller not running$/);
});

test('a command after the watcher applied the same edit reports the port changes of that edit', () => {
  const submit = { service: 'SUBMIT', address: '127.0.11.1', port: 587 };
  const extra = { service: 'SMTP', address: '127.0.11.1', port: 2526 };
  const now = { ok: true, listeners: [], added: [], removed: [], reloadedProcesses: 0, failedProcesses: [] };
  assert.deepEqual(withEarlierChanges(now, { added: [extra], removed: [submit] }), { ...now, added: [extra], removed: [submit] });
  // Added by the edit, removed again by the command's own reload: no change to report.
  assert.deepEqual(withEarlierChanges({ ...now, removed: [{ ...extra }] }, { added: [extra], removed: [] }), now);
  assert.deepEqual(withEarlierChanges({ ...now, added: [{ ...submit }] }, { added: [], removed: [submit] }), now);
});
