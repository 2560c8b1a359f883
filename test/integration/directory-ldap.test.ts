// The LDAP source against a real slapd started by the test: lookups of users (by mail,
// alternate and equivalent address, +tag, a domain's @domain catch-all), forwarding users, groups with owners and members by
// address and by DN, list expansion through it (nested groups, a group that contains itself
// directly and through another, a member that is gone), RFC 4515 injection attempts in local
// parts and logins, AUTH by binding as the user (right, wrong, unknown, empty password),
// caching of positive and negative answers, a wrong service password, and the directory going
// away (stopped: unavailable at once; hung: unavailable within LDAP_TIMEOUT, other lookups not
// held up) and coming back without anything being restarted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { parseOptionDat } from '../../src/config/option-dat.js';
import type { Diagnostic, LdapOptions } from '../../src/config/types.js';
import { LdapDirectory } from '../../src/directory/ldap-source.js';
import { expandRecipient, type ExpandedRecipient, type RecipientLookup } from '../../src/directory/index.js';
import { freePort, makeInstance, runCli, waitFor, type TestInstance } from '../helpers/instance.js';
import { groupLdif, ROOT_DN, ROOT_PASSWORD, startSlapd, SUFFIX, userLdif, type Slapd } from '../helpers/slapd.js';

let slapd: Slapd;
const instances: TestInstance[] = [];
const directories: LdapDirectory[] = [];
const people = (uid: string) => `uid=${uid},ou=People,${SUFFIX}`;
const group = (cn: string) => `cn=${cn},ou=Groups,${SUFFIX}`;

before(async () => {
  slapd = await startSlapd();
  await slapd.add(
    [
      userLdif('alice', { mailAlternateAddress: ['ali@example.test', 'a.smith@alias.example.test'], mailEquivalentAddress: 'alice@old.example.test', userPassword: 'alice-pw' }),
      userLdif('bob', { mailDeliveryOption: 'forward', mailForwardingAddress: 'bob@elsewhere.example', userPassword: 'bob-pw' }),
      userLdif('carol', { mailDeliveryOption: ['mailbox', 'forward'], mailForwardingAddress: ['carol@remote.example', 'alice@example.test'] }),
      userLdif('dave', { mailDeliveryOption: 'hold' }),
      // a person with an address but not a mail user
      `dn: uid=eve,ou=People,${SUFFIX}\nobjectClass: inetOrgPerson\nuid: eve\ncn: eve\nsn: eve\nmail: eve@example.test\nuserPassword: eve-pw\n`,
      userLdif('twin1', { mailAlternateAddress: 'twin@example.test' }),
      userLdif('twin2', { mailAlternateAddress: 'twin@example.test' }),
      // Messaging Server's catch-all: the mail of catchall.example.test's unknown addresses
      userLdif('frank', { mailAlternateAddress: ['frank@catchall.example.test', '@catchall.example.test'] }),
      userLdif('gina', { mail: 'gina@catchall.example.test' }),
      groupLdif('staff', { uniqueMember: [people('alice'), people('bob'), people('ghost')], mgrpRFC822MailMember: ['outside@remote.example', 'carol@example.test'], mgrpErrorsTo: 'mailto:staff-owner@example.test' }),
      groupLdif('all', { uniqueMember: [group('staff')], mgrpRFC822MailMember: ['alice@example.test', 'dave@example.test', 'nobody@example.test'] }),
      groupLdif('selfish', { mgrpRFC822MailMember: ['alice@example.test', 'selfish@example.test'] }),
      groupLdif('ping', { uniqueMember: group('pong'), mgrpRFC822MailMember: 'alice@example.test' }),
      groupLdif('pong', { uniqueMember: group('ping') }),
    ].join('\n'),
  );
});

after(async () => {
  for (const d of directories) await d.close();
  await slapd?.remove();
  for (const i of instances) i.remove();
});

