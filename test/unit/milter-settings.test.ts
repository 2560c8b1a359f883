// Filter lists as Postfix's smtpd_milters writes them, the macros sent per stage, and the
// connect event built from what the SMTP server knows of the client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { milterSettings, parseFilterAddress, parseFilterList, parsePostfixTime, MILTER_DEFAULTS } from '../../src/milter/settings.js';
import { DEFAULT_MACRO_LISTS, evaluateMacros, macroValue, type MacroFacts } from '../../src/milter/macros.js';
import { connectEvent } from '../../src/milter/session.js';

test('filter addresses: unix:, inet:host:port, inet:[v6]:port, Sendmail’s inet:port@host', () => {
  const ok = (t: string) => {
    const r = parseFilterAddress(t);
    assert.ok(r.ok, `${t}: ${r.ok ? '' : r.error}`);
    return r.value;
  };
  assert.deepEqual(ok('unix:/run/rspamd/milter.sock'), { kind: 'unix', path: '/run/rspamd/milter.sock' });
  assert.deepEqual(ok('local:/run/x.sock'), { kind: 'unix', path: '/run/x.sock' });
  assert.deepEqual(ok('inet:127.0.0.1:11332'), { kind: 'inet', host: '127.0.0.1', port: 11332 });
  assert.deepEqual(ok('inet:localhost:8891'), { kind: 'inet', host: 'localhost', port: 8891 });
  assert.deepEqual(ok('inet:[::1]:11332'), { kind: 'inet', host: '::1', port: 11332 });
  assert.deepEqual(ok('inet:11332@127.0.0.1'), { kind: 'inet', host: '127.0.0.1', port: 11332 });
  assert.deepEqual(ok('inet6:11332@[::1]'), { kind: 'inet', host: '::1', port: 11332 });
  assert.deepEqual(ok('INET:127.0.0.1:1'), { kind: 'inet', host: '127.0.0.1', port: 1 });
  for (const [bad, why] of [
    ['127.0.0.1:11332', /unknown transport "127.0.0.1" \(unix or inet\)/],
    ['/run/x.sock', /expected unix:\/path or inet:host:port/],
    ['unix:relative.sock', /must be absolute/],
    ['tcp:127.0.0.1:1', /unknown transport "tcp"/],
    ['inet:127.0.0.1', /no port/],
    ['inet:127.0.0.1:0', /bad port/],
    ['inet:127.0.0.1:65536', /bad port/],
    ['inet:127.0.0.1:http', /bad port/],
    ['inet:::1:25', /IPv6 address in brackets/],
    ['inet::25', /no host/],
    ['inet:x@127.0.0.1', /bad port/],
  ] as const) {
    const r = parseFilterAddress(bad);
    assert.ok(!r.ok, bad);
    assert.match(r.error, why, bad);
  }
});

test('filter lists: commas or spaces, and Postfix 3 groups with per-filter settings', () => {
  const r = parseFilterList('inet:127.0.0.1:11332, unix:/run/a.sock { inet:[::1]:8891, default_action = accept, command_timeout = 10s, content_timeout=2m, protocol = 6 }');
  assert.ok(r.ok);
  assert.deepEqual(r.value, [
    { name: 'inet:127.0.0.1:11332', address: { kind: 'inet', host: '127.0.0.1', port: 11332 } },
    { name: 'unix:/run/a.sock', address: { kind: 'unix', path: '/run/a.sock' } },
    { name: 'inet:[::1]:8891', address: { kind: 'inet', host: '::1', port: 8891 }, defaultAction: 'accept', timeouts: { commandMs: 10_000, contentMs: 120_000 } },
  ]);
  assert.deepEqual(parseFilterList('  '), { ok: true, value: [] });
  // tsubame's `name`: what mail.log and the metrics call the filter instead of its address.
  assert.deepEqual(parseFilterList('{ inet:127.0.0.1:11332, name = rspamd }'), { ok: true, value: [{ name: 'rspamd', address: { kind: 'inet', host: '127.0.0.1', port: 11332 } }] });
  for (const [bad, why] of [
    ['{ inet:127.0.0.1:1, default_action = bounce }', /default_action must be one of tempfail, accept, reject, quarantine, shutdown/],
    ['{ inet:127.0.0.1:1, connect_timeout = soon }', /connect_timeout must be a time/],
    ['{ inet:127.0.0.1:1, colour = red }', /unknown setting "colour"/],
    ['{ inet:127.0.0.1:1, protocol = 2 }', /only protocol 6/],
    ['{ inet:127.0.0.1:1, name = two words }', /name must be letters/],
    ['{ inet:127.0.0.1:1', /without its "\}"/],
    ['inet:127.0.0.1:1 }', /without its "\{"/],
    ['{ }', /without a filter address/],
  ] as const) {
    const p = parseFilterList(bad);
    assert.ok(!p.ok, bad);
    assert.match(p.error, why, bad);
  }
});

