// The recipient side of the directory with the files source (mailbox/ directories and
// etc/aliases), and list expansion for any source: alias targets, :include: files (missing,
// not a file, nested, looping), loops through groups and through forwarding, nesting limits,
// one copy per mailbox, streaming with bounded look-ahead, and an unavailable directory
// ending the expansion.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadInstanceConfigOrThrow } from '../../src/config/load.js';
import {
  aliasMember,
  expandRecipient,
  filesRecipients,
  includeLineTargets,
  type ExpandedRecipient,
  type ExpandOptions,
  type ListMember,
  type RecipientDirectory,
  type RecipientLookup,
} from '../../src/directory/index.js';
import { makeInstance, type TestInstance } from '../helpers/instance.js';

const instances: TestInstance[] = [];
after(() => instances.forEach((i) => i.remove()));

const IMTA = `example.com  $U%$D@localhost\n.  $U%$H@tcp-daemon\n\nl\nlocalhost\n\ntcp_local smtp\ntcp-daemon\n`;

/** An instance with mailboxes alice, bob, carol and root, and these aliases. */
function filesInstance(aliases: string): TestInstance {
  const inst = makeInstance({ files: { 'etc/imta.cnf': IMTA, 'etc/aliases': aliases } });
  instances.push(inst);
  for (const user of ['alice', 'bob', 'carol', 'root']) mkdirSync(join(inst.root, 'mailbox', user), { recursive: true });
  return inst;
}

function filesDirectory(aliases: string) {
  return { dir: filesRecipients(loadInstanceConfigOrThrow(filesInstance(aliases).root)) };
}

const local: ExpandOptions = { isLocal: (a) => a.toLowerCase().endsWith('@example.com') };

async function expand(dir: RecipientDirectory, address: string, opts: ExpandOptions = local): Promise<ExpandedRecipient[]> {
  const out: ExpandedRecipient[] = [];
  for await (const item of expandRecipient(dir, address, opts)) out.push(item);
  return out;
}

/** One short line per item: what an operator would read in the log. */
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
        return `failed ${i.reason} ${i.member}: ${i.why}`;
      case 'unavailable':
        return `unavailable: ${i.why}`;
    }
  });
}

test('aliasMember: the target forms of etc/aliases and :include: files', () => {
  const cases: Array<[string, ListMember | null]> = [
    ['', null],
    ['  bob ', { kind: 'local', name: 'bob' }],
    ['Bob+Tag', { kind: 'local', name: 'Bob+Tag' }],
    ['carol@remote.example', { kind: 'address', address: 'carol@remote.example' }],
    ['<carol@remote.example>', { kind: 'address', address: 'carol@remote.example' }],
    ['"a b"@example.com', { kind: 'address', address: '"a b"@example.com' }],
    ['/dev/null', { kind: 'discard' }],
    [':include:/etc/lists/staff', { kind: 'include', path: '/etc/lists/staff' }],
    [':INCLUDE: /etc/lists/staff', { kind: 'include', path: '/etc/lists/staff' }],
    [':include:lists/staff', { kind: 'invalid', member: ':include:lists/staff', why: ':include: needs an absolute path' }],
    ['|/usr/bin/vacation', { kind: 'invalid', member: '|/usr/bin/vacation', why: 'delivery to a program is not supported' }],
    ['/var/mail/archive', { kind: 'invalid', member: '/var/mail/archive', why: 'delivery to a file is not supported' }],
    ['a@b@c', { kind: 'invalid', member: 'a@b@c', why: 'not an address (local-part@domain)' }],
    ['..', { kind: 'invalid', member: '..', why: 'not a user name' }],
  ];
  for (const [target, expected] of cases) assert.deepEqual(aliasMember(target), expected, target);
  assert.deepEqual(includeLineTargets('alice, bob@example.com ,, carol'), ['alice', 'bob@example.com', 'carol']);
  assert.deepEqual(includeLineTargets('  # a comment, with commas'), []);
});

