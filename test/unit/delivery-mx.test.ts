// MX rules (RFC 5321 §5.1, RFC 7505), reply normalisation, destinations, alias expansion.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dropSelfAndWorse, interpretMxRecords, orderTargets, randomRank, shufflesEqualPreferences, sortMxRecords } from '../../src/delivery/mx.js';
import { normalizeReply, enhancedCode } from '../../src/delivery/status.js';
import { destinationOf, parseHostPort } from '../../src/delivery/address.js';
import { expandLocal } from '../../src/directory/local-aliases.js';
import { deliverySettings } from '../../src/delivery/settings.js';

test('MX records sort by preference; equal preferences keep answer order (stable)', () => {
  const sorted = sortMxRecords([
    { exchange: 'C.example.', preference: 20 },
    { exchange: 'a.example', preference: 10 },
    { exchange: 'b.example', preference: 10 },
    { exchange: 'd.example', preference: 5 },
  ]);
  assert.deepEqual(sorted.map((r) => r.exchange), ['d.example', 'a.example', 'b.example', 'c.example']);
});

test('null MX, no MX (implicit MX) and a null MX mixed with real ones', () => {
  assert.deepEqual(interpretMxRecords([{ exchange: '.', preference: 0 }]), { kind: 'null' });
  assert.deepEqual(interpretMxRecords([{ exchange: '', preference: 0 }]), { kind: 'null' });
  assert.deepEqual(interpretMxRecords([]), { kind: 'none' });
  const mixed = interpretMxRecords([{ exchange: '.', preference: 0 }, { exchange: 'mx.example', preference: 10 }]);
  assert.deepEqual(mixed, { kind: 'list', records: [{ exchange: 'mx.example', preference: 10 }] });
});

test('equal preferences: shuffled for randommx/defaultmx, stable for mx/nonrandommx; one rank per host for the run', () => {
  assert.equal(shufflesEqualPreferences('mx'), false, 'Messaging Server: mx = nonrandommx');
  assert.equal(shufflesEqualPreferences('nonrandommx'), false);
  assert.equal(shufflesEqualPreferences('randommx'), true);
  const hosts = ['a', 'b', 'c', 'd'].map((n, i) => ({ name: `${n}.mx.test`, preference: 10, addresses: [`192.0.2.${i + 1}`] }));
  const backup = { name: 'z.mx.test', preference: 50, addresses: ['192.0.2.99'] };
  const stable = orderTargets([...hosts, backup], { shuffle: false, rank: randomRank(), port: 25 });
  assert.deepEqual(stable.map((t) => t.host), ['a.mx.test', 'b.mx.test', 'c.mx.test', 'd.mx.test', 'z.mx.test']);
  const orders = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const t = orderTargets([...hosts, backup], { shuffle: true, rank: randomRank(), port: 25 });
    assert.equal(t.at(-1)!.host, 'z.mx.test', 'shuffling never crosses preferences');
    orders.add(t.map((x) => x.host).join(','));
  }
  assert.ok(orders.size > 1, 'random order varies between runs');
  // Within one run, two domains sharing the MX set get the same first host (so they piggyback).
  const rank = randomRank();
  const d1 = orderTargets(hosts, { shuffle: true, rank, port: 25 });
  const d2 = orderTargets([...hosts].reverse(), { shuffle: true, rank, port: 25 });
  assert.equal(d1[0]!.key, d2[0]!.key);
});

test('this host in the MX list: it and worse preferences are dropped; alone, a loop', () => {
  const records = sortMxRecords([
    { exchange: 'primary.test', preference: 10 },
    { exchange: 'me.test', preference: 20 },
    { exchange: 'tertiary.test', preference: 30 },
  ]);
  assert.deepEqual(dropSelfAndWorse(records, ['ME.test']), { records: [{ exchange: 'primary.test', preference: 10 }], loop: false });
  assert.deepEqual(dropSelfAndWorse([{ exchange: 'me.test', preference: 10 }], ['me.test']), { records: [], loop: true });
  assert.deepEqual(dropSelfAndWorse(records, ['other.test']).records.length, 3);
});

