// etc/dispatcher.cnf: globals inherited by [SERVICE=…] sections, PORT lists, radix integers,
// PARAMETER, port clashes — and the exact file:line and severity of every problem.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join, relative } from 'node:path';
import { parseDispatcherCnf, DISPATCHER_DEFAULTS } from '../../src/config/dispatcher-cnf.js';
import type { Diagnostic } from '../../src/config/types.js';
import { makeInstance, type TestInstance } from '../helpers/instance.js';

const instances: TestInstance[] = [];
after(() => {
  for (const inst of instances) inst.remove();
});

function parse(text: string, extra: Record<string, string> = {}) {
  const inst = makeInstance({ files: { 'etc/dispatcher.cnf': text, ...extra } });
  instances.push(inst);
  const diagnostics: Diagnostic[] = [];
  const config = parseDispatcherCnf(join(inst.root, 'etc/dispatcher.cnf'), diagnostics);
  const where = diagnostics.map((d) => `${relative(inst.root, d.file)}:${d.line}: ${d.severity}`);
  const service = (name: string) => config.services.find((s) => s.name === name)!;
  return { config, diagnostics, where, service };
}

const lines = (...l: string[]) => `${l.join('\n')}\n`;

test('globals are inherited by every service, which may override them; absent options take the shipped defaults', () => {
  const { config, diagnostics, service } = parse(
    lines(
      '! globals',
      'MIN_PROCS=1',
      'MAX_PROCS=4',
      'MAX_CONNS=10',
      'MAX_LIFE_TIME=600',
      '',
      '[SERVICE=SMTP]',
      'PORT=2525',
      '',
      '[SERVICE=smtp_submit]',
      'PORT=2587',
      'MAX_PROCS=2',
      'INTERFACE_ADDRESS=127.0.1.1',
      'PARAMETER=CHANNEL=tcp_intranet',
    ),
  );
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(config.services.map((s) => [s.name, s.line]), [['SMTP', 7], ['SMTP_SUBMIT', 10]]);
  const smtp = service('SMTP');
  assert.deepEqual(
    [smtp.ports, smtp.interfaceAddress, smtp.minProcs, smtp.maxProcs, smtp.minConns, smtp.maxConns, smtp.maxLifeTimeSec, smtp.channel, smtp.lmtp],
    [[2525], null, 1, 4, DISPATCHER_DEFAULTS.MIN_CONNS, 10, 600, 'tcp_local', false],
  );
  assert.deepEqual(
    [smtp.maxHandoffs, smtp.maxLifeConns, smtp.maxIdleTimeSec, smtp.maxShutdown, smtp.backlog],
    [5, 100, 0, 2, 40], // BACKLOG defaults to MAX_CONNS × MAX_PROCS
  );
  const submit = service('SMTP_SUBMIT');
  assert.deepEqual([submit.ports, submit.maxProcs, submit.minProcs, submit.interfaceAddress, submit.channel], [[2587], 2, 1, '127.0.1.1', 'tcp_intranet']);
  assert.equal(submit.backlog, 20);
});

test('a service without PORT listens on 25; defaults match Messaging Server\'s shipped file', () => {
  const { service, diagnostics } = parse(lines('[SERVICE=SMTP]'));
  assert.deepEqual(diagnostics, []);
  const s = service('SMTP');
  assert.deepEqual(
    [s.ports, s.minProcs, s.maxProcs, s.minConns, s.maxConns, s.maxLifeTimeSec, s.maxLifeConns, s.maxShutdown, s.backlog],
    [[25], 0, 5, 5, 20, 86400, 100, 2, 100],
  );
});

test('PORT takes a comma list; bad ports are errors at their line', () => {
  const { service, where, diagnostics } = parse(
    lines('[SERVICE=A]', 'PORT=2525, 2526 ,2527', '[SERVICE=B]', 'PORT=2600,x', '[SERVICE=C]', 'PORT=0', '[SERVICE=D]', 'PORT=65536'),
  );
  assert.deepEqual(service('A').ports, [2525, 2526, 2527]);
  assert.deepEqual(where, ['etc/dispatcher.cnf:4: error', 'etc/dispatcher.cnf:6: error', 'etc/dispatcher.cnf:8: error']);
  for (const d of diagnostics) assert.match(d.message, /PORT must be a port number from 1 to 65535 or a comma list of them/);
});