test('files source: users are mailbox/ directories (postmaster always), groups are aliases; +tag, case and quotes', async () => {
  const { dir } = filesDirectory('staff: alice, bob\nowner-staff: alice\nbob+lists: carol\nroot: root, alice\n');
  const user = (name: string, address: string): RecipientLookup => ({ kind: 'user', user: name, address, mailbox: name, forwarding: [], deliveryOptions: ['mailbox'] });
  assert.deepEqual(await dir.findRecipient('alice@example.com'), user('alice', 'alice@example.com'));
  assert.deepEqual(await dir.findRecipient('<Alice+News@Example.COM>'), user('alice', 'Alice+News@example.com'));
  assert.deepEqual(await dir.findRecipient('"alice"@example.com'), user('alice', 'alice@example.com'));
  assert.deepEqual(await dir.findRecipient('postmaster@example.com'), user('postmaster', 'postmaster@example.com'));
  assert.deepEqual(await dir.findRecipient('Staff@example.com'), { kind: 'group', id: 'staff', address: 'staff@example.com', owner: 'owner-staff@example.com', selfMailbox: 'staff' });
  assert.deepEqual(await dir.findRecipient('owner-staff@example.com'), { kind: 'group', id: 'owner-staff', address: 'owner-staff@example.com', owner: null, selfMailbox: 'owner-staff' });
  // user+tag: the alias for the whole local part wins, else the base user's.
  assert.equal(((await dir.findRecipient('bob+lists@example.com')) as { id: string }).id, 'bob+lists');
  assert.equal((await dir.findRecipient('bob+other@example.com')).kind, 'user');
  for (const nobody of ['dave@example.com', '../alice@example.com', '"a/b"@example.com', 'alice', '@route:alice@example.com', '']) {
    assert.deepEqual(await dir.findRecipient(nobody), { kind: 'none' }, nobody);
  }
});

test('expansion: members, owners as list context, root: root, nested and repeated lists give one copy each', async () => {
  const { dir } = filesDirectory(
    ['staff: alice, bob', 'owner-staff: alice', 'team: carol, staff, Alice', 'all: team, staff, bob@example.com, dave@remote.example, DAVE@remote.example', 'root: root, alice', 'noreply: /dev/null'].join('\n'),
  );
  const staff = await expand(dir, 'staff@example.com');
  assert.deepEqual(brief(staff), ['mailbox alice', 'mailbox bob']);
  assert.deepEqual(staff[0], { kind: 'mailbox', mailbox: 'alice', address: 'alice@example.com', list: { address: 'staff@example.com', owner: 'owner-staff@example.com' }, via: ['staff@example.com'] });

  const all = await expand(dir, 'all@example.com');
  assert.deepEqual(brief(all), ['mailbox carol', 'mailbox alice', 'mailbox bob', 'route dave@remote.example']);
  const carol = all[0] as Extract<ExpandedRecipient, { kind: 'mailbox' }>;
  assert.deepEqual([carol.via, carol.list], [['all@example.com', 'team@example.com'], { address: 'team@example.com', owner: null }]);
  // Members of staff keep staff's owner as envelope sender even when reached through team.
  assert.deepEqual((all[1] as { list: unknown }).list, { address: 'staff@example.com', owner: 'owner-staff@example.com' });

  assert.deepEqual(brief(await expand(dir, 'root@example.com')), ['mailbox root', 'mailbox alice']);
  assert.deepEqual(brief(await expand(dir, 'noreply@example.com')), ['discard']);
  assert.deepEqual(brief(await expand(dir, 'bob@example.com')), ['mailbox bob']);
});