/** LdapOptions as option.dat gives them, binding as the root DN with the password in a file. */
function ldapOptions(extra = '', password = ROOT_PASSWORD): LdapOptions {
  const inst = makeInstance({ files: { 'etc/ldap.secret': `${password}\n` } });
  instances.push(inst);
  chmodSync(join(inst.root, 'etc/ldap.secret'), 0o600);
  inst.write(
    'etc/option.dat',
    [`LDAP_HOST=127.0.0.1:${slapd.port}`, `LDAP_USER_ROOT=${SUFFIX}`, `LDAP_USERNAME=${ROOT_DN}`, 'LDAP_PASSWORD_FILE=ldap.secret', 'LDAP_TIMEOUT=0.5', 'LDAP_RECONNECT_MIN=0.05', 'LDAP_RECONNECT_MAX=0.2', extra].join('\n'),
  );
  const diagnostics: Diagnostic[] = [];
  const options = parseOptionDat(join(inst.root, 'etc/option.dat'), diagnostics);
  assert.deepEqual(diagnostics, []);
  return options.ldap!;
}

function directory(extra = '', password?: string): LdapDirectory {
  const d = new LdapDirectory(ldapOptions(extra, password));
  directories.push(d);
  return d;
}

const user = (name: string, extra: Partial<Extract<RecipientLookup, { kind: 'user' }>> = {}): RecipientLookup => ({
  kind: 'user',
  user: name,
  address: `${name}@example.test`,
  mailbox: name,
  forwarding: [],
  deliveryOptions: ['mailbox'],
  ...extra,
});

test('lookups: a user by each of its addresses (any case, +tag), forwarding users, a group, a non-mail entry, nobody', async () => {
  const d = directory();
  for (const address of ['alice@example.test', 'ALI@Example.Test', '<a.smith@alias.example.test>', 'alice@old.example.test', 'alice+news@example.test', '"alice"@example.test']) {
    assert.deepEqual(await d.findRecipient(address), user('alice'), address);
  }
  assert.deepEqual(await d.findRecipient('bob@example.test'), user('bob', { mailbox: null, forwarding: ['bob@elsewhere.example'], deliveryOptions: ['forward'] }));
  assert.deepEqual(await d.findRecipient('carol@example.test'), user('carol', { forwarding: ['carol@remote.example', 'alice@example.test'], deliveryOptions: ['mailbox', 'forward'] }));
  assert.deepEqual(await d.findRecipient('dave@example.test'), user('dave', { mailbox: null, deliveryOptions: ['hold'] }));
  assert.deepEqual(await d.findRecipient('staff@example.test'), { kind: 'group', id: group('staff'), address: 'staff@example.test', owner: 'staff-owner@example.test', selfMailbox: null });
  for (const nobody of ['eve@example.test', 'nobody@example.test', 'alice@other.example', 'not an address', '']) assert.deepEqual(await d.findRecipient(nobody), { kind: 'none' }, nobody);
  // Two entries with one address: a directory error, answered as a temporary failure, never a guess.
  const twin = await d.findRecipient('twin@example.test');
  assert.equal(twin.kind, 'unavailable');
  assert.match((twin as { why: string }).why, /2 entries have the address twin@example\.test/);
});

test('catch-all: an entry with the address @domain gets the mail of that domain\'s addresses nobody has; the others keep theirs', async () => {
  const d = directory();
  for (const address of ['anyone@catchall.example.test', 'Someone+tag@CATCHALL.example.test', 'frank@catchall.example.test', '"*)(uid=*"@catchall.example.test']) {
    assert.deepEqual(await d.findRecipient(address), user('frank'), address);
  }
  assert.deepEqual(await d.findRecipient('gina@catchall.example.test'), user('gina', { address: 'gina@catchall.example.test' }));
  assert.deepEqual(await d.findRecipient('gina+tag@catchall.example.test'), user('gina', { address: 'gina@catchall.example.test' }));
  // No catch-all in example.test: unknown stays unknown (550 5.1.1 at RCPT).
  assert.deepEqual(await d.findRecipient('anyone@example.test'), { kind: 'none' });
});

test('RFC 4515: filter characters in a local part or a login are literals; nothing widens a search', async () => {
  const d = directory();
  // Each of these, unescaped, would match alice or everyone (and bind as whoever matched).
  for (const address of ['*@example.test', 'ali*@example.test', '"*)(uid=*"@example.test', '"alice)(|(mail=*"@example.test', '"*)(mail=*"@example.test', 'a\\*@example.test']) {
    assert.deepEqual(await d.findRecipient(address), { kind: 'none' }, address);
  }
  for (const login of ['*', 'al*', 'alice)(uid=*', '*)(|(uid=*', 'alice\0', '*@example.test']) {
    const result = await d.authenticate(login, 'alice-pw');
    assert.deepEqual(result, { ok: false, reason: 'invalid', why: 'unknown-user' }, JSON.stringify(login));
  }
  assert.equal(d.stats.unavailable, 0, 'no search failed or matched more than one entry');
});

