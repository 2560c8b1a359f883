// etc/shaping.cnf: globals as defaults, [DESTINATION=…] sections matched by DOMAIN, MX_HOST and
// MX_SUFFIX, rates and durations in their written forms — and the exact file:line and severity
// of every problem, through cnbuild too.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join, relative } from 'node:path';
import { parseShapingCnf, parseRate, SHAPING_DEFAULTS, DEFAULT_THROTTLE_PATTERN } from '../../src/config/shaping-cnf.js';
import { loadInstanceConfig } from '../../src/config/load.js';
import type { Diagnostic } from '../../src/config/types.js';
import { makeInstance, repoRoot, runCli, type TestInstance } from '../helpers/instance.js';
import { IMTA_CNF } from '../helpers/running-instance.js';

const instances: TestInstance[] = [];
after(() => {
  for (const inst of instances) inst.remove();
});

function parse(text: string) {
  const inst = makeInstance({ files: { 'etc/shaping.cnf': text } });
  instances.push(inst);
  const diagnostics: Diagnostic[] = [];
  const config = parseShapingCnf(join(inst.root, 'etc/shaping.cnf'), diagnostics);
  const where = diagnostics.map((d) => `${relative(inst.root, d.file)}:${d.line}: ${d.severity}: ${d.message}`);
  return { config, diagnostics, where };
}

const lines = (...l: string[]) => `${l.join('\n')}\n`;

test('globals are the limits of unmatched hosts and the defaults of every section; sections keep their match lists', () => {
  const { config, where } = parse(
    lines(
      '! shaping',
      'MAX_CONNECTIONS=10',
      'INITIAL_CONNECTIONS=2',
      'MAX_MESSAGE_RATE=600/h',
      '[DESTINATION=gmail]',
      'MX_SUFFIX=*.google.com, .googlemail.com',
      'DOMAIN=gmail.com googlemail.com',
      'MAX_CONNECTIONS=4',
      'MAX_MESSAGES_PER_CONNECTION=50',
      'MAX_MESSAGE_RATE=100/min',
      'MESSAGE_RATE_BURST=5',
      'THROTTLE_PAUSE=PT2M',
      '[DESTINATION=outlook]',
      'MX_SUFFIX=*.mail.protection.outlook.com',
      'MX_HOST=MX1.Hotmail.COM.',
      'SCOPE=host',
      'MAX_CONNECTION_RATE=30/min',
      'RECOVERY_TIME=300',
      '[DESTINATION=subs]',
      'DOMAIN=*.example.org',
      'SCOPE=domain',
    ),
  );
  assert.deepEqual(where, []);
  assert.equal(config.defaults.maxConnections, 10);
  assert.equal(config.defaults.initialConnections, 2);
  assert.deepEqual(config.defaults.maxMessageRate, { count: 600, perMs: 3_600_000, text: '600/h' });
  assert.equal(config.defaults.throttlePattern, DEFAULT_THROTTLE_PATTERN);
  const [gmail, outlook, subs] = config.sections;
  assert.deepEqual(gmail!.mxSuffixes, ['google.com', 'googlemail.com']);
  assert.deepEqual(gmail!.domains, ['gmail.com', 'googlemail.com']);
  assert.equal(gmail!.scope, 'group');
  assert.equal(gmail!.line, 5);
  assert.equal(gmail!.limits.maxConnections, 4);
  assert.equal(gmail!.limits.initialConnections, 2, 'inherited from the globals');
  assert.equal(gmail!.limits.maxMessagesPerConnection, 50);
  assert.deepEqual(gmail!.limits.maxMessageRate, { count: 100, perMs: 60_000, text: '100/min' });
  assert.equal(gmail!.limits.messageRateBurst, 5);
  assert.equal(gmail!.limits.throttlePauseMs, 120_000);
  assert.equal(gmail!.limits.throttlePauseMaxMs, SHAPING_DEFAULTS.throttlePauseMaxMs);
  assert.deepEqual(outlook!.mxHosts, ['mx1.hotmail.com']);
  assert.equal(outlook!.scope, 'host');
  assert.deepEqual(outlook!.limits.maxConnectionRate, { count: 30, perMs: 60_000, text: '30/min' });
  assert.equal(outlook!.limits.recoveryMs, 300_000);
  assert.deepEqual(outlook!.limits.maxMessageRate?.text, '600/h', 'the global rate is the default');
  assert.deepEqual(subs!.domainSuffixes, ['example.org']);
  assert.equal(subs!.scope, 'domain');
});

