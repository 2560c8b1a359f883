// A server process's decisions about accepting and reporting (process-reports.ts), as tables.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mayAccept, reportUrgency } from '../../src/smtp-server/process-reports.js';
import type { ProcessLimits } from '../../src/dispatcher/protocol.js';

const shared: ProcessLimits = { source: 'shared', minConns: 2, maxConns: 4, maxLifeConns: 10, perIpAllowance: 5, mayGrow: true };
const handoff: ProcessLimits = { ...shared, source: 'handoff' };

test('shared accept: below MAX_CONNS and MAX_LIFE_CONNS, and not leaving', () => {
  assert.equal(mayAccept({ open: 3, served: 9 }, shared, false), true);
  assert.equal(mayAccept({ open: 4, served: 9 }, shared, false), false, 'MAX_CONNS');
  assert.equal(mayAccept({ open: 0, served: 10 }, shared, false), false, 'MAX_LIFE_CONNS');
  assert.equal(mayAccept({ open: 0, served: 1000 }, { ...shared, maxLifeConns: 0 }, false), true, 'MAX_LIFE_CONNS 0: never');
  assert.equal(mayAccept({ open: 0, served: 0 }, shared, true), false, 'retiring or stopping');
});

test('reports: hand-off reports a closed session at once; shared accept at MIN_CONNS and when accepting changes', () => {
  assert.equal(reportUrgency(handoff, 'closed', 2, 1, false), 'now');
  assert.equal(reportUrgency(handoff, 'opened', 1, 2, false), 'soon');
  assert.equal(reportUrgency(shared, 'opened', 1, 2, false), 'now', 'reached MIN_CONNS: the spawn rule');
  assert.equal(reportUrgency(shared, 'opened', 2, 3, false), 'soon');
  assert.equal(reportUrgency(shared, 'opened', 0, 1, false), 'soon');
  assert.equal(reportUrgency(shared, 'closed', 2, 1, false), 'soon');
  assert.equal(reportUrgency(shared, 'opened', 3, 4, true), 'now', 'stopped accepting');
  assert.equal(reportUrgency(shared, 'closed', 4, 3, true), 'now', 'accepting again');
  // At MAX_PROCS no process can be started: MIN_CONNS is not worth a message per session.
  const full = { ...shared, mayGrow: false };
  assert.equal(reportUrgency(full, 'opened', 1, 2, false), 'soon');
  assert.equal(reportUrgency(full, 'opened', 3, 4, true), 'now', 'stopped accepting, still');
});
