// etc/job_controller.cnf: pools, the default pool, [CHANNEL=…] sections with wildcards,
// SYNCH_TIME forms — and the exact file:line and severity of every problem.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join, relative } from 'node:path';
import { parseJobControllerCnf, channelJobSection, JOB_CONTROLLER_DEFAULTS } from '../../src/config/job-controller-cnf.js';
import type { Diagnostic } from '../../src/config/types.js';
import { makeInstance, type TestInstance } from '../helpers/instance.js';

const instances: TestInstance[] = [];
after(() => {
  for (const inst of instances) inst.remove();
});

function parse(text: string, extra: Record<string, string> = {}) {
  const inst = makeInstance({ files: { 'etc/job_controller.cnf': text, ...extra } });
  instances.push(inst);
  const diagnostics: Diagnostic[] = [];
  const config = parseJobControllerCnf(join(inst.root, 'etc/job_controller.cnf'), diagnostics);
  const where = diagnostics.map((d) => `${relative(inst.root, d.file)}:${d.line}: ${d.severity}`);
  return { config, diagnostics, where };
}

const lines = (...l: string[]) => `${l.join('\n')}\n`;

test('pools in file order, the first being the default; JOB_LIMIT written globally is every pool\'s default', () => {
  const { config, diagnostics } = parse(
    lines('! pools', 'JOB_LIMIT=6', 'MAX_MESSAGES=5000', '[POOL=DEFAULT]', '[POOL=LOCAL_POOL]', 'JOB_LIMIT=2', '[pool=smtp_pool]', 'job_limit=16%10'),
  );
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(config.pools, [
    { name: 'DEFAULT', jobLimit: 6 },
    { name: 'LOCAL_POOL', jobLimit: 2 },
    { name: 'smtp_pool', jobLimit: 16 },
  ]);
  assert.equal(config.maxMessages, 5000);
});

test('a file without pools gets one pool DEFAULT; absent options take their defaults', () => {
  const { config, diagnostics } = parse(lines('! nothing but a comment'));
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(config, {
    maxMessages: JOB_CONTROLLER_DEFAULTS.MAX_MESSAGES,
    synchTimeSec: 4 * 3600,
    rebuildParallelChannel: 12,
    pools: [{ name: 'DEFAULT', jobLimit: 10 }],
    channels: [],
    maxLifeAgeSec: 3600,
    maxLifeConns: 10000,
    periodicIntervalSec: 1800,
  });
});

test('PERIODIC_INTERVAL takes the forms of SYNCH_TIME; a bad one names its key and line', () => {
  assert.equal(parse(lines('PERIODIC_INTERVAL=PT15M')).config.periodicIntervalSec, 900);
  assert.equal(parse(lines('PERIODIC_INTERVAL=01:00')).config.periodicIntervalSec, 3600);
  const bad = parse(lines('! first', 'PERIODIC_INTERVAL=often'));
  assert.equal(bad.diagnostics.length, 1);
  assert.equal(bad.diagnostics[0]!.line, 2);
  assert.match(bad.diagnostics[0]!.message, /^PERIODIC_INTERVAL must be seconds, HH:MM or an ISO 8601 duration/);
});

test('[CHANNEL=…] sections: exact names, trailing-* prefixes, global defaults for the life limits and MASTER_COMMAND', () => {
  const { config, diagnostics } = parse(
    lines(
      'MAX_LIFE_AGE=1800',
      'MAX_LIFE_CONNS=50',
      'MASTER_COMMAND=builtin',
      '[CHANNEL=tcp_*]',
      'MAX_LIFE_AGE=600',
      '[CHANNEL=TCP_LOCAL]',
      'MAX_LIFE_ASKWORK=7',
      'MASTER_COMMAND=special',
      '[CHANNEL=tcp_loc*]',
      '[CHANNEL=*]',
      'MAX_LIFE_CONNS=3',
    ),
  );
  assert.deepEqual(diagnostics, []);
  assert.deepEqual([config.maxLifeAgeSec, config.maxLifeConns], [1800, 50]);
  assert.deepEqual(config.channels, [
    { pattern: 'tcp_', wildcard: true, masterCommand: 'builtin', maxLifeAgeSec: 600, maxLifeConns: null },
    { pattern: 'tcp_local', wildcard: false, masterCommand: 'special', maxLifeAgeSec: null, maxLifeConns: 7 },
    { pattern: 'tcp_loc', wildcard: true, masterCommand: 'builtin', maxLifeAgeSec: null, maxLifeConns: null },
    { pattern: '', wildcard: true, masterCommand: 'builtin', maxLifeAgeSec: null, maxLifeConns: 3 },
  ]);
});

test('channelJobSection: an exact name wins over any prefix, else the longest prefix; case-insensitive', () => {
  const { config } = parse(lines('[CHANNEL=tcp_*]', '[CHANNEL=tcp_local]', '[CHANNEL=tcp_loc*]', '[CHANNEL=tcp_l*]', '[CHANNEL=l]'));
  const pick = (name: string) => {
    const s = channelJobSection(config, name);
    return s && `${s.pattern}${s.wildcard ? '*' : ''}`;
  };
  assert.equal(pick('tcp_local'), 'tcp_local');
  assert.equal(pick('TCP_Local'), 'tcp_local');
  assert.equal(pick('tcp_localx'), 'tcp_loc*');
  assert.equal(pick('tcp_lmtp'), 'tcp_l*');
  assert.equal(pick('tcp_intranet'), 'tcp_*');
  assert.equal(pick('l'), 'l');
  assert.equal(pick('local'), null); // "l" is an exact name, not a prefix
  assert.equal(pick('bitbucket'), null);
});

