// The RCPT decision from the directory (directory/recipient-check.ts), with the files source and
// with directories that answer late or not at all: users, forwarding users and lists accepted;
// unknown addresses, lists whose members all fail, a list that only contains itself and a user
// with no delivery option refused; a directory that cannot answer is `unavailable`, never a
// refusal; the probe reads a list only until its first deliverable member (or a few failures).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadInstanceConfigOrThrow } from '../../src/config/load.js';
import { checkRecipient, filesRecipients, type ListMember, type RecipientDirectory, type RecipientLookup } from '../../src/directory/index.js';
import { makeInstance, type TestInstance } from '../helpers/instance.js';

const instances: TestInstance[] = [];
after(() => instances.forEach((i) => i.remove()));
const isLocal = (a: string) => a.toLowerCase().endsWith('@example.com');

function files(aliases: string): RecipientDirectory {
  const inst = makeInstance({ files: { 'etc/imta.cnf': 'example.com  $U%$D@localhost\n.  $U%$H@tcp-daemon\n\nl\nlocalhost\n\ntcp_local smtp\ntcp-daemon\n', 'etc/aliases': aliases } });
  instances.push(inst);
  for (const user of ['alice', 'bob']) mkdirSync(join(inst.root, 'mailbox', user), { recursive: true });
  return filesRecipients(loadInstanceConfigOrThrow(inst.root));
}

test('files: users, lists with a deliverable member, remote and /dev/null targets accepted; nobody to deliver to refused', async () => {
  const dir = files(
    ['team: ghost, alice', 'outside: friend@remote.example', 'void: /dev/null', 'ghosts: ghost, "nobody else"', 'program: |/bin/true', 'self: self', 'ping: pong', 'pong: ping', 'root: root'].join('\n'),
  );
  const verdict = async (a: string) => (await checkRecipient(dir, a, { isLocal })).kind;
  for (const a of ['alice@example.com', 'Bob+tag@example.com', 'postmaster@example.com', 'team@example.com', 'outside@example.com', 'void@example.com', 'root@example.com']) assert.equal(await verdict(a), 'accept', a);
  for (const a of ['carol@example.com', 'ghosts@example.com', 'program@example.com', 'ping@example.com']) assert.equal(await verdict(a), 'unknown', a);
  const loop = await checkRecipient(dir, 'ping@example.com', { isLocal });
  assert.deepEqual([loop.kind, loop.kind === 'unknown' && loop.reason], ['unknown', 'loop']);
});

/** A directory of one list whose members are given; lookups of members answer as `member` says, counted. */
function listDirectory(members: ListMember[], member: (address: string) => RecipientLookup) {
  const asked: string[] = [];
  let read = 0;
  const dir: RecipientDirectory = {
    source: 'test',
    async findRecipient(address) {
      if (address === 'list@example.com') return { kind: 'group', id: 'list', address, owner: 'owner@example.com', selfMailbox: null };
      asked.push(address);
      return member(address);
    },
    async *listMembers() {
      for (const m of members) {
        read++;
        yield m;
      }
    },
  };
  return { dir, asked, read: () => read };
}

const user = (address: string): RecipientLookup => ({ kind: 'user', user: address.split('@')[0]!, address, mailbox: address.split('@')[0]!, forwarding: [], deliveryOptions: ['mailbox'] });

test('a list is read only until its first deliverable member, or accepted after the probe limit of failures', async () => {
  const members = Array.from({ length: 1000 }, (_, i): ListMember => ({ kind: 'address', address: `m${i}@example.com` }));
  const early = listDirectory(members, (a) => (a === 'm3@example.com' ? user(a) : { kind: 'none' }));
  assert.equal((await checkRecipient(early.dir, 'list@example.com', { isLocal })).kind, 'accept');
  assert.ok(early.read() < 20, `read ${early.read()} members`);
  const broken = listDirectory(members, () => ({ kind: 'none' }));
  assert.equal((await checkRecipient(broken.dir, 'list@example.com', { isLocal, probeLimit: 10 })).kind, 'accept');
  assert.ok(broken.read() < 40, `read ${broken.read()} members`);
});

test('a directory that cannot answer is unavailable (4xx), also part way through a list; a user with no delivery option is refused', async () => {
  const down: RecipientDirectory = { source: 'test', findRecipient: async () => ({ kind: 'unavailable', why: 'LDAP down' }), listMembers: async function* () {} };
  assert.deepEqual(await checkRecipient(down, 'alice@example.com', { isLocal }), { kind: 'unavailable', why: 'LDAP down' });
  const half = listDirectory([{ kind: 'address', address: 'gone@example.com' }, { kind: 'unavailable', why: 'connection lost' }], () => ({ kind: 'none' }));
  assert.deepEqual(await checkRecipient(half.dir, 'list@example.com', { isLocal }), { kind: 'unavailable', why: 'connection lost' });
  const thrown: RecipientDirectory = { source: 'test', findRecipient: async () => Promise.reject(new Error('socket closed')), listMembers: async function* () {} };
  assert.equal((await checkRecipient(thrown, 'alice@example.com', { isLocal })).kind, 'unavailable');
  const hold = listDirectory([], (a) => ({ ...user(a), mailbox: null, deliveryOptions: ['hold'] }));
  const r = await checkRecipient(hold.dir, 'dave@example.com', { isLocal });
  assert.deepEqual([r.kind, r.kind === 'unknown' && r.reason], ['unknown', 'no-delivery']);
});
