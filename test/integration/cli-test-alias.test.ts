// `bin/imsimta test -alias` with the files source: users, aliases with remote members and
// :include: files, a loop and a missing include file with their reasons, JSON output, stdin,
// exit codes, and usage errors.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeInstance, runCli, type TestInstance } from '../helpers/instance.js';

const IMTA_CNF = `example.com  $U%$D@localhost\n.  $U%$H@tcp-daemon\n\nl\nlocalhost\n\ntcp_local smtp\ntcp-daemon\n`;

const instances: TestInstance[] = [];
after(() => instances.forEach((i) => i.remove()));

function instance(): TestInstance {
  const inst = makeInstance({ files: { 'etc/imta.cnf': IMTA_CNF } });
  instances.push(inst);
  for (const u of ['alice', 'bob']) mkdirSync(join(inst.root, 'mailbox', u), { recursive: true });
  inst.write('lists/staff', '# staff\nalice\ncarol@partner.example\n');
  inst.write(
    'etc/aliases',
    [`staff: :include:${join(inst.root, 'lists/staff')}, bob`, 'owner-staff: alice', 'loop: loop2', 'loop2: loop', `broken: alice, :include:${join(inst.root, 'lists/none')}`].join('\n'),
  );
  return inst;
}

test('text: the user or group, then each mailbox, routed address and failure with its reason; exit 0 only when everything resolves', async () => {
  const inst = instance();
  const ok = await runCli('imsimta', ['test', '-alias', 'staff@example.com', 'Alice+x@example.com'], { root: inst.root });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(
    ok.stdout,
    [
      'staff@example.com: group <staff@example.com> (staff; owner owner-staff@example.com)',
      `  mailbox alice <alice@example.com>   (via staff@example.com → :include:${join(inst.root, 'lists/staff')})`,
      `  route <carol@partner.example> → channel tcp_local from <owner-staff@example.com>   (via staff@example.com → :include:${join(inst.root, 'lists/staff')})`,
      '  mailbox bob <bob@example.com>   (via staff@example.com)',
      'Alice+x@example.com: user alice <Alice+x@example.com> (delivery options: mailbox; mailbox alice)',
      '  mailbox alice <Alice+x@example.com>',
      '',
    ].join('\n'),
  );
  const bad = await runCli('imsimta', ['test', '-alias', 'loop@example.com', 'broken@example.com', 'nobody@example.com'], { root: inst.root });
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /^ {2}FAILED loop@example.com: loop: loop@example.com → loop2@example.com → loop@example.com/m);
  assert.match(bad.stdout, new RegExp(`^  FAILED :include:${join(inst.root, 'lists/none')}: cannot read ${join(inst.root, 'lists/none')}: ENOENT`, 'm'));
  assert.match(bad.stdout, /^nobody@example.com: no such user or group$/m);
});

test('--json: one object per address from stdin; usage errors exit 2', async () => {
  const inst = instance();
  const r = await runCli('imsimta', ['test', '-alias', '--json'], { root: inst.root, input: 'bob@example.com\n\nstaff@example.com\n' });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { address: string; source: string; lookup: { kind: string }; expansion: Array<{ kind: string }> });
  assert.deepEqual(lines.map((l) => [l.address, l.source, l.lookup.kind, l.expansion.map((e) => e.kind)]), [
    ['bob@example.com', 'files', 'user', ['mailbox']],
    ['staff@example.com', 'files', 'group', ['mailbox', 'route', 'mailbox']],
  ]);
  const usage = await runCli('imsimta', ['test', '-alias', '--source', 'nis', 'a@example.com'], { root: inst.root });
  assert.equal(usage.code, 2);
  const noLdap = await runCli('imsimta', ['test', '-alias', '--source', 'ldap', 'a@example.com'], { root: inst.root });
  assert.deepEqual([noLdap.code, noLdap.stderr.trim()], [1, 'imsimta: --source ldap: option.dat does not set LDAP_HOST']);
});
