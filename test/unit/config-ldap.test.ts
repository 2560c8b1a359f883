// The LDAP options of option.dat: defaults, servers in every accepted form, attribute and
// object class names, the password file (its checks and its permissions), and every problem
// reported at its file:line.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseOptionDat } from '../../src/config/option-dat.js';
import { serverUrl } from '../../src/config/ldap-options.js';
import type { Diagnostic } from '../../src/config/types.js';
import { makeInstance, type TestInstance } from '../helpers/instance.js';

const instances: TestInstance[] = [];
after(() => instances.forEach((i) => i.remove()));

function options(text: string, files: Record<string, string> = {}, modes: Record<string, number> = {}) {
  const inst = makeInstance({ files: { 'etc/option.dat': text, ...files } });
  instances.push(inst);
  for (const [rel, mode] of Object.entries(modes)) chmodSync(join(inst.root, rel), mode);
  const diagnostics: Diagnostic[] = [];
  const config = parseOptionDat(join(inst.root, 'etc/option.dat'), diagnostics);
  const where = diagnostics.map((d) => `${relative(inst.root, d.file)}:${d.line}: ${d.severity}: ${d.message}`);
  return { config, diagnostics, where, root: inst.root };
}

test('no LDAP_HOST: no LDAP, and other LDAP options only warn that they have no effect', () => {
  assert.equal(options('').config.ldap, null);
  const { config, where } = options('LDAP_USER_ROOT=o=example\nALIAS_ENTRY_CACHE_SIZE=5\n');
  assert.equal(config.ldap, null);
  assert.deepEqual(where, ['etc/option.dat:1: warning: LDAP_USER_ROOT has no effect without LDAP_HOST']);
});

test('LDAP defaults: Messaging Server schema attributes, port 389, anonymous, cache with negative answers', () => {
  const { config, diagnostics } = options('LDAP_HOST=ldap.example.com\nLDAP_USER_ROOT=ou=People, o=example.com\n');
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(config.ldap, {
    servers: ['ldap://ldap.example.com:389'],
    bindDn: null,
    passwordFile: null,
    userRoot: 'ou=People, o=example.com',
    searchFilter: null,
    timeoutMs: 5000,
    connections: 4,
    authConnections: 2,
    reconnectMinMs: 500,
    reconnectMaxMs: 30000,
    cache: { size: 10000, ttlMs: 600000, negative: true, negativeTtlMs: 60000 },
    userObjectClasses: [['inetMailUser']],
    groupObjectClasses: [['inetMailGroup']],
    attributes: {
      uid: 'uid',
      mail: 'mail',
      alternateAddress: 'mailAlternateAddress',
      equivalentAddress: 'mailEquivalentAddress',
      forwardingAddress: 'mailForwardingAddress',
      deliveryOption: 'mailDeliveryOption',
      groupRfc822Member: 'mgrpRFC822MailMember',
      groupDnMember: 'uniqueMember',
      errorsTo: 'mgrpErrorsTo',
    },
    domains: { root: 'ou=People, o=example.com', objectClasses: [['sunManagedOrganization'], ['domain']], attributes: ['sunPreferredDomain', 'associatedDomain'], refreshMs: 600000 },
  });
});

test('LDAP_HOST: several servers as host, host:port, IPv6 and URLs; LDAP_PORT applies to the bare ones', () => {
  const { config, diagnostics } = options('LDAP_HOST=ldap1.example.com 192.0.2.9:1389, [2001:db8::9]:3389 ldaps://ldap2.example.com ldap://ldap3.example.com:10389/\nLDAP_PORT=3389\nLDAP_USER_ROOT=o=example\n');
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(config.ldap!.servers, ['ldap://ldap1.example.com:3389', 'ldap://192.0.2.9:1389', 'ldap://[2001:db8::9]:3389', 'ldaps://ldap2.example.com:636', 'ldap://ldap3.example.com:10389']);
  assert.equal(serverUrl('2001:db8::1', 389), 'ldap://[2001:db8::1]:389');
  for (const bad of ['ldap://h/o=x', 'http://h', 'h:0', 'h:70000', 'bad_host', 'ldap://', '[zz]:1']) assert.equal(serverUrl(bad, 389), null, bad);
});

