// The milter options of option.dat (SPAMFILTERn_MILTER slots, MILTER_DEFAULT_ACTION, the
// MILTER_*_TIMEOUTs) and the sourcespamfilterN channel keyword: defaults, values, and every
// error with its file:line, through the loader as cnbuild reads them.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { relative } from 'node:path';
import { loadInstanceConfig } from '../../src/config/load.js';
import { channelMilterSlots } from '../../src/config/milter-options.js';
import { makeInstance, type TestInstance } from '../helpers/instance.js';

const instances: TestInstance[] = [];
after(() => {
  for (const inst of instances) inst.remove();
});

const IMTA = (keywords: string) => `.  $U%$H@tcp-daemon

l
localhost

tcp_local smtp ${keywords}
tcp-daemon
`;

function load(optionDat: string, keywords = '') {
  const inst = makeInstance({ files: { 'etc/imta.cnf': IMTA(keywords), 'etc/option.dat': optionDat } });
  instances.push(inst);
  const r = loadInstanceConfig(inst.root);
  return { ...r, where: r.diagnostics.map((d) => `${relative(inst.root, d.file)}:${d.line}: ${d.severity}: ${d.message}`) };
}

test('defaults: no slot, tempfail, Postfix’s 30 s / 30 s / 300 s', () => {
  const { config, where } = load('');
  assert.deepEqual(where, []);
  const m = config!.options.milter!;
  assert.equal(m.slots.size, 0);
  assert.equal(m.defaultAction, 'tempfail');
  assert.deepEqual(m.timeouts, { connectMs: 30_000, commandMs: 30_000, contentMs: 300_000 });
});

test('slots, the default action and the timeouts as written; the channel names its slots in order', () => {
  const { config, where } = load(
    ['SPAMFILTER2_MILTER={ inet:127.0.0.1:11332, name = rspamd }', 'SPAMFILTER1_MILTER=unix:/run/opendkim.sock', 'MILTER_DEFAULT_ACTION=Accept', 'MILTER_CONNECT_TIMEOUT=2.5', 'MILTER_COMMAND_TIMEOUT=10', 'MILTER_CONTENT_TIMEOUT=60', ''].join('\n'),
    'sourcespamfilter2 sourcespamfilter1',
  );
  assert.deepEqual(where, []);
  const m = config!.options.milter!;
  assert.deepEqual(m.slots.get(2)!.filters, [{ name: 'rspamd', address: { kind: 'inet', host: '127.0.0.1', port: 11332 } }]);
  assert.deepEqual(m.slots.get(1)!.filters, [{ name: 'unix:/run/opendkim.sock', address: { kind: 'unix', path: '/run/opendkim.sock' } }]);
  assert.equal(m.defaultAction, 'accept');
  assert.deepEqual(m.timeouts, { connectMs: 2500, commandMs: 10_000, contentMs: 60_000 });
  assert.deepEqual(channelMilterSlots(config!.imta.channelByName.get('tcp_local')!), [1, 2]);
});

test('errors with file:line: a bad filter, an empty slot, a bad action or timeout; a channel naming an unset slot', () => {
  const { config, where } = load(
    ['SPAMFILTER1_MILTER=tcp:127.0.0.1:1', 'SPAMFILTER2_MILTER=', 'MILTER_DEFAULT_ACTION=bounce', 'MILTER_CONTENT_TIMEOUT=0', 'SPAMFILTER9_MILTER=inet:127.0.0.1:1', ''].join('\n'),
    'sourcespamfilter3',
  );
  assert.equal(config, null);
  assert.deepEqual(where, [
    'etc/option.dat:5: warning: unknown option SPAMFILTER9_MILTER (ignored)',
    'etc/option.dat:1: error: SPAMFILTER1_MILTER: milter "tcp:127.0.0.1:1": unknown transport "tcp" (unix or inet)',
    'etc/option.dat:2: error: SPAMFILTER2_MILTER names no filter (write inet:host:port or unix:/path)',
    'etc/option.dat:3: error: MILTER_DEFAULT_ACTION must be one of tempfail, accept, reject, quarantine, shutdown, found "bounce"',
    'etc/option.dat:4: error: MILTER_CONTENT_TIMEOUT must be a number of seconds above 0 and at most 3600, found "0"',
    'etc/imta.cnf:6: error: channel tcp_local has sourcespamfilter3, but option.dat sets no SPAMFILTER3_MILTER',
  ]);
});

test('a slot no channel uses is a warning at its line', () => {
  const { config, where } = load('SPAMFILTER4_MILTER=inet:127.0.0.1:11332\n');
  assert.ok(config);
  assert.deepEqual(where, ['etc/option.dat:1: warning: SPAMFILTER4_MILTER is set but no channel has sourcespamfilter4: no mail goes through it']);
});