test('groups: members by address and by DN expand through the directory; nested groups; a member that is gone is reported', async () => {
  const d = directory();
  const members = [];
  for await (const m of d.listMembers(group('staff'))) members.push(m.kind === 'resolved' ? `${m.kind} ${m.member} ${m.lookup.kind}` : JSON.stringify(m));
  assert.deepEqual(members, [
    '{"kind":"address","address":"outside@remote.example"}',
    '{"kind":"address","address":"carol@example.test"}',
    `resolved ${people('alice')} user`,
    `resolved ${people('bob')} user`,
    `resolved ${people('ghost')} none`,
  ]);
  const items = await expand(d, 'all@example.test');
  assert.deepEqual(brief(items), [
    'mailbox alice',
    'failed no-delivery dave@example.test',
    'failed unknown nobody@example.test',
    'route outside@remote.example',
    'mailbox carol',
    'route carol@remote.example',
    'route bob@elsewhere.example',
    `failed unknown ${people('ghost')}`,
  ]);
  // staff's members go out with staff's owner as envelope sender; all has none.
  const outside = items.find((i) => i.kind === 'route' && i.address === 'outside@remote.example') as Extract<ExpandedRecipient, { kind: 'route' }>;
  assert.deepEqual([outside.list, outside.via], [{ address: 'staff@example.test', owner: 'staff-owner@example.test' }, ['all@example.test', 'staff@example.test']]);
  assert.equal((items[0] as { list: { owner: unknown } }).list.owner, null);
});

test('a group that contains itself, directly or through another group, is reported as a loop; its other members still get the mail', async () => {
  const d = directory();
  assert.deepEqual(brief(await expand(d, 'selfish@example.test')), ['mailbox alice', 'failed loop selfish@example.test: loop: selfish@example.test → selfish@example.test']);
  assert.deepEqual(brief(await expand(d, 'ping@example.test')), ['mailbox alice', `failed loop ${group('ping')}: loop: ping@example.test → pong@example.test → ping@example.test`]);
});

test('AUTH binds as the user: uid or address logins; wrong, unknown and empty passwords fail alike; sender ownership from the entry', async () => {
  const d = directory();
  const alice = { name: 'alice', addresses: ['alice@example.test', 'ali@example.test', 'a.smith@alias.example.test', 'alice@old.example.test'], admin: false };
  assert.deepEqual(await d.authenticate('alice', 'alice-pw'), { ok: true, user: alice });
  assert.deepEqual(await d.authenticate('ALI@example.test', 'alice-pw'), { ok: true, user: alice });
  assert.deepEqual(await d.authenticate('alice', 'wrong'), { ok: false, reason: 'invalid', why: 'wrong-password' });
  assert.deepEqual(await d.authenticate('alice', ''), { ok: false, reason: 'invalid', why: 'wrong-password' }, 'an empty password is never an anonymous bind');
  assert.deepEqual(await d.authenticate('mallory', 'alice-pw'), { ok: false, reason: 'invalid', why: 'unknown-user' });
  assert.deepEqual(await d.authenticate('eve', 'eve-pw'), { ok: false, reason: 'invalid', why: 'unknown-user' }, 'not a mail user');
  assert.deepEqual(await d.authenticate('bob', 'bob-pw'), { ok: true, user: { name: 'bob', addresses: ['bob@example.test'], admin: false } });
  // The second check of a user does not search again (cached entry), but always binds.
  const searches = d.stats.searches;
  assert.deepEqual(await d.authenticate('alice', 'wrong'), { ok: false, reason: 'invalid', why: 'wrong-password' });
  assert.equal(d.stats.searches, searches);
  // Concurrent checks share the two auth connections without mixing up who is bound.
  const burst = await Promise.all(Array.from({ length: 12 }, (_, i) => d.authenticate(i % 2 ? 'alice' : 'bob', i % 3 ? (i % 2 ? 'alice-pw' : 'bob-pw') : 'nope')));
  burst.forEach((r, i) => assert.equal(r.ok, i % 3 !== 0, `check ${i}: ${JSON.stringify(r)}`));
  assert.deepEqual(await d.addressesOf('alice'), { ok: true, addresses: alice.addresses });
  assert.deepEqual(await d.addressesOf('mallory'), { ok: false, reason: 'unknown-user' });
  assert.deepEqual(await d.maySendAs(alice, 'A.Smith+x@alias.example.test'), { ok: true, why: 'listed-address' });
  assert.deepEqual(await d.maySendAs(alice, 'bob@example.test'), { ok: false, reason: 'not-owner' });
  assert.deepEqual(await d.maySendAs(alice, 'alice@other.example'), { ok: false, reason: 'not-owner' });
});