test('integers take a radix prefix b%v; a digit outside the radix is an error', () => {
  const { service, where, diagnostics } = parse(
    lines('MAX_CONNS=16%FF', 'MAX_LIFE_CONNS=8%17', 'MAX_LIFE_TIME=2%1010', '[SERVICE=A]', 'PORT=2525', '[SERVICE=B]', 'PORT=2526', 'MAX_PROCS=16%FZ', '[SERVICE=C]', 'PORT=2527', 'MAX_PROCS=37%1', '[SERVICE=D]', 'PORT=2528', 'MAX_PROCS=-1'),
  );
  const a = service('A');
  assert.deepEqual([a.maxConns, a.maxLifeConns, a.maxLifeTimeSec], [255, 15, 10]);
  assert.deepEqual(where, ['etc/dispatcher.cnf:8: error', 'etc/dispatcher.cnf:11: error', 'etc/dispatcher.cnf:14: error']);
  assert.match(diagnostics[0]!.message, /MAX_PROCS must be an integer from 1 to 1000, found "16%FZ"/);
  // The service keeps the default where its value was bad.
  assert.equal(service('B').maxProcs, 5);
});

test('MIN_PROCS above MAX_PROCS is an error at the MIN_PROCS line (also when it is global); MIN_CONNS above MAX_CONNS too', () => {
  const { where, diagnostics } = parse(
    lines(
      'MIN_PROCS=3',
      '[SERVICE=A]',
      'PORT=2525',
      'MAX_PROCS=2',
      '[SERVICE=B]',
      'PORT=2526',
      'MIN_PROCS=6',
      'MAX_PROCS=5',
      '[SERVICE=C]',
      'PORT=2527',
      'MIN_PROCS=0',
      'MIN_CONNS=30',
    ),
  );
  assert.deepEqual(where, ['etc/dispatcher.cnf:1: error', 'etc/dispatcher.cnf:7: error', 'etc/dispatcher.cnf:12: error']);
  assert.match(diagnostics[0]!.message, /MIN_PROCS \(3\) is above MAX_PROCS \(2\)/);
  assert.match(diagnostics[1]!.message, /MIN_PROCS \(6\) is above MAX_PROCS \(5\)/);
  assert.match(diagnostics[2]!.message, /MIN_CONNS \(30\) is above MAX_CONNS \(20\)/);
});

test('port clashes: same port on all interfaces, or on one address and all; distinct addresses are fine', () => {
  const { where, diagnostics } = parse(
    lines(
      '[SERVICE=A]',
      'PORT=2525,2526',
      '[SERVICE=B]',
      'PORT=2526',
      '[SERVICE=C]',
      'PORT=2600',
      'INTERFACE_ADDRESS=127.0.1.1',
      '[SERVICE=D]',
      'PORT=2600',
      'INTERFACE_ADDRESS=127.0.1.2',
      '[SERVICE=E]',
      'PORT=2600',
      '[SERVICE=F]',
      'PORT=2700,2700',
    ),
  );
  assert.deepEqual(where, ['etc/dispatcher.cnf:3: error', 'etc/dispatcher.cnf:11: error', 'etc/dispatcher.cnf:13: error']);
  assert.match(diagnostics[0]!.message, /\[SERVICE=B\] port 2526 is also used by \[SERVICE=A\]/);
  assert.match(diagnostics[1]!.message, /\[SERVICE=E\] port 2600 is also used by \[SERVICE=C\]/);
  assert.match(diagnostics[2]!.message, /\[SERVICE=F\] lists port 2700 twice/);
});

test('PARAMETER=KEY=value: CHANNEL picks the channel, LMTP=1 or the LMTP service name means LMTP; globals are inherited', () => {
  const { service, where, diagnostics } = parse(
    lines(
      'PARAMETER=DEBUG=0',
      '[SERVICE=SUBMIT]',
      'PORT=2587',
      'PARAMETER=CHANNEL=tcp_submit',
      '[SERVICE=LMTP]',
      'PORT=2424',
      '[SERVICE=LMTP2]',
      'PORT=2425',
      'PARAMETER=channel=tcp_lmtp2, LMTP=1',
      '[SERVICE=BAD]',
      'PORT=2426',
      'PARAMETER=nonsense',
    ),
  );
  const submit = service('SUBMIT');
  assert.deepEqual([submit.channel, submit.lmtp, submit.parameters], ['tcp_submit', false, { DEBUG: '0', CHANNEL: 'tcp_submit' }]);
  assert.deepEqual([service('LMTP').channel, service('LMTP').lmtp], ['tcp_lmtp', true]);
  assert.deepEqual([service('LMTP2').channel, service('LMTP2').lmtp], ['tcp_lmtp2', true]);
  assert.deepEqual(where, ['etc/dispatcher.cnf:12: error']);
  assert.match(diagnostics[0]!.message, /PARAMETER must be KEY=value, found "nonsense"/);
});

