// The program as the service user (tsubame) can run it, for the tests that start an instance as
// that user: the repository's bin/ when the user can reach it, else a copy in a temporary
// directory (a checkout under /root, mode 0700, is out of its reach), removed after the tests.
import { after } from 'node:test';
import { chmodSync, cpSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { repoRoot } from './instance.js';
import { lookupUser } from '../../src/common/service-user.js';
import { canAccess } from '../../src/common/instance-ownership.js';

export function reachableBinDir(name = 'tsubame'): string {
  const user = lookupUser(name)!;
  let reachable = true;
  for (let dir = repoRoot; ; dir = dirname(dir)) {
    if (!canAccess(statSync(dir), user, 1)) reachable = false;
    if (dirname(dir) === dir) break;
  }
  if (reachable) return join(repoRoot, 'bin');
  const copy = mkdtempSync(join(tmpdir(), 'tsubame-program-'));
  chmodSync(copy, 0o755);
  for (const part of ['bin', 'dist', 'node_modules', 'package.json']) cpSync(join(repoRoot, part), join(copy, part), { recursive: true });
  after(() => rmSync(copy, { recursive: true, force: true }));
  return join(copy, 'bin');
}