test('answers are cached, negative ones too; concurrent lookups of one address share one search', async () => {
  const d = directory();
  await d.findRecipient('alice@example.test');
  await d.findRecipient('nobody@example.test');
  const searches = d.stats.searches;
  assert.deepEqual(await d.findRecipient('Alice@Example.Test'), user('alice'));
  assert.deepEqual(await d.findRecipient('nobody@example.test'), { kind: 'none' });
  assert.equal(d.stats.searches, searches);
  await Promise.all(Array.from({ length: 20 }, () => d.findRecipient('carol@example.test')));
  assert.equal(d.stats.searches, searches + 1);
  const noNegative = directory('ALIAS_ENTRY_CACHE_NEGATIVE=0');
  await noNegative.findRecipient('nobody@example.test');
  await noNegative.findRecipient('nobody@example.test');
  // Each: the address, then the domain's catch-all (@example.test), neither kept.
  assert.equal(noNegative.stats.searches, 4);
});

test('a wrong service password: every lookup is unavailable (not "no such user") and says why', async () => {
  const d = directory('', 'not-the-password');
  const r = await d.findRecipient('alice@example.test');
  assert.equal(r.kind, 'unavailable');
  assert.match((r as { why: string }).why, /Invalid ?Credentials|invalid credentials|0x31/i);
  assert.equal((await d.authenticate('alice', 'alice-pw')).ok, false);
});

test('imsimta test -alias asks LDAP when option.dat sets LDAP_HOST; exit 75 when the directory cannot be reached', async () => {
  const inst = makeInstance({ files: { 'etc/imta.cnf': 'example.test  $U%$D@localhost\n.  $U%$H@tcp-daemon\n\nl\nlocalhost\n\ntcp_local smtp\ntcp-daemon\n', 'etc/ldap.secret': ROOT_PASSWORD } });
  instances.push(inst);
  chmodSync(join(inst.root, 'etc/ldap.secret'), 0o600);
  const optionDat = (host: string) => [`LDAP_HOST=${host}`, `LDAP_USER_ROOT=${SUFFIX}`, `LDAP_USERNAME=${ROOT_DN}`, 'LDAP_PASSWORD_FILE=ldap.secret', 'LDAP_TIMEOUT=1'].join('\n');
  inst.write('etc/option.dat', optionDat(`ldap://127.0.0.1:${slapd.port}`));
  const r = await runCli('imsimta', ['test', '-alias', 'carol@example.test', 'staff@example.test'], { root: inst.root });
  assert.equal(r.code, 1, r.stderr); // staff has a member that is gone
  assert.equal(
    r.stdout,
    [
      'carol@example.test: user carol <carol@example.test> (delivery options: mailbox, forward; mailbox carol; forwarding to carol@remote.example, alice@example.test)',
      '  mailbox carol <carol@example.test>',
      '  route <carol@remote.example> → channel tcp_local   (via carol@example.test)',
      '  mailbox alice <alice@example.test>   (via carol@example.test)',
      `staff@example.test: group <staff@example.test> (${group('staff')}; owner staff-owner@example.test)`,
      '  route <outside@remote.example> → channel tcp_local from <staff-owner@example.test>   (via staff@example.test)',
      '  mailbox carol <carol@example.test>   (via staff@example.test)',
      '  route <carol@remote.example> → channel tcp_local from <staff-owner@example.test>   (via staff@example.test → carol@example.test)',
      '  mailbox alice <alice@example.test>   (via staff@example.test → carol@example.test)',
      '  route <bob@elsewhere.example> → channel tcp_local from <staff-owner@example.test>   (via staff@example.test → bob@example.test)',
      `  FAILED ${people('ghost')}: no such user: ${people('ghost')}   (via staff@example.test)`,
      '',
    ].join('\n'),
  );
  // A second server in the list is used when the first cannot be reached.
  const closed = await freePort();
  inst.write('etc/option.dat', optionDat(`127.0.0.1:${closed} ldap://127.0.0.1:${slapd.port}`));
  const failover = await runCli('imsimta', ['test', '-alias', 'alice@example.test'], { root: inst.root });
  assert.deepEqual([failover.code, failover.stdout.split('\n')[0]], [0, 'alice@example.test: user alice <alice@example.test> (delivery options: mailbox; mailbox alice)']);
  inst.write('etc/option.dat', optionDat(`127.0.0.1:${closed}`));
  const down = await runCli('imsimta', ['test', '-alias', 'alice@example.test'], { root: inst.root });
  assert.equal(down.code, 75);
  assert.match(down.stdout, /^alice@example.test: the directory cannot answer now: .*ECONNREFUSED/);
});