test('unknown options are warnings; compatibility options warn that they have no effect; bad INTERFACE_ADDRESS is an error', () => {
  const { service, where, diagnostics } = parse(
    lines(
      'IMAGE=/opt/msg/lib/tcp_smtp_server',
      'FROBNICATE=1',
      '[SERVICE=SMTP]',
      'PORT=2525',
      'LOGFILE=/opt/msg/log/tcp_smtp_server.log',
      'INTERFACE_ADDRESS=ANY',
      'WHATEVER=2',
      '[SERVICE=OTHER]',
      'PORT=2526',
      'INTERFACE_ADDRESS=mail.example.com',
    ),
  );
  assert.deepEqual(where, [
    'etc/dispatcher.cnf:2: warning',
    'etc/dispatcher.cnf:1: warning',
    'etc/dispatcher.cnf:7: warning',
    'etc/dispatcher.cnf:5: warning',
    'etc/dispatcher.cnf:10: error',
  ]);
  assert.match(diagnostics[0]!.message, /unknown option FROBNICATE in dispatcher\.cnf globals \(ignored\)/);
  assert.match(diagnostics[1]!.message, /IMAGE is accepted for compatibility and has no effect/);
  assert.match(diagnostics[2]!.message, /unknown option WHATEVER in \[SERVICE=SMTP\]/);
  assert.match(diagnostics[3]!.message, /LOGFILE is accepted for compatibility and has no effect/);
  assert.match(diagnostics[4]!.message, /INTERFACE_ADDRESS must be an IP address, found "mail\.example\.com"/);
  assert.equal(service('SMTP').interfaceAddress, null);
});

test('section problems: duplicates, malformed headers, unknown types; [SERVICE=DISPATCHER] is skipped', () => {
  const { config, where, diagnostics } = parse(
    lines(
      '[SERVICE=DISPATCHER]',
      'MAX_PROCS=9',
      '[SERVICE=SMTP]',
      'PORT=2525',
      '[SERVICE=smtp]',
      'PORT=2526',
      '[SERVICE SMTP]',
      '[POOL=X]',
      'garbage line',
    ),
  );
  assert.deepEqual(config.services.map((s) => s.name), ['SMTP']);
  assert.deepEqual(where, ['etc/dispatcher.cnf:7: error', 'etc/dispatcher.cnf:8: error', 'etc/dispatcher.cnf:9: error', 'etc/dispatcher.cnf:5: error']);
  assert.match(diagnostics[0]!.message, /malformed section header "\[SERVICE SMTP\]"/);
  assert.match(diagnostics[1]!.message, /unknown section type POOL \(expected \[SERVICE=…\]\)/);
  assert.match(diagnostics[2]!.message, /expected OPTION=value, found "garbage line"/);
  assert.match(diagnostics[3]!.message, /\[SERVICE=SMTP\] appears twice/);
});

test('comments, "\\" continuation and <file includes in dispatcher.cnf; a missing include is an error at its line', () => {
  const { service, where, diagnostics } = parse(
    lines(
      '! comment',
      '  ! indented comment',
      '<site/globals.cnf',
      '[SERVICE=SMTP]',
      'PORT=2525,\\',
      '! skipped inside the continuation',
      '  2526',
      'MAX_CONNS=\\',
      'x',
      '<missing.cnf',
    ),
    { 'etc/site/globals.cnf': lines('MAX_PROCS=3', '<more.cnf'), 'etc/site/more.cnf': lines('MIN_CONNS=2', 'MAX_LIFE_CONNS=bad') },
  );
  assert.deepEqual(service('SMTP').ports, [2525, 2526]);
  assert.deepEqual([service('SMTP').maxProcs, service('SMTP').minConns], [3, 2]);
  assert.deepEqual(where, ['etc/dispatcher.cnf:10: error', 'etc/dispatcher.cnf:8: error', 'etc/site/more.cnf:2: error']);
  assert.match(diagnostics[0]!.message, /cannot read included file .*missing\.cnf: ENOENT/);
  assert.match(diagnostics[1]!.message, /MAX_CONNS must be an integer from 1 to 100000, found "x"/);
  assert.match(diagnostics[2]!.message, /MAX_LIFE_CONNS must be an integer ≥ 0, found "bad"/);
});

