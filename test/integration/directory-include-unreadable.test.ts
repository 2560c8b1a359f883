// An `:include:` file the MTA may not read (issue 19's hostile case "an :include: file that is
// unreadable"): the service user that runs the local channel's job reads a file of mode 0600
// belonging to someone else. The reader runs in a process of that user (setpriv, as root; as any
// other user, the file of mode 0000 is out of its own reach): the file is one `invalid` member that
// says EACCES, which the expansion reports to the list's owner as it does a missing file
// (test/unit/directory-recipients.test.ts, channels-local-expansion.test.ts); a readable file next
// to it, read the same way, gives its members.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { lookupUser } from '../../src/common/service-user.js';
import type { ListMember } from '../../src/directory/types.js';

const dir = mkdtempSync(join(tmpdir(), 'tsubame-include-'));
chmodSync(dir, 0o755);
after(() => rmSync(dir, { recursive: true, force: true }));

/** readIncludeFile(path) in a process of the service user (as root) or of this user; its members. */
function readAsServiceUser(path: string): Promise<ListMember[]> {
  const module = pathToFileURL(join(import.meta.dirname, '../../src/directory/include-file.js')).href;
  const script = `const { readIncludeFile } = await import(${JSON.stringify(module)}); const out = []; for await (const m of readIncludeFile(${JSON.stringify(path)})) out.push(m); process.stdout.write(JSON.stringify(out));`;
  const node = [process.execPath, '--input-type=module', '-e', script];
  let argv = node;
  if (process.geteuid?.() === 0) {
    const user = lookupUser('tsubame');
    assert.ok(user, 'the service user tsubame exists (scripts/ensure-installed.sh creates it)');
    argv = ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--', ...node];
  }
  return new Promise((resolve, reject) => {
    execFile(argv[0]!, argv.slice(1), { timeout: 30_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(JSON.parse(stdout) as ListMember[])));
  });
}

test(':include: a file the service user cannot read is one invalid member saying EACCES; a readable one gives its members', { timeout: 60_000 }, async () => {
  const secret = join(dir, 'secret-list');
  writeFileSync(secret, 'alice\nbob@remote.example\n');
  chmodSync(secret, process.geteuid?.() === 0 ? 0o600 : 0o000);
  const open = join(dir, 'open-list');
  writeFileSync(open, 'alice\nbob@remote.example\n');
  chmodSync(open, 0o644);

  assert.deepEqual(await readAsServiceUser(secret), [{ kind: 'invalid', member: `:include:${secret}`, why: `cannot read ${secret}: EACCES` }]);
  assert.deepEqual(await readAsServiceUser(open), [
    { kind: 'local', name: 'alice' },
    { kind: 'address', address: 'bob@remote.example' },
  ]);
});
