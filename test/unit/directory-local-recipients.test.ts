// One reading of a local recipient for the RCPT check and for delivery (issue 13, item 4):
// RFC 5321 quoting resolved to one canonical spelling, the user it names, etc/aliases with
// quoted names, mailbox directories of any case, and the verdict both sides act on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalLocalPart, unquoteLocalPart } from '../../src/rewrite/index.js';
import { expandLocal, localUser, localVerdict } from '../../src/directory/local-aliases.js';
import { parseAliases } from '../../src/config/aliases.js';
import { decideRecipient } from '../../src/smtp-server/recipient-policy.js';
import type { Channel } from '../../src/config/types.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

test('canonical local part: needless quotes go, needed ones stay with only " and \\ escaped', () => {
  const cases: Array<[string, string]> = [
    ['alice', 'alice'],
    ['"alice"', 'alice'],
    ['"al\\ice"', 'alice'],
    ['"Alice"', 'Alice'],
    ['"a.b+c"', 'a.b+c'],
    ['"alice "', '"alice "'],
    ['"alice@x"', '"alice@x"'],
    ['"a..b"', '"a..b"'],
    ['".a"', '".a"'],
    ['"a\\"b"', '"a\\"b"'],
    ['"a\\\\b"', '"a\\\\b"'],
    ['"sales(team)"', '"sales(team)"'],
    ['"s\\a\\l\\e\\s"', 'sales'],
    ['""', '""'],
  ];
  for (const [given, canonical] of cases) {
    assert.equal(canonicalLocalPart(given), canonical, given);
    assert.equal(canonicalLocalPart(canonical), canonical, `${canonical} is its own canonical form`);
  }
  assert.equal(unquoteLocalPart('"a\\"b"'), 'a"b');
  assert.equal(unquoteLocalPart('"alice@x"'), 'alice@x');
  assert.equal(unquoteLocalPart('alice'), 'alice');
});

test('the user a local part names: unquoted, lower case, +tag apart', () => {
  assert.deepEqual(localUser('"Alice+Tag"'), { full: 'alice+tag', base: 'alice' });
  assert.deepEqual(localUser('"al\\ice"'), { full: 'alice', base: 'alice' });
  assert.deepEqual(localUser('+tag'), { full: '+tag', base: '+tag' });
});

test('RCPT to the local channel is queued in the canonical spelling', () => {
  const l = { name: 'l', smtp: false, lmtp: false } as unknown as Channel;
  const channels = new Map([['l', l]]);
  const decide = (rewritten: string) => decideRecipient(rewritten, { channel: 'l', rewritten, error: null }, channels, false);
  assert.deepEqual(decide('"alice"@local.test'), { ok: true, channel: 'l', address: 'alice@local.test', localPart: 'alice' });
  assert.deepEqual(decide('"al\\ice"@local.test'), { ok: true, channel: 'l', address: 'alice@local.test', localPart: 'alice' });
  assert.deepEqual(decide('"alice "@local.test'), { ok: true, channel: 'l', address: '"alice "@local.test', localPart: '"alice "' });
  assert.deepEqual(decide('postmaster'), { ok: true, channel: 'l', address: 'postmaster', localPart: 'postmaster' });
});

test('etc/aliases: a quoted name is the user it spells', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsubame-aliases-'));
  try {
    const file = join(dir, 'aliases');
    writeFileSync(file, '"Sales(Team)": alice\n"Bob.Smith": alice\n"al\\ice": bob\n');
    const diagnostics: never[] = [];
    const aliases = parseAliases(file, diagnostics);
    assert.deepEqual([...aliases.keys()], ['sales(team)', 'bob.smith', 'alice']);
    assert.deepEqual(diagnostics, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the verdict both sides act on: deliver (whatever the mailbox case), unknown, unsupported, loop', () => {
  const aliases = new Map<string, string[]>([
    ['team', ['"Alice"', 'carol@here.test', 'ghost']],
    ['ghost', ['nobody', 'nobody2']],
    ['fwd', ['friend@remote.test']],
    ['trash', ['/dev/null']],
    ...Array.from({ length: 12 }, (_, i): [string, string[]] => [`chain${i}`, [`chain${i + 1}`]]),
  ]);
  const dirs = ['alice', 'Carol', 'list+digest'];
  const mailboxName = (user: string) => dirs.find((d) => d === user) ?? dirs.find((d) => d.toLowerCase() === user) ?? null;
  const verdict = (lp: string) => localVerdict(expandLocal(lp, { aliases, mailboxName, localDomains: ['here.test'] }));
  assert.deepEqual(verdict('"ALICE"'), { kind: 'deliver', mailboxes: ['alice'], discarded: false, skipped: [] });
  assert.deepEqual(verdict('carol'), { kind: 'deliver', mailboxes: ['Carol'], discarded: false, skipped: [] });
  assert.deepEqual(verdict('team'), { kind: 'deliver', mailboxes: ['alice', 'Carol'], discarded: false, skipped: ['nobody', 'nobody2'] });
  assert.deepEqual(verdict('list+digest'), { kind: 'deliver', mailboxes: ['list+digest'], discarded: false, skipped: [] }, 'a mailbox named with the +');
  assert.deepEqual(verdict('trash'), { kind: 'deliver', mailboxes: [], discarded: true, skipped: [] });
  assert.deepEqual(verdict('ghost'), { kind: 'unknown' }, 'an alias of unknown users only');
  assert.deepEqual(verdict('"alice "'), { kind: 'unknown' });
  assert.deepEqual(verdict('"alice@x"'), { kind: 'unknown' });
  assert.equal(verdict('fwd').kind, 'unsupported');
  assert.deepEqual(verdict('chain0'), { kind: 'loop' });
  assert.deepEqual(verdict('postmaster'), { kind: 'deliver', mailboxes: ['postmaster'], discarded: false, skipped: [] });
});
