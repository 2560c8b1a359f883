// The pure parts of the LDAP source: RFC 4515 escaping and the filters built with it (checked
// also by ldapts's own filter parser, which is what sends them), object class sets, the TTL
// cache, and what an entry is to the directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FilterParser, EqualityFilter, AndFilter, OrFilter } from 'ldapts';
import { allOf, anyOf, equalityFilter, escapeFilterValue, hasObjectClasses, objectClassFilter } from '../../src/directory/ldap-filter.js';
import { TtlCache } from '../../src/directory/ttl-cache.js';
import { attributeValues, directoryUserOf, entryKind, recipientOf } from '../../src/directory/ldap-entries.js';
import { LDAP_DEFAULTS } from '../../src/config/ldap-options.js';

test('escapeFilterValue: the five characters RFC 4515 requires, ASCII controls; other characters as they are', () => {
  const cases: Array<[string, string]> = [
    ['alice@example.com', 'alice@example.com'],
    ['*', '\\2a'],
    ['*)(uid=*', '\\2a\\29\\28uid=\\2a'],
    ['a\\b', 'a\\5cb'],
    ['nul\0byte', 'nul\\00byte'],
    ['tab\there\r\n', 'tab\\09here\\0d\\0a'],
    ['del\x7f', 'del\\7f'],
    ['jösé@exämple.com', 'jösé@exämple.com'],
    ['日本@example.jp', '日本@example.jp'],
    ['', ''],
  ];
  for (const [raw, escaped] of cases) assert.equal(escapeFilterValue(raw), escaped, JSON.stringify(raw));
});

test('an escaped value stays one equality assertion whatever it holds: the parser reads back the exact value', () => {
  const hostile = ['*', '*)(uid=*', 'x)(|(objectClass=*', 'a*b*c', '\\2a', 'a\0b', '(', ')', 'alice)(&)', 'jösé*'];
  for (const value of hostile) {
    const parsed = FilterParser.parseString(equalityFilter('mail', value));
    assert.ok(parsed instanceof EqualityFilter, `${JSON.stringify(value)} parsed as ${parsed.constructor.name}`);
    assert.deepEqual([(parsed).attribute, (parsed).value], ['mail', value]);
  }
  // Unescaped, the first one would have been a presence filter matching every entry.
  assert.equal(FilterParser.parseString('(mail=*)').constructor.name, 'PresenceFilter');
});

test('filters: any of / all of, object class sets; an entry belongs to a set when it has every class of it (any case)', () => {
  assert.equal(anyOf(['(a=1)']), '(a=1)');
  assert.equal(anyOf(['(a=1)', '(b=2)']), '(|(a=1)(b=2))');
  assert.equal(allOf(['(a=1)', '(b=2)']), '(&(a=1)(b=2))');
  const sets = [['inetLocalMailRecipient', 'inetMailUser'], ['mailRecipient']];
  const f = objectClassFilter(sets);
  assert.equal(f, '(|(&(objectClass=inetLocalMailRecipient)(objectClass=inetMailUser))(objectClass=mailRecipient))');
  assert.ok(FilterParser.parseString(f) instanceof OrFilter);
  assert.ok(FilterParser.parseString(allOf([f, equalityFilter('mail', '*')])) instanceof AndFilter);
  assert.equal(hasObjectClasses(['top', 'INETMAILUSER', 'inetLocalMailRecipient'], sets), true);
  assert.equal(hasObjectClasses(['top', 'inetMailUser'], sets), false);
  assert.equal(hasObjectClasses(['mailrecipient'], sets), true);
});

test('TtlCache: answers until their time to live, least recently used out first when full, 0 means not kept', () => {
  let now = 1000;
  const cache = new TtlCache<string>(2, () => now);
  cache.set('a', 'A', 100);
  cache.set('b', 'B', 50);
  assert.equal(cache.get('a'), 'A'); // a is now the most recently used
  cache.set('c', 'C', 100);
  assert.deepEqual([cache.get('a'), cache.get('b'), cache.get('c'), cache.size], ['A', undefined, 'C', 2]);
  now += 100;
  assert.deepEqual([cache.get('a'), cache.get('c'), cache.size], [undefined, undefined, 0]);
  cache.set('z', 'Z', 0);
  assert.equal(cache.get('z'), undefined);
  const none = new TtlCache<string>(0, () => now);
  none.set('a', 'A', 1000);
  assert.equal(none.get('a'), undefined);
});

const opts = { userObjectClasses: [['inetMailUser']], groupObjectClasses: [['inetMailGroup']], attributes: { ...LDAP_DEFAULTS.attributes } };

test('entries: users with delivery options (mailbox by default, forward, others kept), groups with owners; attribute names in any case', () => {
  const alice = { dn: 'uid=alice,o=x', objectClass: ['top', 'inetOrgPerson', 'inetMailUser'], UID: 'Alice', mail: 'alice@example.com', mailAlternateAddress: ['ali@example.com', 'a.s@example.com'], mailequivalentaddress: 'alice@old.example' };
  assert.equal(entryKind(alice, opts), 'user');
  assert.deepEqual(attributeValues(alice, 'Uid'), ['Alice']);
  assert.deepEqual(recipientOf(alice, opts, 'ali@example.com'), { kind: 'user', user: 'Alice', address: 'alice@example.com', mailbox: 'alice', forwarding: [], deliveryOptions: ['mailbox'] });
  assert.deepEqual(directoryUserOf(alice, opts.attributes), { name: 'Alice', addresses: ['alice@example.com', 'ali@example.com', 'a.s@example.com', 'alice@old.example'], admin: false });

  const forwarder = { dn: 'uid=bob,o=x', objectClass: 'inetMailUser', uid: 'bob', mailDeliveryOption: ['Forward', 'mailbox', 'autoreply'], mailForwardingAddress: ['bob@elsewhere.example'] };
  assert.deepEqual(recipientOf(forwarder, opts, 'bob@example.com'), { kind: 'user', user: 'bob', address: 'bob@example.com', mailbox: 'bob', forwarding: ['bob@elsewhere.example'], deliveryOptions: ['forward', 'mailbox', 'autoreply'] });
  // forwarding addresses without the forward option are not used (Messaging Server's rule)
  const idle = { ...forwarder, mailDeliveryOption: 'hold' };
  assert.deepEqual(recipientOf(idle, opts, 'bob@example.com'), { kind: 'user', user: 'bob', address: 'bob@example.com', mailbox: null, forwarding: [], deliveryOptions: ['hold'] });
  // a uid that cannot name a mailbox directory gives no mailbox
  assert.equal((recipientOf({ ...alice, uid: '../x', UID: undefined }, opts, 'a@x') as { mailbox: unknown }).mailbox, null);

  const group = { dn: 'cn=staff,o=x', objectClass: ['inetMailGroup'], cn: 'staff', mail: 'staff@example.com', mgrpErrorsTo: 'mailto:owner@example.com' };
  assert.deepEqual(recipientOf(group, opts, 'staff@example.com'), { kind: 'group', id: 'cn=staff,o=x', address: 'staff@example.com', owner: 'owner@example.com', selfMailbox: null });
  assert.equal((recipientOf({ ...group, mgrpErrorsTo: 'ldap:///uid=x,o=y' }, opts, 'staff@example.com') as { owner: unknown }).owner, null);
  assert.deepEqual(recipientOf({ dn: 'cn=printer,o=x', objectClass: ['device'] }, opts, 'p@example.com'), { kind: 'none' });
});