test('INITIAL_CONNECTIONS inherited above a section\'s MAX_CONNECTIONS is lowered to it; written above it, an error', () => {
  const { config, where } = parse(lines('INITIAL_CONNECTIONS=8', '[DESTINATION=small]', 'DOMAIN=small.test', 'MAX_CONNECTIONS=2', '[DESTINATION=bad]', 'DOMAIN=bad.test', 'MAX_CONNECTIONS=3', 'INITIAL_CONNECTIONS=4'));
  assert.equal(config.sections[0]!.limits.initialConnections, 2);
  assert.deepEqual(where, ['etc/shaping.cnf:8: error: INITIAL_CONNECTIONS (4) is above MAX_CONNECTIONS (3)']);
});

test('rates: per second, minute, hour and day in their spellings; 0/none lift a global limit in a section', () => {
  assert.deepEqual(parseRate('10/s'), { count: 10, perMs: 1000, text: '10/s' });
  assert.deepEqual(parseRate('10 / second'), { count: 10, perMs: 1000, text: '10/s' });
  assert.deepEqual(parseRate('100/MIN'), { count: 100, perMs: 60_000, text: '100/min' });
  assert.deepEqual(parseRate('5/m'), { count: 5, perMs: 60_000, text: '5/min' });
  assert.deepEqual(parseRate('5000/hour'), { count: 5000, perMs: 3_600_000, text: '5000/h' });
  assert.deepEqual(parseRate('20000/day'), { count: 20000, perMs: 86_400_000, text: '20000/day' });
  for (const none of ['0', 'none', '', 'unlimited']) assert.equal(parseRate(none), null);
  for (const bad of ['100', '1.5/s', '-1/s', '10/week', '/min', '10/']) assert.equal(parseRate(bad), 'invalid', bad);
  const { config, where } = parse(lines('MAX_MESSAGE_RATE=10/s', '[DESTINATION=free]', 'DOMAIN=free.test', 'MAX_MESSAGE_RATE=none'));
  assert.deepEqual(where, []);
  assert.equal(config.sections[0]!.limits.maxMessageRate, null);
});