test('SYNCH_TIME: seconds, HH:MM or an ISO 8601 duration (quoted too); anything else is an error', () => {
  const value = (v: string) => parse(lines(`SYNCH_TIME=${v}`));
  assert.equal(value('7200').config.synchTimeSec, 7200);
  assert.equal(value('02:30').config.synchTimeSec, 9000);
  assert.equal(value('0:45').config.synchTimeSec, 2700);
  assert.equal(value('PT4H').config.synchTimeSec, 14400);
  assert.equal(value('pt90m').config.synchTimeSec, 5400);
  assert.equal(value('"PT30M"').config.synchTimeSec, 1800);
  for (const bad of ['2 hours', '00:00', '1:75', '0', 'P', '-5']) {
    const r = value(bad);
    assert.deepEqual(r.where, ['etc/job_controller.cnf:1: error'], bad);
    assert.match(r.diagnostics[0]!.message, /SYNCH_TIME must be seconds, HH:MM or an ISO 8601 duration/);
    assert.equal(r.config.synchTimeSec, 14400, bad);
  }
});

test('problems: duplicate pools and channels, bad wildcards, out-of-range numbers are errors; unknown options and PERIODIC_JOB are warnings', () => {
  const { config, diagnostics, where } = parse(
    lines(
      'REBUILD_PARALLEL_CHANNEL=101', // 1
      'FROBNICATE=1', // 2
      'TCP_PORT=27442', // 3 (accepted, no effect)
      '[POOL=A]', // 4
      'JOB_LIMIT=0', // 5
      'MAX_LIFE_AGE=5', // 6: a channel option in a pool
      '[POOL=a]', // 7
      '[CHANNEL=tcp*x]', // 8
      '[CHANNEL=l]', // 9
      '[CHANNEL=L]', // 10
      '[PERIODIC_JOB=cleanup]', // 11
      '[CHANNEL=tcp_*]', // 12
      'MAX_LIFE_AGE=0', // 13
      'JOB_LIMIT=4', // 14: a pool option in a channel
      '[QUEUE=old]', // 15
    ),
  );
  assert.deepEqual(where, [
    'etc/job_controller.cnf:15: error',
    'etc/job_controller.cnf:2: warning',
    'etc/job_controller.cnf:1: error',
    'etc/job_controller.cnf:6: warning',
    'etc/job_controller.cnf:5: error',
    'etc/job_controller.cnf:7: error',
    'etc/job_controller.cnf:8: error',
    'etc/job_controller.cnf:10: error',
    'etc/job_controller.cnf:11: warning',
    'etc/job_controller.cnf:14: warning',
    'etc/job_controller.cnf:13: error',
  ]);
  const messages = diagnostics.map((d) => d.message);
  assert.match(messages[0]!, /unknown section type QUEUE/);
  assert.match(messages[1]!, /unknown option FROBNICATE in job_controller\.cnf globals/);
  assert.match(messages[2]!, /REBUILD_PARALLEL_CHANNEL must be an integer from 1 to 100, found "101"/);
  assert.match(messages[3]!, /unknown option MAX_LIFE_AGE in \[POOL=A\]/);
  assert.match(messages[4]!, /JOB_LIMIT must be an integer from 1 to 10000, found "0"/);
  assert.match(messages[5]!, /\[POOL=a\] appears twice/);
  assert.match(messages[6]!, /\[CHANNEL=tcp\*x\]: only a trailing \* is allowed/);
  assert.match(messages[7]!, /\[CHANNEL=L\] appears twice/);
  assert.match(messages[8]!, /\[PERIODIC_JOB=…\] sections are deprecated and ignored/);
  assert.match(messages[9]!, /unknown option JOB_LIMIT in \[CHANNEL=tcp_\*\]/);
  assert.match(messages[10]!, /MAX_LIFE_AGE must be an integer ≥ 1, found "0"/);
  assert.deepEqual(config.pools, [{ name: 'A', jobLimit: 10 }]);
  assert.equal(config.rebuildParallelChannel, 12);
});

test('includes in job_controller.cnf: nested three deep is fine, four deep is an error at the fourth include line', () => {
  const { config, where, diagnostics } = parse(lines('<a.cnf', '[POOL=MAIN]'), {
    'etc/a.cnf': lines('MAX_MESSAGES=10', '<b.cnf'),
    'etc/b.cnf': lines('<c.cnf'),
    'etc/c.cnf': lines('SYNCH_TIME=60', '!', '<d.cnf'),
    'etc/d.cnf': lines('MAX_MESSAGES=20'),
  });
  assert.deepEqual([config.maxMessages, config.synchTimeSec, config.pools.map((p) => p.name)], [10, 60, ['MAIN']]);
  assert.deepEqual(where, ['etc/c.cnf:3: error']);
  assert.match(diagnostics[0]!.message, /includes nest deeper than 3 levels/);
});