test('replies become one line `NNN X.Y.Z text`', () => {
  assert.equal(normalizeReply('550 5.1.1 <a@b>: no such user'), '550 5.1.1 <a@b>: no such user');
  assert.equal(normalizeReply('550 no such user'), '550 5.0.0 no such user');
  assert.equal(normalizeReply('452-4.2.2 mailbox\n452 4.2.2 full'), '452 4.2.2 mailbox full');
  assert.equal(normalizeReply('250 OK'), '250 2.0.0 OK');
  assert.equal(enhancedCode('451 4.4.1 connect to x: refused'), '4.4.1');
});

test('destinations: domain, source route, address literal, invalid; smart host entries', () => {
  assert.deepEqual(destinationOf('User@Example.COM.'), { kind: 'domain', domain: 'example.com' });
  assert.deepEqual(destinationOf('@relay.test,@hop2.test:user@final.test'), { kind: 'domain', domain: 'relay.test' });
  assert.deepEqual(destinationOf('u@[192.0.2.7]'), { kind: 'literal', ip: '192.0.2.7' });
  assert.deepEqual(destinationOf('u@[IPv6:2001:db8::1]'), { kind: 'literal', ip: '2001:db8::1' });
  assert.equal(destinationOf('nodomain').kind, 'invalid');
  assert.equal(destinationOf('u@bad..domain').kind, 'invalid');
  assert.equal(destinationOf('u<x>@ok.test').kind, 'invalid');
  assert.deepEqual(parseHostPort('relay.test:2525'), { host: 'relay.test', port: 2525 });
  assert.deepEqual(parseHostPort('[2001:db8::1]:26'), { host: '2001:db8::1', port: 26 });
  assert.deepEqual(parseHostPort('relay.test'), { host: 'relay.test', port: null });
});

test('local aliases: subaddress, lists, chains, /dev/null, remote targets, unknown users', () => {
  const aliases = new Map<string, string[]>([
    ['list', ['alice', 'bob', 'list-archive']],
    ['list-archive', ['/dev/null']],
    ['fwd', ['x@remote.test']],
    ['root', ['root']],
    ['alice+special', ['bob']],
  ]);
  const exists = (u: string) => ['alice', 'bob'].includes(u);
  const expand = (lp: string) => expandLocal(lp, { aliases, mailboxName: (u) => (exists(u) ? u : null), localDomains: ['here.test'] }).targets;
  assert.deepEqual(expand('Alice+tag'), [{ kind: 'mailbox', user: 'alice' }]);
  assert.deepEqual(expand('alice+special'), [{ kind: 'mailbox', user: 'bob' }], 'the full local part alias wins');
  assert.deepEqual(expand('list'), [{ kind: 'mailbox', user: 'alice' }, { kind: 'mailbox', user: 'bob' }, { kind: 'discard' }]);
  assert.equal(expand('fwd')[0]!.kind, 'unsupported');
  assert.deepEqual(expand('root'), [{ kind: 'mailbox', user: 'root' }]);
  assert.deepEqual(expand('postmaster'), [{ kind: 'mailbox', user: 'postmaster' }]);
  assert.deepEqual(expand('carol'), [{ kind: 'unknown', user: 'carol' }]);
});

test('option.dat delivery settings: seconds with fractions, defaults for missing or bad values', () => {
  const s = deliverySettings({ raw: { SMTP_CONNECT_TIMEOUT: '2.5', SMTP_HOST_RETRY: 'soon', DNS_ATTEMPTS: '3' } });
  assert.equal(s.connectTimeoutMs, 2500);
  assert.equal(s.hostRetryMs, 300_000);
  assert.equal(s.dnsAttempts, 3);
  assert.equal(s.greetingTimeoutMs, 300_000, 'RFC 5321 §4.5.3.2: 5 minutes for the greeting');
  assert.equal(s.dataTimeoutMs, 600_000, '10 minutes for the final dot');
});