test('LDAP options: names, numbers, object class sets and a filter as written', () => {
  const { config, diagnostics } = options(
    [
      'LDAP_HOST=127.0.0.1',
      'LDAP_USER_ROOT=dc=example,dc=test',
      'LDAP_SEARCH_FILTER=(!(mailUserStatus=inactive))',
      'LDAP_TIMEOUT=0.25',
      'LDAP_CONNECTIONS=8',
      'LDAP_AUTH_CONNECTIONS=1',
      'LDAP_RECONNECT_MIN=0.1',
      'LDAP_RECONNECT_MAX=2',
      'LDAP_USER_OBJECT_CLASSES=inetLocalMailRecipient+inetMailUser, mailRecipient + nsMessagingServerUser',
      'LDAP_GROUP_OBJECT_CLASSES=groupOfUniqueNames',
      'LDAP_PRIMARY_ADDRESS=rfc822Mailbox',
      'LDAP_GROUP_RFC822=rfc822MailMember',
      'LDAP_UID=2.5.4.3',
      'ALIAS_ENTRY_CACHE_SIZE=0',
      'ALIAS_ENTRY_CACHE_TIMEOUT=30',
      'ALIAS_ENTRY_CACHE_NEGATIVE=0',
      'ALIAS_ENTRY_CACHE_NEGATIVE_TIMEOUT=5',
    ].join('\n'),
  );
  assert.deepEqual(diagnostics, []);
  const ldap = config.ldap!;
  assert.equal(ldap.searchFilter, '(!(mailUserStatus=inactive))');
  assert.deepEqual([ldap.timeoutMs, ldap.connections, ldap.authConnections, ldap.reconnectMinMs, ldap.reconnectMaxMs], [250, 8, 1, 100, 2000]);
  assert.deepEqual(ldap.userObjectClasses, [['inetLocalMailRecipient', 'inetMailUser'], ['mailRecipient', 'nsMessagingServerUser']]);
  assert.deepEqual(ldap.groupObjectClasses, [['groupOfUniqueNames']]);
  assert.deepEqual([ldap.attributes.mail, ldap.attributes.groupRfc822Member, ldap.attributes.uid, ldap.attributes.alternateAddress], ['rfc822Mailbox', 'rfc822MailMember', '2.5.4.3', 'mailAlternateAddress']);
  assert.deepEqual(ldap.cache, { size: 0, ttlMs: 30000, negative: false, negativeTtlMs: 5000 });
});

test('LDAP problems are errors at their lines: no base DN, bad DNs, filter, attribute names, numbers, servers', () => {
  const { where } = options(
    [
      'LDAP_HOST=ldap.example.com bad_host',
      'LDAP_USERNAME=ldap.example.com',
      'LDAP_SEARCH_FILTER=(mail=*',
      'LDAP_ALIAS_ADDRESSES=mail alternate',
      'LDAP_TIMEOUT=0',
      'LDAP_CONNECTIONS=0',
      'LDAP_RECONNECT_MIN=5',
      'LDAP_RECONNECT_MAX=1',
      'ALIAS_ENTRY_CACHE_NEGATIVE=yes',
      'LDAP_USER_OBJECT_CLASSES=inetMailUser+',
      'LDAP_GROUP_OBJECT_CLASSES=(objectClass=x)',
    ].join('\n'),
  );
  // file:line: severity: the first words of the message
  const lines = where.map((w) => w.split(' ').slice(0, 4).join(' '));
  assert.deepEqual(lines, [
    'etc/option.dat:1: error: LDAP_HOST: "bad_host"',
    'etc/option.dat:1: error: LDAP_HOST needs',
    'etc/option.dat:2: error: LDAP_USERNAME "ldap.example.com"',
    'etc/option.dat:2: error: LDAP_USERNAME needs',
    'etc/option.dat:3: error: LDAP_SEARCH_FILTER "(mail=*"',
    'etc/option.dat:4: error: LDAP_ALIAS_ADDRESSES must',
    'etc/option.dat:8: error: LDAP_RECONNECT_MAX must',
    'etc/option.dat:9: error: ALIAS_ENTRY_CACHE_NEGATIVE must',
    'etc/option.dat:5: error: LDAP_TIMEOUT must',
    'etc/option.dat:6: error: LDAP_CONNECTIONS must',
    'etc/option.dat:10: error: LDAP_USER_OBJECT_CLASSES must',
    'etc/option.dat:11: error: LDAP_GROUP_OBJECT_CLASSES must',
  ]);
});

