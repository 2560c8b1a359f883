// The pure pieces of the rewriter: path parsing, host extraction, probe order, templates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAddress, extractHost, hostProbes, checkTemplate, compileTemplate } from '../../src/rewrite/index.js';

test('parseAddress accepts RFC 5321 paths and Messaging Server local parts', () => {
  const ok: Array<[string, { localPart: string; domain: string | null; route: string[] }]> = [
    ['u@example.com', { localPart: 'u', domain: 'example.com', route: [] }],
    ['<U.Ser+tag@Example.COM>', { localPart: 'U.Ser+tag', domain: 'Example.COM', route: [] }],
    ['<@a,@b:u@c>', { localPart: 'u', domain: 'c', route: ['a', 'b'] }],
    ['@[IPv6:::1]:u@c', { localPart: 'u', domain: 'c', route: ['[IPv6:::1]'] }],
    ['"a@b"@c.org', { localPart: '"a@b"', domain: 'c.org', route: [] }],
    ['"a\\"b c"@c.org', { localPart: '"a\\"b c"', domain: 'c.org', route: [] }],
    ['u@[192.0.2.1]', { localPart: 'u', domain: '[192.0.2.1]', route: [] }],
    ['u@[IPv6:2001:db8::1]', { localPart: 'u', domain: '[IPv6:2001:db8::1]', route: [] }],
    ['u@dest.', { localPart: 'u', domain: 'dest', route: [] }],
    ['postmaster', { localPart: 'postmaster', domain: null, route: [] }],
    ['u%host.example', { localPart: 'u%host.example', domain: null, route: [] }],
    ['<>', { localPart: '', domain: null, route: [] }],
  ];
  for (const [input, want] of ok) assert.deepEqual(parseAddress(input), want, input);
  const bad = ['a b@c', 'u@', '@c', 'u@-bad.com', 'u@a..b', '.u@c', 'u.@c', 'u..v@c', '"unterminated@c', 'u@[300.1.1.1]',
    'u@[IPv6:zz]', '<u@c', 'u@c>', '@a:', '@a,u@c', 'u@c@d', 'u@exa mple.com', 'u\u0000@c'];
  for (const input of bad) assert.equal(parseAddress(input), null, input);
});

test('extractHost: source route, @, last single %, first !, and bangoverpercent', () => {
  const ex = (a: string, opts = {}) => {
    const r = extractHost(parseAddress(a)!, opts);
    return r && [r.host, r.location, r.user];
  };
  assert.deepEqual(ex('@a.b:u@c'), ['a.b', 'S', 'u@c']);
  assert.deepEqual(ex('@a,@b,@c:u@d.e.f'), ['a', 'S', '@b,@c:u@d.e.f']);
  assert.deepEqual(ex('u%A@B'), ['B', 'A', 'u%A']);
  assert.deepEqual(ex('user%A%B%C@D'), ['D', 'A', 'user%A%B%C']);
  assert.deepEqual(ex('user%A'), ['A', 'P', 'user']);
  assert.deepEqual(ex('user%A%B'), ['B', 'P', 'user%A']);
  assert.deepEqual(ex('user%%A%B'), ['B', 'P', 'user%%A']);
  assert.deepEqual(ex('user%A%%B'), ['A%%B', 'P', 'user']);
  assert.deepEqual(ex('A!user'), ['A', 'X', 'user']);
  assert.deepEqual(ex('A!user@B'), ['B', 'A', 'A!user']);
  assert.deepEqual(ex('A!user%B'), ['B', 'P', 'A!user']);
  assert.deepEqual(ex('A!user%B', { bangOverPercent: true }), ['A', 'X', 'user%B']);
  assert.deepEqual(ex('A!user', { percentOnly: true }), null);
  assert.deepEqual(ex('"u%x"'), null);
  assert.deepEqual(ex('postmaster'), null);
});

test('hostProbes follows the documented order', () => {
  assert.deepEqual(hostProbes('SC.cs.Ex.edu').map((p) => p.pattern), [
    'sc.cs.ex.edu', '*.cs.ex.edu', '.cs.ex.edu', '*.*.ex.edu', '.ex.edu', '*.*.*.edu', '.edu', '*.*.*.*', '.',
  ]);
  assert.deepEqual(hostProbes('localhost').map((p) => p.pattern), ['localhost', '*', '.']);
  assert.deepEqual(hostProbes('[1.2.3.4]').map((p) => p.pattern), ['[1.2.3.4]', '[1.2.3.]', '[1.2.]', '[1.]', '[]', '.']);
  assert.deepEqual(hostProbes('[IPv6:::1]').map((p) => p.pattern), ['[ipv6:::1]', '[]', '.']);
  const sub = hostProbes('a.b.ex.com').find((p) => p.pattern === '.ex.com')!;
  assert.equal(sub.unmatched, 'a.b');
  assert.equal(sub.matched, '.ex.com');
  const lit = hostProbes('[192.168.1.2]').find((p) => p.pattern === '[192.168.]')!;
  assert.equal(lit.literalRest, '1.2');
  // Only the exact name is compared with the channel host table.
  assert.deepEqual(hostProbes('a.b').filter((p) => p.channelTable).map((p) => p.pattern), ['a.b']);
});

test('templates: forms, controls and their argument termination, and errors', () => {
  assert.equal(compileTemplate('$U%$D@tcp-daemon').form, 'user-percent-domain-at-channel');
  assert.equal(compileTemplate('$U@tcp-daemon').form, 'user-at-channel');
  assert.equal(compileTemplate('$U%$D').form, 'meta');
  assert.equal(compileTemplate('$U@$D@tcp-daemon').form, 'route-via-channel');
  assert.equal(compileTemplate('$U@$D@relay@tcp-daemon').form, 'route');
  assert.equal(compileTemplate('$?no such domain').form, 'error-only');
  assert.equal(compileTemplate('$U$%x%$D$@y@c').parts.length, 3); // $% and $@ are literal characters
  const t = compileTemplate('$U%$D@tcp-daemon$Mtcp_local$Ntcp_intranet$?Go away');
  assert.deepEqual(t.controls, [
    { kind: 'is-source', channel: 'tcp_local' },
    { kind: 'not-source', channel: 'tcp_intranet' },
    { kind: 'error', text: 'Go away' },
  ]);
  assert.deepEqual(compileTemplate('$Mtcp_local$U@c').controls, [{ kind: 'is-source', channel: 'tcp_local' }]);
  assert.equal(checkTemplate('$U%$D@tcp-daemon$E$F$A'), null);
  assert.match(checkTemplate('$U%$D@c$Y')!, /unknown substitution or control \$Y/);
  assert.match(checkTemplate('$U%$D@c$')!, /at the end/);
  assert.match(checkTemplate('$U@')!, /empty part/);
  assert.match(checkTemplate('$U')!, /is not one of/);
  assert.match(checkTemplate('$U@$D@a@b@c')!, /is not one of/);
  assert.match(checkTemplate('$U%$D@c$M')!, /needs a channel name/);
  assert.match(checkTemplate('$U%$D@c$Ttag|')!, /not supported/);
  assert.match(checkTemplate('$(db)$U@c')!, /not supported/);
  assert.match(checkTemplate('$E')!, /empty/);
});
