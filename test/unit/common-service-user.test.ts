// The pure parts of running as the service user: the setting, passwd lines, setpriv's
// arguments, capability masks and what a child keeps of them, the access rule the start-up check
// applies, and the modes and owner of Maildir files by the mailbox directory's owner.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePasswdLine, serverUserName, switchUserArgs } from '../../src/common/service-user.js';
import { capabilitiesToKeep, capabilitySet, setprivCapabilityArgs, SERVICE_CAPABILITIES } from '../../src/common/capabilities.js';
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

test('switchUserArgs: the user, its groups, and the capabilities asked for', () => {
  const user = { name: 'tsubame', uid: 995, gid: 995, groups: [995, 8] };
  assert.deepEqual(switchUserArgs(user, SERVICE_CAPABILITIES), ['--reuid=995', '--regid=995', '--groups=995,8', '--inh-caps=-all,+net_bind_service,+chown', '--ambient-caps=-all,+net_bind_service,+chown', '--']);
  assert.deepEqual(switchUserArgs(user, []).slice(3), ['--inh-caps=-all', '--ambient-caps=-all', '--']);
  assert.deepEqual(setprivCapabilityArgs(['chown']), ['--inh-caps=-all,+chown', '--ambient-caps=-all,+chown']);
});

test('capabilitySet reads one set of /proc/<pid>/status', () => {
  const status = 'Name:\tnode\nCapInh:\t0000000000000401\nCapEff:\t0000000000000401\nCapAmb:\t0000000000000400\n';
  assert.equal(capabilitySet(status, 'Amb'), 0x400n);
  assert.equal(capabilitySet(status, 'Eff'), 0x401n);
  assert.equal(capabilitySet('CapAmb:\t0000000000000000\n', 'Amb'), 0n);
  assert.equal(capabilitySet('Name:\tnode\n', 'Amb'), 0n);
});

test('capabilitiesToKeep: a child keeps what it needs of the ambient set, and is left alone when it would keep all', () => {
  const watcher = 'CapAmb:\t0000000000000401\n'; // CAP_NET_BIND_SERVICE and CAP_CHOWN
  assert.deepEqual(capabilitiesToKeep(watcher, ['net_bind_service']), ['net_bind_service'], 'the dispatcher');
  assert.deepEqual(capabilitiesToKeep(watcher, ['chown']), ['chown'], 'the job controller');
  assert.deepEqual(capabilitiesToKeep(watcher, []), [], 'nothing');
  assert.equal(capabilitiesToKeep(watcher, ['chown', 'net_bind_service']), null, 'all it has');
  assert.deepEqual(capabilitiesToKeep('CapAmb:\t0000000000000400\n', []), [], 'the dispatcher starting an SMTP server process');
  // A unit that gives only CAP_NET_BIND_SERVICE: the job controller gets nothing it could not have.
  assert.deepEqual(capabilitiesToKeep('CapAmb:\t0000000000000400\n', ['chown']), []);
  assert.equal(capabilitiesToKeep('CapAmb:\t0000000000000000\n', ['chown']), null, 'an ordinary user: nothing to drop');
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

test('maildirModes: private in a mailbox of its own; the owner\'s in another owner\'s with CAP_CHOWN, else group-readable', () => {
  assert.deepEqual(maildirModes({ uid: 995, gid: 995 }, 995, true), { dirMode: 0o700, fileMode: 0o600, gid: null, fileOwner: null });
  assert.deepEqual(maildirModes({ uid: 995, gid: 995 }, 995, false), { dirMode: 0o700, fileMode: 0o600, gid: null, fileOwner: null });
  assert.deepEqual(maildirModes({ uid: 1000, gid: 8 }, 995, true), { dirMode: 0o2770, fileMode: 0o600, gid: 8, fileOwner: { uid: 1000, gid: 8 } });
  assert.deepEqual(maildirModes({ uid: 1000, gid: 1000 }, 995, false), { dirMode: 0o2770, fileMode: 0o640, gid: 1000, fileOwner: null });
});