test('slapd stopped mid-run: unavailable at once, cached answers still served; started again: lookups work with nothing restarted', async () => {
  const d = directory();
  assert.deepEqual(await d.findRecipient('alice@example.test'), user('alice'));
  await slapd.stop();
  try {
    const started = Date.now();
    const results = await Promise.all(['bob@example.test', 'carol@example.test', 'staff@example.test', ...Array.from({ length: 20 }, (_, i) => `u${i}@example.test`)].map((a) => d.findRecipient(a)));
    const elapsed = Date.now() - started;
    for (const r of results) assert.equal(r.kind, 'unavailable');
    assert.ok(elapsed < 2000, `23 lookups answered in ${elapsed} ms (LDAP_TIMEOUT is 0.5 s)`);
    assert.deepEqual(await d.findRecipient('alice@example.test'), user('alice'), 'a cached answer is still served');
    assert.equal((await d.authenticate('alice', 'alice-pw')).ok, false);
    const items = await expand(d, 'staff@example.test');
    assert.deepEqual(items.map((i) => i.kind), ['unavailable']);
  } finally {
    await slapd.start();
  }
  const back = await waitFor(async () => {
    const r = await d.findRecipient('bob@example.test');
    return r.kind === 'user' ? r : null;
  }, { timeoutMs: 10_000, what: 'lookups to work again' });
  assert.equal(back.user, 'bob');
  assert.deepEqual(await d.authenticate('alice', 'alice-pw'), { ok: true, user: { name: 'alice', addresses: ['alice@example.test', 'ali@example.test', 'a.smith@alias.example.test', 'alice@old.example.test'], admin: false } });
});

test('slapd hung (SIGSTOP): a lookup is unavailable within LDAP_TIMEOUT, others are not queued behind it; it recovers on SIGCONT', async () => {
  const d = directory('ALIAS_ENTRY_CACHE_SIZE=0');
  assert.deepEqual(await d.findRecipient('alice@example.test'), user('alice'));
  slapd.pause();
  try {
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => d.findRecipient(`hung${i}@example.test`)));
    const elapsed = Date.now() - started;
    for (const r of results) assert.equal(r.kind, 'unavailable');
    assert.ok(elapsed < 2500, `10 lookups against a hung server answered in ${elapsed} ms`);
    // While the pool waits to reconnect, a lookup fails at once instead of waiting for the timeout again.
    const quick = Date.now();
    assert.equal((await d.findRecipient('alice@example.test')).kind, 'unavailable');
    assert.ok(Date.now() - quick < 700, `answered in ${Date.now() - quick} ms`);
  } finally {
    slapd.resume();
  }
  await waitFor(async () => (await d.findRecipient('alice@example.test')).kind === 'user', { timeoutMs: 10_000, what: 'lookups after SIGCONT' });
});

async function expand(d: LdapDirectory, address: string): Promise<ExpandedRecipient[]> {
  const out: ExpandedRecipient[] = [];
  for await (const item of expandRecipient(d, address, { isLocal: (a) => a.toLowerCase().endsWith('@example.test') })) out.push(item);
  return out;
}

function brief(items: ExpandedRecipient[]): string[] {
  return items.map((i) => {
    switch (i.kind) {
      case 'mailbox':
        return `mailbox ${i.mailbox}`;
      case 'route':
        return `route ${i.address}`;
      case 'discard':
        return 'discard';
      case 'failed':
        return i.reason === 'loop' ? `failed loop ${i.member}: ${i.why}` : `failed ${i.reason} ${i.member}`;
      case 'unavailable':
        return `unavailable: ${i.why}`;
    }
  });
}