test('Postfix time values', () => {
  assert.equal(parsePostfixTime('30'), 30_000);
  assert.equal(parsePostfixTime('30s'), 30_000);
  assert.equal(parsePostfixTime('5m'), 300_000);
  assert.equal(parsePostfixTime('1h'), 3_600_000);
  assert.equal(parsePostfixTime('1.5s'), null);
  assert.equal(parsePostfixTime(''), null);
});

test('defaults are Postfix’s: 30 s connect and command, 300 s content, tempfail', () => {
  assert.deepEqual(MILTER_DEFAULTS.timeouts, { connectMs: 30_000, commandMs: 30_000, contentMs: 300_000 });
  assert.equal(MILTER_DEFAULTS.defaultAction, 'tempfail');
  const s = milterSettings([], { timeouts: { commandMs: 5 } as never });
  assert.deepEqual(s.timeouts, { connectMs: 30_000, commandMs: 5, contentMs: 300_000 });
});

const facts: MacroFacts = {
  hostname: 'mx.example.org',
  daemonName: 'tsubame',
  clientAddress: '192.0.2.7',
  clientPort: 40001,
  clientName: null,
  clientPtr: 'ptr.example.net',
  queueId: 'Q1',
  auth: { type: 'PLAIN', authen: 'joe' },
  mailAddr: '',
  rcptAddr: 'user@example.org',
  rcptMailer: 'l',
};

test('macros per stage: the known ones with their values, the unknown ones left out', () => {
  assert.deepEqual(evaluateMacros(DEFAULT_MACRO_LISTS.connect, facts), [
    ['j', 'mx.example.org'],
    ['{daemon_name}', 'tsubame'],
    ['_', 'ptr.example.net [192.0.2.7]'],
    ['{client_addr}', '192.0.2.7'],
    ['{client_port}', '40001'],
    ['{client_name}', 'unknown'],
    ['{client_ptr}', 'ptr.example.net'],
  ]);
  assert.deepEqual(evaluateMacros(DEFAULT_MACRO_LISTS.mail, facts), [
    ['i', 'Q1'],
    ['{auth_type}', 'PLAIN'],
    ['{auth_authen}', 'joe'],
    ['{mail_addr}', ''],
  ]);
  assert.deepEqual(evaluateMacros(DEFAULT_MACRO_LISTS.rcpt, facts), [['i', 'Q1'], ['{rcpt_addr}', 'user@example.org'], ['{rcpt_mailer}', 'l']]);
  assert.deepEqual(evaluateMacros(['{no_such_macro}', 'i', '{i}'], facts), [['i', 'Q1'], ['{i}', 'Q1']]);
  // A local submission has no client address: no client macros at all.
  assert.equal(macroValue('{client_addr}', { hostname: 'h', clientAddress: null }), undefined);
  assert.equal(macroValue('_', { hostname: 'h' }), undefined);
});

test('the connect event: IPv4 (also IPv4-mapped), IPv6, a client without a name, a local submission', () => {
  const base = { hostname: 'mx', clientPort: 40001, clientName: null };
  assert.deepEqual(connectEvent({ ...base, clientAddress: '192.0.2.7' }), { hostname: '[192.0.2.7]', family: '4', port: 40001, address: '192.0.2.7' });
  assert.deepEqual(connectEvent({ ...base, clientAddress: '::ffff:192.0.2.7', clientName: 'c.example' }), { hostname: 'c.example', family: '4', port: 40001, address: '192.0.2.7' });
  assert.deepEqual(connectEvent({ ...base, clientAddress: '2001:db8::7' }), { hostname: '[2001:db8::7]', family: '6', port: 40001, address: '2001:db8::7' });
  assert.deepEqual(connectEvent({ ...base, clientAddress: null, clientPort: null }), { hostname: 'localhost', family: 'U', port: 0, address: '' });
});
