// The pure parts of running as the service user: the setting, passwd lines, setpriv's
// arguments, capability masks, the access rule the start-up check applies, and the modes of
// Maildir files by the mailbox directory's owner.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ambientCapabilities, parsePasswdLine, serverUserName, switchUserArgs, DROP_CAPABILITIES_ARGS } from '../../src/common/service-user.js';
import { canAccess } from '../../src/common/instance-ownership.js';
import { maildirModes } from '../../src/delivery/maildir.js';

test('serverUserName: TSUBAME_SERVER_USER, else SERVER_USER, else tsubame', () => {
  assert.equal(serverUserName({}, {}), 'tsubame');
  assert.equal(serverUserName({ SERVER_USER: ' mailsrv ' }, {}), 'mailsrv');
  assert.equal(serverUserName({ SERVER_USER: '' }, {}), 'tsubame');
  assert.equal(serverUserName({ SERVER_USER: 'mailsrv' }, { TSUBAME_SERVER_USER: 'root' }), 'root');
});

test('parsePasswdLine reads name, uid and gid; anything else is not a user', () => {
  assert.deepEqual(parsePasswdLine('tsubame:x:995:995::/nonexistent:/usr/sbin/nologin\n'), { name: 'tsubame', uid: 995, gid: 995 });
  assert.equal(parsePasswdLine(''), null);
  assert.equal(parsePasswdLine('broken:x:abc:1::/:/bin/sh'), null);
  assert.equal(parsePasswdLine('short:x:1:1'), null);
});

test('switchUserArgs: the user, its groups, and CAP_NET_BIND_SERVICE only when asked', () => {
  const user = { name: 'tsubame', uid: 995, gid: 995, groups: [995, 8] };
  assert.deepEqual(switchUserArgs(user, true), ['--reuid=995', '--regid=995', '--groups=995,8', '--inh-caps=-all,+net_bind_service', '--ambient-caps=-all,+net_bind_service', '--']);
  assert.deepEqual(switchUserArgs(user, false).slice(3), ['--inh-caps=-all', '--ambient-caps=-all', '--']);
  assert.deepEqual(DROP_CAPABILITIES_ARGS, ['--inh-caps=-all', '--ambient-caps=-all', '--']);
});

test('ambientCapabilities reads CapAmb of /proc/<pid>/status', () => {
  assert.equal(ambientCapabilities('Name:\tnode\nCapInh:\t0000000000000400\nCapAmb:\t0000000000000400\n'), 0x400n);
  assert.equal(ambientCapabilities('CapAmb:\t0000000000000000\n'), 0n);
  assert.equal(ambientCapabilities('Name:\tnode\n'), 0n);
});

test('canAccess: owner bits for the owner, group bits for a member, other bits for the rest', () => {
  const user = { uid: 995, groups: [995, 8] };
  assert.equal(canAccess({ uid: 0, gid: 0, mode: 0o40700 }, user, 1), false, '/root 0700');
  assert.equal(canAccess({ uid: 0, gid: 0, mode: 0o40711 }, user, 1), true);
  assert.equal(canAccess({ uid: 0, gid: 8, mode: 0o100640 }, user, 4), true, 'a key readable by its group');
  assert.equal(canAccess({ uid: 0, gid: 0, mode: 0o100600 }, user, 4), false, "a key only root reads");
  assert.equal(canAccess({ uid: 995, gid: 0, mode: 0o100604 }, user, 4), true);
  // The owner's bits apply to the owner even when the other bits would allow more (as the kernel decides).
  assert.equal(canAccess({ uid: 995, gid: 0, mode: 0o100004 }, user, 4), false);
});

test('maildirModes: private in a mailbox of its own; group-readable in the group of another owner\'s', () => {
  assert.deepEqual(maildirModes({ uid: 995, gid: 995 }, 995), { dirMode: 0o700, fileMode: 0o600, gid: null });
  assert.deepEqual(maildirModes({ uid: 1000, gid: 1000 }, 995), { dirMode: 0o2770, fileMode: 0o640, gid: 1000 });
});
