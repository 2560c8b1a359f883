// LocalUsers against a real mailbox directory: listing, case, aliases, changes, no path escapes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalUsers } from '../../src/directory/local-users.js';

test('mailbox directories and aliases name users; files, parents and strangers do not', async () => {
  const root = mkdtempSync(join(tmpdir(), 'tsubame-smtp-users-'));
  try {
    const mailbox = join(root, 'mailbox');
    mkdirSync(join(mailbox, 'Alice', 'new'), { recursive: true });
    writeFileSync(join(mailbox, 'notadir'), '');
    mkdirSync(join(root, 'etc'));
    const users = new LocalUsers(mailbox, new Map([['sales', ['alice']], ['list+digest', ['alice']]]));
    assert.equal(await users.exists('alice'), true);
    assert.equal(await users.exists('ALICE+tag'), true);
    assert.equal(await users.exists('"alice"'), true);
    assert.equal(await users.exists('Sales'), true);
    assert.equal(await users.exists('list+digest'), true);
    assert.equal(await users.exists('postmaster'), true);
    assert.equal(await users.exists('bob'), false);
    assert.equal(await users.exists('notadir'), false);
    assert.equal(await users.exists('../etc'), false);
    assert.equal(await users.exists('..'), false);
    mkdirSync(join(mailbox, 'bob'));
    assert.equal(await users.exists('bob'), true, 'a new mailbox is seen at once');
    rmSync(join(mailbox, 'bob'), { recursive: true });
    assert.equal(await users.exists('bob'), false, 'a removed one is gone at once');
    const none = new LocalUsers(join(root, 'missing'), new Map());
    assert.equal(await none.exists('alice'), false);
    assert.equal(await none.exists('postmaster'), true);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