test('expansion: loops are reported with their path; too deep nesting fails; unknown and invalid members are reported, never dropped', async () => {
  const chain = Array.from({ length: 25 }, (_, i) => `deep${i}: deep${i + 1}`).join('\n');
  const { dir } = filesDirectory(
    ['a: b', 'b: c, alice', 'c: a', 'self: bob, self2', 'self2: self', 'odd: nobody, |/bin/prog, /tmp/file, :include:relative, bob', chain].join('\n'),
  );
  assert.deepEqual(brief(await expand(dir, 'a@example.com')), ['failed loop a@example.com: loop: a@example.com → b@example.com → c@example.com → a@example.com', 'mailbox alice']);
  assert.deepEqual(brief(await expand(dir, 'self@example.com')), ['mailbox bob', 'failed loop self@example.com: loop: self@example.com → self2@example.com → self@example.com']);
  assert.deepEqual(brief(await expand(dir, 'odd@example.com')), [
    'failed unknown nobody@example.com: no such user: nobody@example.com',
    'failed invalid |/bin/prog: delivery to a program is not supported',
    'failed invalid /tmp/file: delivery to a file is not supported',
    'failed invalid :include:relative: :include: needs an absolute path',
    'mailbox bob',
  ]);
  const deep = await expand(dir, 'deep0@example.com');
  assert.equal(deep.length, 1);
  assert.match(brief(deep)[0]!, /^failed too-deep deep20@example.com: nested more than 20 levels deep$/);
  assert.deepEqual(brief(await expand(dir, 'nobody@example.com')), ['failed unknown nobody@example.com: no such user: nobody@example.com']);
});

test(':include: files: members one a line or comma-separated with comments; missing, not a file, and looping files are reported', async () => {
  const inst = filesInstance('');
  const lists = join(inst.root, 'lists');
  inst.write('lists/staff', '# the staff\nalice, bob@example.com\n\ncarol@remote.example\n:include:' + join(lists, 'more') + '\n');
  inst.write('lists/more', 'root\n/dev/null\n');
  inst.write('lists/self', 'alice\n:include:' + join(lists, 'self') + '\n');
  mkdirSync(join(lists, 'adir'));
  inst.write('etc/aliases', `staff: :include:${join(lists, 'staff')}\nmissing: alice, :include:${join(lists, 'nope')}, bob\ndirectory: :include:${join(lists, 'adir')}\nself: :include:${join(lists, 'self')}\n`);
  const d = filesRecipients(loadInstanceConfigOrThrow(inst.root));
  assert.deepEqual(brief(await expand(d, 'staff@example.com')), ['mailbox alice', 'mailbox bob', 'route carol@remote.example', 'mailbox root', 'discard']);
  const missing = await expand(d, 'missing@example.com');
  assert.deepEqual(brief(missing), ['mailbox alice', `failed include :include:${join(lists, 'nope')}: cannot read ${join(lists, 'nope')}: ENOENT`, 'mailbox bob']);
  assert.deepEqual((missing[1] as { list: unknown }).list, { address: 'missing@example.com', owner: null });
  assert.deepEqual(brief(await expand(d, 'directory@example.com')), [`failed include :include:${join(lists, 'adir')}: cannot read ${join(lists, 'adir')}: not a regular file`]);
  assert.deepEqual(brief(await expand(d, 'self@example.com')), ['mailbox alice', `failed loop :include:${join(lists, 'self')}: loop: :include:${join(lists, 'self')} → :include:${join(lists, 'self')}`]);
});

/** A directory held in memory, for what the files source cannot express (forwarding, unavailability) and to count lookups. */
class MemoryDirectory implements RecipientDirectory {
  readonly source = 'memory';
  lookups = 0;
  constructor(
    private readonly entries: Record<string, RecipientLookup>,
    private readonly groups: Record<string, () => AsyncIterable<ListMember>> = {},
  ) {}
  async findRecipient(address: string): Promise<RecipientLookup> {
    this.lookups++;
    return this.entries[address.toLowerCase()] ?? { kind: 'none' };
  }
  listMembers(id: string): AsyncIterable<ListMember> {
    return this.groups[id]!();
  }
}

const userOf = (name: string, extra: Partial<Extract<RecipientLookup, { kind: 'user' }>> = {}): RecipientLookup => ({
  kind: 'user',
  user: name,
  address: `${name}@example.com`,
  mailbox: name,
  forwarding: [],
  deliveryOptions: ['mailbox'],
  ...extra,
});

