// start-msg as root (src/cli/service-user-start.ts): before switching to the service user it
// checks that the user can read what the server processes read; a secret of issue 19's directory
// only root can read (LDAP_PASSWORD_FILE made 0600 by root) makes it run as root with a warning
// naming the file, instead of an instance whose every LDAP lookup fails (451 4.4.3 at RCPT).
// Readable in the service user's group (0640), the switch is made. Needs root and the user tsubame.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync } from 'node:fs';
import { join } from 'node:path';
import { instancePaths } from '../../src/common/instance.js';
import { lookupUser } from '../../src/common/service-user.js';
import { loadInstanceConfigOrThrow } from '../../src/config/load.js';
import { prepareServiceUser } from '../../src/cli/service-user-start.js';
import { makeInstance, repoRoot, type TestInstance } from '../helpers/instance.js';

const instances: TestInstance[] = [];
after(() => instances.forEach((i) => i.remove()));

/** prepareServiceUser's answer and what it wrote on stderr. */
function prepare(root: string): { user: string | null; said: string } {
  const write = process.stderr.write.bind(process.stderr);
  let said = '';
  process.stderr.write = (chunk: string) => ((said += chunk), true);
  // The test runner sets TSUBAME_SERVER_USER=root for the other tests; the shipped default here.
  const before = process.env.TSUBAME_SERVER_USER;
  process.env.TSUBAME_SERVER_USER = 'tsubame';
  try {
    return { user: prepareServiceUser(instancePaths(root), loadInstanceConfigOrThrow(root))?.name ?? null, said };
  } finally {
    process.stderr.write = write;
    if (before === undefined) delete process.env.TSUBAME_SERVER_USER;
    else process.env.TSUBAME_SERVER_USER = before;
  }
}

test('LDAP_PASSWORD_FILE only root can read: runs as root, saying which file; 0640 in the service group: runs as the service user', { skip: process.geteuid?.() !== 0 && 'needs root' }, () => {
  execFileSync('bash', [join(repoRoot, 'scripts', 'ensure-installed.sh')], { stdio: 'ignore' });
  const user = lookupUser('tsubame')!;
  const inst = makeInstance({
    shipped: true,
    files: {
      'etc/option.dat': 'INTERNAL_IP=127.0.0.0/8\nLOCAL_HOST=mx.example.test\nLDAP_HOST=127.0.0.1:1\nLDAP_USER_ROOT=ou=People,o=example.test\nLDAP_USERNAME=cn=mta,o=example.test\nLDAP_PASSWORD_FILE=ldap.secret\n',
      'etc/ldap.secret': 'secret\n',
    },
  });
  instances.push(inst);
  chmodSync(inst.root, 0o755); // mkdtemp's 0700 would keep the service user out of the instance
  const secret = join(inst.root, 'etc/ldap.secret');
  chmodSync(secret, 0o600);

  const refused = prepare(inst.root);
  assert.equal(refused.user, null);
  assert.match(refused.said, /^start-msg: warning: running as root: the service user tsubame cannot read .*etc\/ldap\.secret \(mode 0600/);

  chownSync(secret, 0, user.gid);
  chmodSync(secret, 0o640);
  assert.deepEqual(prepare(inst.root), { user: 'tsubame', said: '' });
});