test('DNS blocklists: DNS_VERIFY_DOMAIN lines add up (comma lists too), a service\'s own lines replace the global ones; ENABLE_RBL, RBL_TIMEOUT and RBL_FAIL_CLOSED are inherited', () => {
  const { service, diagnostics } = parse(
    lines(
      'ENABLE_RBL=1',
      'DNS_VERIFY_DOMAIN=zen.example.',
      'DNS_VERIFY_DOMAIN=bl.example.net, dul.example.org',
      'RBL_TIMEOUT=2.5',
      '[SERVICE=SMTP]',
      'PORT=2525',
      '[SERVICE=OWN]',
      'PORT=2526',
      'DNS_VERIFY_DOMAIN=Own.Example',
      'RBL_FAIL_CLOSED=1',
      '[SERVICE=OFF]',
      'PORT=2527',
      'ENABLE_RBL=0',
    ),
  );
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(service('SMTP').rbl, { enabled: true, zones: ['zen.example', 'bl.example.net', 'dul.example.org'], timeoutMs: 2500, failClosed: false });
  assert.deepEqual(service('OWN').rbl, { enabled: true, zones: ['own.example'], timeoutMs: 2500, failClosed: true });
  assert.equal(service('OFF').rbl?.enabled, false);
  assert.deepEqual(service('OFF').rbl?.zones, ['zen.example', 'bl.example.net', 'dul.example.org']);
});

test('DNS blocklists: defaults (off, 5 s, fail open) and every bad value with its file:line', () => {
  const defaults = parse(lines('[SERVICE=SMTP]', 'PORT=2525'));
  assert.deepEqual(defaults.service('SMTP').rbl, { enabled: false, zones: [], timeoutMs: 5000, failClosed: false });
  const { where, diagnostics, service } = parse(
    lines(
      '[SERVICE=SMTP]', // 1
      'PORT=2525', // 2
      'ENABLE_RBL=yes', // 3
      'DNS_VERIFY_DOMAIN=bad..zone', // 4
      'DNS_VERIFY_DOMAIN=a.example,a.example', // 5
      'DNS_VERIFY_DOMAIN=z1.example,z2.example,z3.example,z4.example,z5.example,z6.example,z7.example,z8.example,z9.example', // 6
      'RBL_TIMEOUT=0', // 7
      'RBL_FAIL_CLOSED=2', // 8
      '[SERVICE=EMPTY]', // 9
      'PORT=2526', // 10
      'ENABLE_RBL=1', // 11
      'DNS_VERIFY_DOMAIN=', // 12
    ),
  );
  assert.deepEqual(where, [
    'etc/dispatcher.cnf:4: error',
    'etc/dispatcher.cnf:5: warning',
    'etc/dispatcher.cnf:6: error',
    'etc/dispatcher.cnf:3: error',
    'etc/dispatcher.cnf:7: error',
    'etc/dispatcher.cnf:8: error',
    'etc/dispatcher.cnf:11: warning',
  ]);
  assert.match(diagnostics[0]!.message, /"bad\.\.zone" is not a DNS zone name/);
  assert.match(diagnostics[1]!.message, /a\.example is listed twice/);
  assert.match(diagnostics[2]!.message, /more than 8 zones \(from "z8\.example" on\)/);
  assert.match(diagnostics[3]!.message, /ENABLE_RBL must be 0 or 1, found "yes"/);
  assert.match(diagnostics[4]!.message, /RBL_TIMEOUT must be a number of seconds above 0/);
  assert.match(diagnostics[5]!.message, /RBL_FAIL_CLOSED must be 0 or 1, found "2"/);
  assert.match(diagnostics[6]!.message, /ENABLE_RBL=1 without DNS_VERIFY_DOMAIN/);
  assert.equal(service('SMTP').rbl?.zones.length, 8);
});