test('every problem is reported with file:line, and the rest of the file is still read', () => {
  const { config, where } = parse(
    lines(
      'MAX_CONNECTIONS=0', // 1
      'DOMAIN=global.test', // 2
      'MAX_MESSAGE_RATE=fast', // 3
      'THROTTLE_PATTERN=(unclosed', // 4
      'FROBNICATE=1', // 5
      '[DESTINATION=a]', // 6
      'MX_SUFFIX=*.google.com', // 7
      'THROTTLE_PAUSE=PT0S', // 8
      'SCOPE=planet', // 9
      '[DESTINATION=b]', // 10
      'MX_SUFFIX=.google.com', // 11
      'DOMAIN=domain!', // 12
      '[DESTINATION=a]', // 13
      'DOMAIN=x.test', // 14
      '[DESTINATION=empty]', // 15
      'MAX_CONNECTIONS=3', // 16
      '[DESTINATION=bad/name]', // 17
      'DOMAIN=y.test', // 18
      '[DESTINATION=pauses]', // 19
      'DOMAIN=z.test', // 20
      'THROTTLE_PAUSE=600', // 21
      'THROTTLE_PAUSE_MAX=PT1M', // 22
      '[SERVICE=x]', // 23
    ),
  );
  assert.deepEqual(where, [
    'etc/shaping.cnf:23: error: unknown section type SERVICE (expected [DESTINATION=…])',
    'etc/shaping.cnf:2: error: DOMAIN belongs in a [DESTINATION=name] section (the globals apply to every MX host no section matches)',
    'etc/shaping.cnf:5: warning: unknown option FROBNICATE in shaping.cnf globals (ignored)',
    'etc/shaping.cnf:1: error: MAX_CONNECTIONS must be an integer from 1 to 10000, found "0"',
    'etc/shaping.cnf:3: error: MAX_MESSAGE_RATE must be a count per unit such as 100/min, 10/s, 5000/h or 20000/day (0 or none: no limit), found "fast"',
    `etc/shaping.cnf:4: error: THROTTLE_PATTERN is not a regular expression: ${regexError('(unclosed')}`,
    'etc/shaping.cnf:9: error: SCOPE must be group, host or domain, found "planet"',
    'etc/shaping.cnf:8: error: THROTTLE_PAUSE must be seconds or an ISO 8601 duration such as PT1M, above 0 and at most a day, found "PT0S"',
    'etc/shaping.cnf:12: error: DOMAIN: "domain!" is not a domain name (write example.com, or *.example.com for its subdomains)',
    'etc/shaping.cnf:11: error: MX_SUFFIX google.com is already shaped by [DESTINATION=a] (line 6)',
    'etc/shaping.cnf:10: error: [DESTINATION=b] matches nothing: give DOMAIN, MX_HOST or MX_SUFFIX',
    'etc/shaping.cnf:13: error: [DESTINATION=a] appears twice (first at line 6)',
    'etc/shaping.cnf:15: error: [DESTINATION=empty] matches nothing: give DOMAIN, MX_HOST or MX_SUFFIX',
    'etc/shaping.cnf:17: error: [DESTINATION=bad/name]: a name is letters, digits, "_", "." and "-"',
    'etc/shaping.cnf:22: error: THROTTLE_PAUSE_MAX (60 s) is shorter than THROTTLE_PAUSE (600 s)',
  ]);
  assert.deepEqual(config.sections.map((s) => s.name), ['a', 'pauses']);
});

function regexError(source: string): string {
  try {
    new RegExp(source, 'i');
  } catch (err) {
    return (err as Error).message;
  }
  return '';
}

test('the instance configuration loads etc/shaping.cnf when present; cnbuild reports its errors as file:line', async () => {
  const inst = makeInstance({ files: { 'etc/imta.cnf': IMTA_CNF } });
  instances.push(inst);
  let loaded = loadInstanceConfig(inst.root);
  assert.equal(loaded.config?.shaping?.file, null, 'no file: the defaults');
  assert.equal(loaded.config?.shaping?.defaults.maxConnections, SHAPING_DEFAULTS.maxConnections);
  inst.write('etc/shaping.cnf', lines('[DESTINATION=gmail]', 'MX_SUFFIX=*.google.com', 'MAX_CONNECTIONS=3'));
  loaded = loadInstanceConfig(inst.root);
  assert.equal(loaded.config?.shaping?.sections[0]?.limits.maxConnections, 3);
  let r = await runCli('imsimta', ['cnbuild', '--root', inst.root]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /configuration OK: .*1 shaping destination\b/);
  inst.write('etc/shaping.cnf', lines('[DESTINATION=gmail]', 'MX_SUFFIX=*.google.com', 'MAX_MESSAGE_RATE=lots'));
  r = await runCli('imsimta', ['cnbuild', '--root', inst.root]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /etc\/shaping\.cnf:3: error: MAX_MESSAGE_RATE must be a count per unit/);
});

test('the shipped etc/shaping.cnf writes the built-in defaults and no section', () => {
  const diagnostics: Diagnostic[] = [];
  const config = parseShapingCnf(join(repoRoot, 'etc', 'shaping.cnf'), diagnostics);
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(config.defaults, SHAPING_DEFAULTS);
  assert.deepEqual(config.sections, []);
});