test('forwarding: a copy in the mailbox and one to each forwarding address; forwarding that comes back is a loop; no delivery option acted on is reported', async () => {
  const dir = new MemoryDirectory({
    'ann@example.com': userOf('ann', { forwarding: ['ann@elsewhere.example', 'ben@example.com'], deliveryOptions: ['mailbox', 'forward'] }),
    'ben@example.com': userOf('ben', { mailbox: null, forwarding: ['cat@example.com'], deliveryOptions: ['forward'] }),
    'cat@example.com': userOf('cat', { mailbox: null, forwarding: ['ben@example.com'], deliveryOptions: ['forward'] }),
    'held@example.com': userOf('held', { mailbox: null, deliveryOptions: ['hold'] }),
  });
  assert.deepEqual(brief(await expand(dir, 'ann@example.com')), [
    'mailbox ann',
    'route ann@elsewhere.example',
    'failed loop ben@example.com: loop: ben@example.com → cat@example.com → ben@example.com',
  ]);
  assert.deepEqual(brief(await expand(dir, 'held@example.com')), ['failed no-delivery held@example.com: held@example.com has no delivery option tsubame acts on (hold)']);
});

test('an unavailable directory ends the expansion with one unavailable item, wherever it happens; the member stream is closed', async () => {
  let closed = false;
  async function* members(): AsyncGenerator<ListMember> {
    try {
      yield { kind: 'address', address: 'ann@example.com' };
      yield { kind: 'address', address: 'down@example.com' };
      yield { kind: 'address', address: 'ann2@example.com' };
    } finally {
      closed = true;
    }
  }
  const dir = new MemoryDirectory(
    { 'list@example.com': { kind: 'group', id: 'list', address: 'list@example.com', owner: null, selfMailbox: null }, 'ann@example.com': userOf('ann'), 'down@example.com': { kind: 'unavailable', why: 'LDAP down' } },
    { list: members },
  );
  assert.deepEqual(brief(await expand(dir, 'list@example.com')), ['mailbox ann', 'unavailable: LDAP down']);
  assert.ok(closed);
  assert.deepEqual(brief(await expand(new MemoryDirectory({ 'x@example.com': { kind: 'unavailable', why: 'slow' } }), 'x@example.com')), ['unavailable: slow']);
  async function* failing(): AsyncGenerator<ListMember> {
    yield { kind: 'address', address: 'ann@example.com' };
    yield { kind: 'unavailable', why: 'connection lost while reading the group' };
  }
  const dir2 = new MemoryDirectory({ 'list@example.com': { kind: 'group', id: 'l', address: 'list@example.com', owner: null, selfMailbox: null }, 'ann@example.com': userOf('ann') }, { l: failing });
  assert.deepEqual(brief(await expand(dir2, 'list@example.com')), ['mailbox ann', 'unavailable: connection lost while reading the group']);
});

test('a 100,000-member list streams: members are read only a look-ahead window ahead of what the caller took', async () => {
  const N = 100_000;
  let produced = 0;
  let consumed = 0;
  let widest = 0;
  async function* members(): AsyncGenerator<ListMember> {
    for (let i = 0; i < N; i++) {
      produced++;
      widest = Math.max(widest, produced - consumed);
      // every tenth member is local (looked up), the rest are routed
      yield { kind: 'address', address: i % 10 === 0 ? `u${i}@example.com` : `r${i}@remote.example` };
    }
  }
  const entries: Record<string, RecipientLookup> = { 'big@example.com': { kind: 'group', id: 'big', address: 'big@example.com', owner: 'big-owner@example.com', selfMailbox: null } };
  for (let i = 0; i < N; i += 10) entries[`u${i}@example.com`] = userOf(`u${i}`);
  const dir = new MemoryDirectory(entries, { big: members });
  let mailboxes = 0;
  let routes = 0;
  for await (const item of expandRecipient(dir, 'big@example.com', { ...local, lookahead: 8 })) {
    consumed++;
    if (item.kind === 'mailbox') mailboxes++;
    else if (item.kind === 'route') routes++;
    else assert.fail(`unexpected ${JSON.stringify(item)}`);
  }
  assert.deepEqual([mailboxes, routes, produced], [N / 10, N - N / 10, N]);
  assert.equal(dir.lookups, 1 + N / 10, 'only local members are looked up');
  assert.ok(widest <= 8 + 2, `at most the look-ahead window is read ahead (widest gap ${widest})`);
});