test('PROXY_PROTOCOL, PROXY_TRUSTED and PROXY_TIMEOUT: per service or inherited from the globals; off by default', () => {
  const { diagnostics, service } = parse(
    lines(
      'PROXY_TRUSTED=127.0.0.1, 10.0.0.0/8 2001:db8::/32', // 1: global, for the services that turn it on
      '[SERVICE=SMTP]', // 2
      'PORT=2525', // 3
      '[SERVICE=SMTP_LB]', // 4
      'PORT=2526', // 5
      'PROXY_PROTOCOL=1', // 6
      '[SERVICE=SMTP_LB2]', // 7
      'PORT=2527', // 8
      'PROXY_PROTOCOL=v2', // 9
      'PROXY_TRUSTED=192.0.2.7', // 10
      'PROXY_TIMEOUT=2.5', // 11
      '[SERVICE=SMTP_LB1]', // 12
      'PORT=2528', // 13
      'PROXY_PROTOCOL=V1', // 14
    ),
  );
  assert.deepEqual(diagnostics, []);
  assert.equal(service('SMTP').proxy, null);
  const lb = service('SMTP_LB').proxy!;
  assert.deepEqual([lb.versions, lb.trusted.map((c) => c.text), lb.timeoutMs, lb.maxBytes], ['any', ['127.0.0.1', '10.0.0.0/8', '2001:db8::/32'], 5000, 1024]);
  const lb2 = service('SMTP_LB2').proxy!;
  assert.deepEqual([lb2.versions, lb2.trusted.map((c) => c.text), lb2.timeoutMs], ['v2', ['192.0.2.7'], 2500]);
  assert.equal(service('SMTP_LB1').proxy!.versions, 'v1');
});

test('PROXY_* mistakes: file:line errors for bad values and a missing balancer list; a warning for options that do nothing', () => {
  const { where, diagnostics, service } = parse(
    lines(
      '[SERVICE=A]', // 1
      'PORT=2525', // 2
      'PROXY_PROTOCOL=yes', // 3
      '[SERVICE=B]', // 4
      'PORT=2526', // 5
      'PROXY_PROTOCOL=1', // 6 — no PROXY_TRUSTED
      '[SERVICE=C]', // 7
      'PORT=2527', // 8
      'PROXY_PROTOCOL=1', // 9
      'PROXY_TRUSTED=10.0.0.0/8,lb.example,10.0.0.0/33', // 10
      'PROXY_TIMEOUT=0', // 11
      '[SERVICE=D]', // 12
      'PORT=2528', // 13
      'PROXY_TRUSTED=10.0.0.1', // 14 — without PROXY_PROTOCOL
    ),
  );
  assert.deepEqual(where, [
    'etc/dispatcher.cnf:3: error',
    'etc/dispatcher.cnf:6: error',
    'etc/dispatcher.cnf:10: error',
    'etc/dispatcher.cnf:10: error',
    'etc/dispatcher.cnf:11: error',
    'etc/dispatcher.cnf:14: warning',
  ]);
  assert.match(diagnostics[0]!.message, /PROXY_PROTOCOL must be 0 \(off\), 1 \(version 1 or 2\), V1 or V2, found "yes"/);
  assert.match(diagnostics[1]!.message, /PROXY_PROTOCOL needs PROXY_TRUSTED/);
  assert.match(diagnostics[2]!.message, /PROXY_TRUSTED: "lb\.example" is not an IP address or network/);
  assert.match(diagnostics[3]!.message, /"10\.0\.0\.0\/33"/);
  assert.match(diagnostics[4]!.message, /PROXY_TIMEOUT must be a number of seconds above 0 and at most 300, found "0"/);
  assert.match(diagnostics[5]!.message, /PROXY_TRUSTED has no effect without PROXY_PROTOCOL/);
  assert.deepEqual(service('C').proxy!.trusted.map((c) => c.text), ['10.0.0.0/8']);
});

test('ACCEPT_MODE: SHARED by default, HANDOFF per service or globally, any case; anything else is an error at its line', () => {
  const { service, where, diagnostics } = parse(
    lines('ACCEPT_MODE=handoff', '[SERVICE=SMTP]', 'PORT=2525', '[SERVICE=SUBMIT]', 'PORT=2587', 'ACCEPT_MODE=Shared', '[SERVICE=OTHER]', 'PORT=2588', 'ACCEPT_MODE=kernel'),
  );
  assert.equal(service('SMTP').acceptMode, 'handoff');
  assert.equal(service('SUBMIT').acceptMode, 'shared');
  assert.equal(service('OTHER').acceptMode, 'shared');
  assert.deepEqual(where, ['etc/dispatcher.cnf:9: error']);
  assert.match(diagnostics[0]!.message, /ACCEPT_MODE must be SHARED .* or HANDOFF .*, found "kernel"/);
  assert.equal(parse(lines('[SERVICE=SMTP]', 'PORT=2525')).service('SMTP').acceptMode, 'shared');
});