test('the bind password: never in option.dat; in a file that must exist, be non-empty and should not be readable by others', () => {
  const base = 'LDAP_HOST=127.0.0.1\nLDAP_USER_ROOT=o=example\nLDAP_USERNAME=cn=mta,o=example\n';
  const good = options(`${base}LDAP_PASSWORD_FILE=ldap.secret\n`, { 'etc/ldap.secret': 'pw\n' }, { 'etc/ldap.secret': 0o600 });
  assert.deepEqual(good.diagnostics, []);
  assert.equal(good.config.ldap!.passwordFile, join(good.root, 'etc/ldap.secret'));
  assert.equal(good.config.ldap!.bindDn, 'cn=mta,o=example');
  assert.ok(!JSON.stringify(good.config).includes('"pw'), 'the password is not part of the configuration');

  const open = options(`${base}LDAP_PASSWORD_FILE=ldap.secret\n`, { 'etc/ldap.secret': 'pw\n' }, { 'etc/ldap.secret': 0o644 });
  assert.deepEqual(open.where.map((w) => w.split(' ').slice(0, 3).join(' ')), ['etc/option.dat:4: warning: LDAP_PASSWORD_FILE']);
  assert.match(open.where[0]!, /readable by every user of the host \(mode 0644\): chmod 600/);

  const missing = options(`${base}LDAP_PASSWORD_FILE=/nonexistent/ldap.secret\n`);
  assert.deepEqual(missing.where, ['etc/option.dat:4: error: LDAP_PASSWORD_FILE /nonexistent/ldap.secret: cannot read it: ENOENT']);
  const empty = options(`${base}LDAP_PASSWORD_FILE=ldap.secret\n`, { 'etc/ldap.secret': '' }, { 'etc/ldap.secret': 0o600 });
  assert.match(empty.where.join('\n'), /^etc\/option.dat:4: error: LDAP_PASSWORD_FILE .* is empty/);

  const inline = options(`${base}LDAP_PASSWORD=hunter2\nLDAP_PASSWORD_FILE=ldap.secret\n`, { 'etc/ldap.secret': 'pw' }, { 'etc/ldap.secret': 0o600 });
  assert.deepEqual(inline.where.map((w) => w.split(' ').slice(0, 7).join(' ')), ['etc/option.dat:4: error: LDAP_PASSWORD is not read from']);
  assert.ok(!inline.where.join('').includes('hunter2'), 'the diagnostic does not quote the password');

  const fileWithoutDn = options('LDAP_HOST=127.0.0.1\nLDAP_USER_ROOT=o=example\nLDAP_PASSWORD_FILE=ldap.secret\n', { 'etc/ldap.secret': 'pw' }, { 'etc/ldap.secret': 0o600 });
  assert.deepEqual(fileWithoutDn.where.map((w) => w.split(' ').slice(0, 5).join(' ')), ['etc/option.dat:3: error: LDAP_PASSWORD_FILE needs LDAP_USERNAME,']);
});
